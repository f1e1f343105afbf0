"""Tests for the ViT-LSTM captioner and its greedy / beam-search decoding
(`mmzoo.heads.generation`)."""

import itertools
import os
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmzoo.heads import generation as decode
from mmzoo.models import vit_lstm_captioner as captioner
from tests.jax_backend import run_on_jax

SIZE = 32
VOCAB = 20
MAX_LENGTH = 6
STEPS = MAX_LENGTH - 1
EPOCHS = 60
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _config(**overrides):
    values = {
        **captioner.VARIANTS["tiny"],
        "vocabulary_size": VOCAB,
        "max_length": MAX_LENGTH,
        "dropout": 0.0,
        **overrides,
    }
    return captioner.ViTLSTMCaptionerConfig(**values)


def _images(n, seed=0):
    rng = np.random.RandomState(seed)
    return rng.uniform(0, 255, (n, SIZE, SIZE, 3)).astype("float32")


def _inputs(n, seed=0):
    rng = np.random.RandomState(seed)
    tokens = rng.randint(1, VOCAB, (n, STEPS)).astype("int32")
    tokens[:, 0] = decode.START_ID
    return {"image": _images(n, seed), "token_ids": tokens}


@pytest.fixture(scope="module")
def model():
    """An untrained tiny captioner with sharp, image-dependent outputs."""
    keras.utils.set_random_seed(1)
    model = captioner.build_vit_lstm_captioner(_config())
    # Untrained logits are nearly uniform and barely depend on the previous
    # token; scale both up so that greedy and beam search face real choices.
    logits = model.get_layer(decode.LOGITS)
    logits.kernel.assign(logits.kernel * 4.0)
    embedding = model.get_layer(decode.TOKEN_EMBEDDING)
    embedding.embeddings.assign(embedding.embeddings * 4.0)
    return model


def _sequence_log_prob(model, image, captions):
    """Teacher-forced log-probability of each caption (ids after start)."""
    n = len(captions)
    token_ids = np.zeros((n, STEPS), "int32")
    token_ids[:, 0] = decode.START_ID
    for row, caption in enumerate(captions):
        token_ids[row, 1 : len(caption)] = caption[:-1]
    logits = model.predict(
        {"image": np.repeat(image[None], n, 0), "token_ids": token_ids},
        verbose=0,
    )
    banned = np.zeros(VOCAB, "float32")
    banned[[decode.PAD_ID, decode.OOV_ID, decode.START_ID]] = -1e9
    log_probs = keras.ops.convert_to_numpy(
        keras.ops.log_softmax(logits + banned, axis=-1)
    )
    return np.array(
        [
            sum(log_probs[row, k, token] for k, token in enumerate(caption))
            for row, caption in enumerate(captions)
        ]
    )


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown image_encoder 'rnn'"):
        _config(image_encoder="rnn")
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        _config(patch_size=7)
    with pytest.raises(ValueError, match="not divisible by vit_num_heads"):
        _config(vit_num_heads=3)


def test_forward_shape_and_names(model):
    logits = model(_inputs(2))
    assert tuple(logits.shape) == (2, STEPS, VOCAB)
    assert set(model.input) == {"image", "token_ids"}
    assert model.layers[-1].name == decode.LOGITS


def test_small_cnn_encoder_forward_and_decode():
    # The shared LSTNet CNN: its pooled vector (a flattened map) is wider
    # than its regions, which the decoder must not confuse.
    cnn = captioner.build_vit_lstm_captioner(_config(image_encoder="cnn"))
    assert tuple(cnn(_inputs(2)).shape) == (2, STEPS, VOCAB)
    pooled, regions = cnn.get_layer(decode.IMAGE_ENCODER).output
    assert pooled.shape[-1] != regions.shape[-1]
    ids, scores = decode.generate(cnn, _images(2), beam_width=2)
    assert ids.shape == (2, STEPS) and scores.shape == (2,)
    alpha = decode.attention_weights(cnn, _images(2), ids)
    assert alpha.shape == (2, STEPS, regions.shape[1])


def test_frozen_vit_preset_encoder_decodes_after_reload(tmp_path):
    # A keras-hub preset folder (tiny, random) as the encoder's start.
    from mmzoo.encoders.presets import save_tiny_preset

    preset = save_tiny_preset("vit", str(tmp_path / "vit"), image_size=SIZE)
    keras.utils.set_random_seed(2)
    frozen = captioner.build_vit_lstm_captioner(
        _config(image_preset=preset, image_trainable=False)
    )
    encoder = frozen.get_layer(decode.IMAGE_ENCODER)
    assert encoder.weights and not encoder.trainable_weights
    path = str(tmp_path / "preset_captioner.keras")
    frozen.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    images = _images(2)
    ids, scores = decode.generate(frozen, images, beam_width=2)
    loaded_ids, loaded_scores = decode.generate(loaded, images, beam_width=2)
    np.testing.assert_array_equal(ids, loaded_ids)
    np.testing.assert_allclose(scores, loaded_scores, atol=1e-5)


def test_save_load_same_outputs_and_captions(model, tmp_path):
    path = str(tmp_path / "captioner.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    inputs = _inputs(2)
    np.testing.assert_allclose(
        model.predict(inputs, verbose=0),
        loaded.predict(inputs, verbose=0),
        atol=1e-5,
    )
    for width in (1, 3):
        ids, scores = decode.generate(model, inputs["image"], width)
        loaded_ids, loaded_scores = decode.generate(
            loaded, inputs["image"], width
        )
        np.testing.assert_array_equal(ids, loaded_ids)
        np.testing.assert_allclose(scores, loaded_scores, atol=1e-5)


def test_greedy_equals_beam_width_one(model):
    images = _images(3)
    greedy_ids, greedy_scores = decode.greedy_decode(model, images)
    beam_ids, beam_scores = decode.beam_search_decode(model, images, 1)
    np.testing.assert_array_equal(greedy_ids, beam_ids)
    np.testing.assert_allclose(greedy_scores, beam_scores, atol=1e-5)


def test_greedy_output_format_and_score(model):
    images = _images(3)
    ids, scores = (
        keras.ops.convert_to_numpy(x)
        for x in decode.greedy_decode(model, images)
    )
    assert ids.shape == (3, STEPS) and ids.dtype == np.int32
    for row, image, score in zip(ids, images, scores, strict=True):
        ended = np.flatnonzero(row == decode.END_ID)
        length = ended[0] + 1 if len(ended) else STEPS
        assert np.all(row[length:] == decode.PAD_ID)
        assert np.all(row[:length] != decode.PAD_ID)
        # The decoder's score is the teacher-forced log-probability.
        expected = _sequence_log_prob(model, image, [list(row[:length])])
        np.testing.assert_allclose(score, expected[0], atol=1e-4)


def test_beam_search_finds_likelier_captions_than_greedy(model):
    images = _images(16, seed=3)
    _, greedy_scores = decode.greedy_decode(model, images)
    _, beam_scores = decode.beam_search_decode(model, images, 4)
    greedy_scores = keras.ops.convert_to_numpy(greedy_scores)
    beam_scores = keras.ops.convert_to_numpy(beam_scores)
    assert np.all(beam_scores >= greedy_scores - 1e-5)
    # Beam search is not greedy in disguise: it beats it somewhere.
    assert np.sum(beam_scores > greedy_scores + 1e-3) >= 2


def test_wide_beam_search_is_exact(model):
    # Two steps, 18 allowed tokens: a beam of 18 keeps every first token,
    # so it must return the most likely of all possible captions.
    images = _images(4, seed=4)
    words = [t for t in range(VOCAB) if t not in (0, decode.START_ID)]
    captions = [[decode.END_ID]] + [
        [a, b] for a, b in itertools.product(words, words) if a != decode.END_ID
    ]
    ids, scores = decode.beam_search_decode(
        model, images, len(words), max_length=3
    )
    greedy_ids, _ = decode.greedy_decode(model, images, max_length=3)
    ids, greedy_ids = (keras.ops.convert_to_numpy(x) for x in (ids, greedy_ids))
    for image, row, score in zip(images, ids, scores, strict=True):
        log_probs = _sequence_log_prob(model, image, captions)
        best = captions[int(np.argmax(log_probs))]
        expected = best + [decode.PAD_ID] * (2 - len(best))
        np.testing.assert_array_equal(row, expected)
        np.testing.assert_allclose(score, log_probs.max(), atol=1e-4)
    # Here the best caption of some image is not the greedy one.
    assert np.any(ids != greedy_ids)


def test_decoding_traces_in_tf_function(model):
    images = _images(3)
    signature = [tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32)]
    for width in (1, 3):
        traced = tf.function(
            lambda x, w=width: decode.beam_search_decode(model, x, w),
            autograph=False,
            input_signature=signature,
        )
        eager_ids, eager_scores = decode.beam_search_decode(
            model, images, width
        )
        ids, scores = traced(images)
        np.testing.assert_array_equal(ids.numpy(), eager_ids)
        np.testing.assert_allclose(scores.numpy(), eager_scores, atol=1e-5)
        assert traced(images[:1])[0].shape == (1, STEPS)
    greedy = tf.function(
        lambda x: decode.greedy_decode(model, x),
        autograph=False,
        input_signature=signature,
    )
    np.testing.assert_array_equal(
        greedy(images)[0].numpy(), decode.greedy_decode(model, images)[0]
    )


def test_fit_on_tf_data_memorizes_four_captions():
    # Teacher-forced fit with dropout and the padding-masked loss; the
    # captions share prefixes, so the image must steer every step.
    keras.utils.set_random_seed(5)
    memo = captioner.build_vit_lstm_captioner(_config(dropout=0.1))
    images = _images(4, seed=6)
    end, pad = decode.END_ID, decode.PAD_ID
    captions = np.array(
        [
            [4, 5, 6, end, pad],
            [4, 5, 9, 10, end],
            [7, 8, end, pad, pad],
            [7, 8, 11, 12, end],
        ],
        "int32",
    )
    token_ids = np.concatenate(
        [np.full((4, 1), decode.START_ID, "int32"), captions[:, :-1]], 1
    )
    token_ids[token_ids == end] = pad
    memo.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=pad
        ),
    )
    data = tf.data.Dataset.from_tensor_slices(
        ({"image": images, "token_ids": token_ids}, captions)
    ).batch(4)
    history = memo.fit(data, epochs=EPOCHS, shuffle=False, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.2 * losses[0]
    ids, _ = decode.generate(memo, images, beam_width=1)
    np.testing.assert_array_equal(ids, captions)
    ids, _ = decode.generate(memo, images, beam_width=3)
    np.testing.assert_array_equal(ids, captions)
    vocabulary = [f"w{i}" for i in range(VOCAB)]
    assert decode.ids_to_text(ids, vocabulary)[2] == "w7 w8"


def test_jax_backend_build_forward_and_decode():
    script = textwrap.dedent(
        """
        import numpy as np
        import keras
        from mmzoo.heads import generation as decode
        from mmzoo.models import vit_lstm_captioner as captioner

        assert keras.backend.backend() == "jax"
        config = captioner.ViTLSTMCaptionerConfig(
            **{**captioner.VARIANTS["tiny"], "vocabulary_size": 20,
               "max_length": 6}
        )
        model = captioner.build_vit_lstm_captioner(config)
        images = np.random.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
        tokens = np.full((2, 5), decode.START_ID, "int32")
        logits = model({"image": images, "token_ids": tokens})
        assert tuple(logits.shape) == (2, 5, 20), logits.shape
        greedy = decode.generate(model, images, beam_width=1)
        beam = decode.generate(model, images, beam_width=2)
        assert greedy[0].shape == beam[0].shape == (2, 5)
        print("ok")
        """
    )
    assert run_on_jax(script).strip().endswith("ok")
