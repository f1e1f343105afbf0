"""Tests for the two fusion captioners of issue 12, `cnn_text_captioner`
(seed 000: merge by concatenation) and `glove_bilstm_captioner` (seed 001:
max alignment, GloVe vectors, forward and backward language models), and
the pieces they add: `FusionLSTMDecoder`, bidirectional decoding and the
GloVe reader. Their contract, export and hostile requests are
`tests/test_contract.py`'s (parametrized over every registered model)."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo.data import caption_pipeline
from mmzoo.data.glove import read_glove
from mmzoo.heads import generation
from mmzoo.models.captioner_parts import FusionLSTMDecoder
from mmzoo.tasks import get_task

SIZE = 32
VOCAB = 14
MAX_LENGTH = 7
STEPS = MAX_LENGTH - 1
END, PAD, START = generation.END_ID, generation.PAD_ID, generation.START_ID


def _build(name, **overrides):
    keras.utils.set_random_seed(3)
    return mmzoo.build(
        name,
        "tiny",
        vocabulary_size=VOCAB,
        max_length=MAX_LENGTH,
        dropout=0.0,
        **overrides,
    )


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, SIZE, SIZE, 3)).astype("float32")


def _tokens(n, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(4, VOCAB, (n, STEPS)).astype("int32")
    tokens[:, 0] = START
    return tokens


@pytest.mark.parametrize("fuse_at", ["merge", "inject"])
@pytest.mark.parametrize("fusion", ["concat", "max_alignment", "gmu"])
def test_decoder_steps_equal_the_teacher_forced_sequence(fuse_at, fusion):
    # Training runs `call` over the whole caption; decoding runs `step` one
    # token at a time. Both must compute the same thing.
    keras.utils.set_random_seed(0)
    decoder = FusionLSTMDecoder(16, 8, fusion=fusion, fuse_at=fuse_at)
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(3, 5, 6)).astype("float32")
    regions = rng.normal(size=(3, 4, 10)).astype("float32")
    pooled = regions.mean(axis=1)
    sequence = np.asarray(decoder(embeddings, regions, pooled))
    keys = decoder.attention_keys(regions)
    state = decoder.initial_state(pooled)
    for t in range(5):
        output, state, alpha = decoder.step(
            embeddings[:, t], state, regions, keys
        )
        np.testing.assert_allclose(
            np.asarray(output), sequence[:, t], atol=1e-5, err_msg=str(t)
        )
        np.testing.assert_allclose(np.asarray(alpha), 0.25)  # no attention


def test_decoder_rejects_sequence_fusions_and_unknown_places():
    with pytest.raises(ValueError, match="not a vector fusion"):
        FusionLSTMDecoder(8, 8, fusion="cross_attention")
    with pytest.raises(ValueError, match="merge' or 'inject"):
        FusionLSTMDecoder(8, 8, fuse_at="middle")
    with pytest.raises(ValueError, match="cnn_text_captioner: unknown fusion"):
        mmzoo.get_config("cnn_text_captioner", "tiny", fusion="nope")


@pytest.mark.parametrize(
    "name, output", [("cnn_text_captioner", generation.LOGITS)]
    + [("glove_bilstm_captioner", o)
       for o in (generation.LOGITS, generation.BACKWARD_LOGITS)],
)  # fmt: skip
def test_no_step_sees_the_word_it_predicts(name, output):
    # Logits at step t may depend on tokens 0..t only: changing the later
    # tokens (of both directions) must leave them as they were.
    model = _build(name)
    images, tokens = _images(2), _tokens(2)
    inputs = {"image": images, "token_ids": tokens}
    if generation.is_bidirectional(model):
        inputs[generation.REVERSE_TOKEN_INPUT] = _tokens(2, seed=1)

    def logits(values):
        out = model(values)
        return np.asarray(out[output] if isinstance(out, dict) else out)

    before = logits(inputs)
    for t in range(STEPS - 1):
        changed = {k: np.array(v) for k, v in inputs.items()}
        for key in ("token_ids", generation.REVERSE_TOKEN_INPUT):
            if key in changed:
                changed[key][:, t + 1 :] = (
                    changed[key][:, t + 1 :] + 1
                ) % VOCAB
        after = logits(changed)
        np.testing.assert_allclose(
            after[:, : t + 1], before[:, : t + 1], atol=1e-5, err_msg=str(t)
        )
        assert not np.allclose(after[:, t + 1 :], before[:, t + 1 :])


def test_reverse_caption_ids_turns_the_words_round():
    ids = np.array(
        [
            [5, 6, 7, END, PAD, PAD],
            [5, END, PAD, PAD, PAD, PAD],
            [END, PAD, PAD, PAD, PAD, PAD],
            [4, 5, 6, 7, 8, 9],  # cut at the length limit: no end token
        ]
    )
    got = np.asarray(generation.reverse_caption_ids(ids))
    np.testing.assert_array_equal(
        got,
        [
            [7, 6, 5, END, PAD, PAD],
            [5, END, PAD, PAD, PAD, PAD],
            [END, PAD, PAD, PAD, PAD, PAD],
            [9, 8, 7, 6, 5, 4],
        ],
    )


def _check_bidirectional_decode(model, images, beam_width):
    """Asserts that `bidirectional_decode` keeps the direction with the
    higher score; returns where it chose the backward one."""

    def decode(direction):
        if beam_width == 1:
            out = generation.greedy_decode(model, images, direction=direction)
        else:
            out = generation.beam_search_decode(
                model, images, beam_width, direction=direction
            )
        return [np.asarray(v) for v in out]

    forward, backward = decode("forward"), decode("backward")
    ids, scores, chose_backward = (
        np.asarray(v)
        for v in generation.bidirectional_decode(model, images, beam_width)
    )
    np.testing.assert_array_equal(chose_backward, backward[1] > forward[1])
    np.testing.assert_allclose(scores, np.maximum(forward[1], backward[1]))
    want = np.where(
        chose_backward[:, None],
        np.asarray(generation.reverse_caption_ids(backward[0])),
        forward[0],
    )
    np.testing.assert_array_equal(ids, want)
    # `generate` (the Python API) does the same for a bidirectional model.
    generated, _ = generation.generate(model, images, beam_width)
    np.testing.assert_array_equal(generated, ids)
    return chose_backward


@pytest.mark.parametrize("beam_width", [1, 3])
def test_bidirectional_decode_keeps_the_more_likely_direction(beam_width):
    model = _build("glove_bilstm_captioner")
    images = _images(8, seed=2)
    chosen = []
    # Each direction made to win in turn: a large bias on the end token
    # makes the one-word sentence "[END]" almost certain (score ~ 0).
    for winner, loser in (
        (generation.BACKWARD_LOGITS, generation.LOGITS),
        (generation.LOGITS, generation.BACKWARD_LOGITS),
    ):
        bias = np.zeros(VOCAB, "float32")
        model.get_layer(loser).bias.assign(bias)
        bias[END] = 30.0
        model.get_layer(winner).bias.assign(bias)
        chosen.append(_check_bidirectional_decode(model, images, beam_width))
    assert chosen[0].all() and not chosen[1].any(), chosen


def _write_vocabulary(tmp_path, words):
    path = tmp_path / "vocabulary.txt"
    caption_pipeline.build_vocabulary([" ".join(words)], str(path), min_count=1)
    return str(path)


def test_teacher_forcing_of_the_backward_model_reads_the_caption_reversed(
    tmp_path,
):
    vocabulary = _write_vocabulary(tmp_path, ["a", "red", "square"])
    pre = caption_pipeline.CaptionPreprocessor(
        vocabulary, SIZE, 6, bidirectional=True
    )
    inputs, targets = pre.teacher_forcing(
        tf.zeros([2, SIZE, SIZE, 3]), tf.constant(["a red square", "square"])
    )
    words = dict(zip(pre.tokens, range(len(pre.tokens))))
    a, red, square = words["a"], words["red"], words["square"]
    np.testing.assert_array_equal(
        inputs["token_ids"],
        [[START, a, red, square, END], [START, square, END, PAD, PAD]],
    )
    np.testing.assert_array_equal(
        inputs[generation.REVERSE_TOKEN_INPUT],
        [[START, square, red, a, END], [START, square, END, PAD, PAD]],
    )
    np.testing.assert_array_equal(
        targets[generation.BACKWARD_LOGITS],
        [[square, red, a, END, PAD], [square, END, PAD, PAD, PAD]],
    )
    np.testing.assert_array_equal(
        targets[generation.LOGITS],
        [[a, red, square, END, PAD], [square, END, PAD, PAD, PAD]],
    )


def _write_glove(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for word, vector in rows.items():
            f.write(word + " " + " ".join(f"{v:.4f}" for v in vector) + "\n")
    return str(path)


def test_read_glove_keeps_the_vocabulary_words_and_names_bad_lines(tmp_path):
    path = _write_glove(
        tmp_path / "glove.txt",
        {"red": [1, 2, 3], "blue": [4, 5, 6], "new york": [7, 8, 9]},
    )
    vectors, found = read_glove(path, ["[PAD]", "red", "green", "new york"])
    np.testing.assert_array_equal(found, [False, True, False, True])
    np.testing.assert_allclose(vectors[1], [1, 2, 3])
    np.testing.assert_allclose(vectors[3], [7, 8, 9])
    np.testing.assert_allclose(vectors[2], 0.0)
    with open(path, "a", encoding="utf-8") as f:
        f.write("green 1.0 2.0\n")
    with pytest.raises(ValueError, match=r"glove.txt:4: expected a word and 3"):
        read_glove(path, ["green"])
    bad = _write_glove(tmp_path / "bad.txt", {"red": [1, 2, 3]})
    with open(bad, "a", encoding="utf-8") as f:
        f.write("green 1.0 x 2.0\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: the values of 'green'"):
        read_glove(bad, ["green"])


def test_glove_vectors_start_the_frozen_word_embedding(tmp_path):
    task = get_task("glove_bilstm_captioner")
    config = mmzoo.get_config("glove_bilstm_captioner", "tiny")
    prepared = task.prepare(config, "dummy", None, str(tmp_path / "a"), 0)
    tokens = prepared.preprocessor.tokens
    words = tokens[4:7]
    rng = np.random.default_rng(0)
    vectors = {w: rng.normal(size=config.embedding_dim) for w in words}
    glove = _write_glove(
        tmp_path / "glove.txt", {"unrelated": vectors[words[0]], **vectors}
    )
    config = prepared.config
    assert config.vocabulary_file.endswith("caption_vocabulary.txt")
    import dataclasses

    frozen = mmzoo.build(
        "glove_bilstm_captioner",
        config=dataclasses.replace(config, glove_path=glove),
    )
    embedding = frozen.get_layer(generation.TOKEN_EMBEDDING)
    table = np.asarray(embedding.embeddings)
    for word in words:
        np.testing.assert_allclose(
            table[tokens.index(word)], vectors[word], atol=1e-4
        )
    assert not embedding.trainable
    assert all(
        "token_embedding" not in w.path for w in frozen.trainable_weights
    )
    tuned = mmzoo.build(
        "glove_bilstm_captioner",
        config=dataclasses.replace(
            config, glove_path=glove, glove_trainable=True
        ),
    )
    assert tuned.get_layer(generation.TOKEN_EMBEDDING).trainable
    # `embedding_dim` follows the file (tiny's is 32): a user brings
    # glove.6B.50d.txt to any variant.
    three = dataclasses.replace(
        config,
        glove_path=_write_glove(tmp_path / "g3.txt", {words[0]: [1, 2, 3]}),
    )
    assert three.embedding_dim == 3
    model = mmzoo.build("glove_bilstm_captioner", config=three)
    table = model.get_layer(generation.TOKEN_EMBEDDING).embeddings
    np.testing.assert_allclose(table[tokens.index(words[0])], [1, 2, 3])
    missing = dataclasses.replace(
        config, glove_path=str(tmp_path / "missing.txt")
    )  # a run folder's config, read back elsewhere, still loads
    with pytest.raises(ValueError, match="glove_path .*missing.txt"):
        mmzoo.build("glove_bilstm_captioner", config=missing)
    with pytest.raises(ValueError, match="needs the caption vocabulary"):
        mmzoo.build("glove_bilstm_captioner", "tiny", glove_path=glove)


def test_glove_words_unseen_in_training_get_their_own_ids(tmp_path):
    # A test caption's synonym never seen in training is read with its
    # GloVe vector instead of as OOV: the file's first words join the
    # vocabulary (`glove_extra_words`), in file order, after the training
    # words; words the caption tokenizer would change are skipped.
    task = get_task("glove_bilstm_captioner")
    glove = _write_glove(
        tmp_path / "glove.txt",
        {
            "the": [1, 0, 0],
            "Capital": [0, 1, 0],
            "disk": [0, 0, 1],
            "box": [1, 1, 0],
            "zebra": [1, 1, 1],
        },
    )
    config = mmzoo.get_config(
        "glove_bilstm_captioner", "tiny", glove_path=glove, glove_extra_words=3
    )
    prepared = task.prepare(config, "dummy", None, str(tmp_path / "p"), 0)
    tokens = prepared.preprocessor.tokens
    # "the", "disk", "box": the first three single-token words (the third
    # word, "Capital", would be lower-cased by the tokenizer).
    assert tokens[-2:] == ["disk", "box"]
    assert "Capital" not in tokens and "zebra" not in tokens
    assert prepared.config.vocabulary_size == len(tokens)
    ids = prepared.preprocessor.encode_captions(["disk box"]).numpy()[0]
    assert tokens.index("disk") in ids and generation.OOV_ID not in ids
    model = mmzoo.build("glove_bilstm_captioner", config=prepared.config)
    table = np.asarray(model.get_layer(generation.TOKEN_EMBEDDING).embeddings)
    np.testing.assert_allclose(table[tokens.index("disk")], [0, 0, 1])


def test_cli_trains_from_a_glove_file_and_serves_jpeg_bytes(
    tmp_path, monkeypatch
):
    # As a new user would: a Flickr8k-layout folder and a GloVe file it
    # has never seen, `mmzoo train ... --set glove_path=FILE`, the export
    # verified in a TensorFlow-only process (the command's own check) and
    # called with JPEG bytes. METEOR (a Java process) is
    # tests/metrics/test_captioning.py's.
    import contextlib
    import io
    import json

    from mmzoo import cli
    from mmzoo.data.synthetic_images import write_synthetic_captions
    from mmzoo.tasks.captioning import CaptioningTask

    monkeypatch.setattr(CaptioningTask, "with_meteor", False)
    data_dir = write_synthetic_captions(str(tmp_path / "flickr8k"), 40, 0, 32)
    rng = np.random.default_rng(0)
    words = ["a", "small", "little", "red", "circle", "disk", "on", "the"]
    glove = _write_glove(
        tmp_path / "glove.6B.8d.txt", {w: rng.normal(size=8) for w in words}
    )
    argv = ["train", "glove_bilstm_captioner", "--dataset", "flickr8k"]
    argv += ["--data-dir", data_dir, "--variant", "tiny", "--epochs", "1"]
    argv += ["--steps-per-epoch", "2", "--set", f"glove_path={glove}"]
    argv += ["--logdir", str(tmp_path / "logs")]
    argv += ["--export-dir", str(tmp_path / "export")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(argv)
    assert code == 0, out.getvalue()[-3000:]
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert {"bleu_4", "cider", "rouge_l"} <= set(summary["metrics"]["test"])
    serve = tf.saved_model.load(summary["export"]).signatures["serving_default"]
    with open(os.path.join(data_dir, "Images", "00000.png"), "rb") as f:
        pixels = tf.io.decode_png(f.read())
    jpeg = tf.io.encode_jpeg(pixels).numpy()
    served = serve(image=tf.constant([jpeg, jpeg]))
    assert set(served) == {"caption", "score", "direction"}
    assert set(served["direction"].numpy()) <= {b"forward", b"backward"}
    assert served["caption"].shape == (2,)
    (run,) = os.listdir(tmp_path / "logs" / "glove_bilstm_captioner")
    with open(
        tmp_path / "logs" / "glove_bilstm_captioner" / run / "run.json"
    ) as f:
        config = json.load(f)["config"]
    assert config["embedding_dim"] == 8  # the file's width
    assert config["glove_path"] == glove
