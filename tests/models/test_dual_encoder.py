"""Dual encoder pieces: unit embeddings, scaled logits, both contrastive
losses against NumPy references, the retrieval metrics, config checks."""

import numpy as np
import pytest

import mmzoo
from mmzoo.heads.retrieval import ContrastiveLoss
from mmzoo.layers.contrastive import ContrastiveLogits, L2Normalize
from mmzoo.metrics.retrieval import retrieval_metrics, retrieval_ranks


def _log_softmax(x, axis):
    x = x - x.max(axis=axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


def test_l2_normalize_gives_unit_rows_and_keeps_zero_rows_finite():
    out = np.asarray(L2Normalize()(np.array([[3.0, 4.0], [0.0, 0.0]])))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]], atol=1e-6)


def test_logits_scale_bias_clip_and_round_trip():
    layer = ContrastiveLogits(
        initial_scale=10.0, use_bias=True, initial_bias=-2
    )
    x = np.eye(3, dtype=np.float32)
    logits = np.asarray(layer([x, x]))
    np.testing.assert_allclose(logits, 10 * np.eye(3) - 2, atol=1e-5)
    layer.log_scale.assign(np.log(1e6))
    assert float(layer.scale) == pytest.approx(100.0)  # CLIP's clip
    clone = ContrastiveLogits.from_config(layer.get_config())
    assert clone.use_bias and clone.max_scale == 100.0
    with pytest.raises(ValueError, match="initial_scale"):
        ContrastiveLogits(initial_scale=1000.0)


def test_infonce_with_one_positive_is_clips_symmetric_cross_entropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 4)).astype(np.float32)
    loss = float(ContrastiveLoss()(np.arange(4), logits))
    diagonal = np.arange(4)
    rows = -_log_softmax(logits, 1)[diagonal, diagonal]
    columns = -_log_softmax(logits, 0)[diagonal, diagonal]
    assert loss == pytest.approx(0.5 * (rows.mean() + columns.mean()), 1e-5)


def test_infonce_counts_every_positive_of_a_repeated_item():
    # Rows 0 and 1 are two captions of one image: both are positives.
    logits = np.array([[5.0, 5.0, 0.0], [5.0, 5.0, 0.0], [0.0, 0.0, 5.0]])
    shared = float(ContrastiveLoss()(np.array([7, 7, 3]), logits))
    distinct = float(ContrastiveLoss()(np.array([7, 8, 3]), logits))
    assert shared < 0.02 < np.log(2) * 0.5 < distinct


def test_siglip_sums_binary_losses_over_pairs():
    logits = np.array([[2.0, -1.0], [0.5, 3.0]], np.float32)
    got = float(ContrastiveLoss("siglip")(np.array([0, 1]), logits))
    signs = 2 * np.eye(2) - 1
    want = np.log1p(np.exp(-signs * logits)).sum(axis=1).mean()
    assert got == pytest.approx(want, 1e-5)
    with pytest.raises(ValueError, match="valid: infonce, siglip"):
        ContrastiveLoss("triplet")


def test_ranks_and_recall_by_hand():
    images = np.eye(3, dtype=np.float32)
    # Captions 0, 1 of image 0; caption 2 of image 1 (image 1's best caption,
    # but it prefers image 2); caption 3 of image 2.
    texts = np.array(
        [[1, 0, 0], [0.9, 0.1, 0], [0, 0.2, 0.9], [0, 0, 1]], np.float32
    )
    i2t, t2i = retrieval_ranks(images, texts, [0, 0, 1, 2])
    np.testing.assert_array_equal(i2t, [1, 1, 1])
    np.testing.assert_array_equal(t2i, [1, 1, 2, 1])
    metrics = retrieval_metrics(images, texts, [0, 0, 1, 2])
    assert metrics["image_to_text_recall@1"] == 1.0
    assert metrics["text_to_image_recall@1"] == pytest.approx(3 / 4)
    assert metrics["median_rank"] == 1.0
    assert metrics["image_to_text_recall@5"] == 1.0


def test_ties_count_against_the_query():
    i2t, t2i = retrieval_ranks(np.ones((3, 2)), np.ones((3, 2)), [0, 1, 2])
    np.testing.assert_array_equal(i2t, [3, 3, 3])
    with pytest.raises(ValueError, match="no caption"):
        retrieval_ranks(np.eye(2), np.eye(2), [0, 0])


def test_model_outputs_and_towers():
    model = mmzoo.build("dual_encoder", "tiny")
    assert {"image_tower", "text_tower"} <= {
        layer.name for layer in model.layers
    }
    rng = np.random.default_rng(0)
    out = model(
        {
            "image": rng.uniform(0, 255, (5, 32, 32, 3)).astype("float32"),
            "text": rng.integers(0, 50, (5, 16)).astype("int32"),
        }
    )
    image, text = (
        np.asarray(out[k]) for k in ("image_embedding", "text_embedding")
    )
    np.testing.assert_allclose(np.linalg.norm(image, axis=1), 1, atol=1e-5)
    scale = float(model.get_layer("logits").scale)
    np.testing.assert_allclose(
        np.asarray(out["logits"]), scale * image @ text.T, atol=1e-4
    )
    assert scale == pytest.approx(10.0)  # 1 / initial_temperature 0.1
    assert np.asarray(out["logits"]).shape == (5, 5)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"loss": "triplet"}, "unknown loss"),
        ({"image_encoder": "alexnet"}, "unknown image_encoder"),
        ({"initial_temperature": 0.001}, "exceeds max_logit_scale"),
        ({"projection_dim": 0}, "projection_dim"),
    ],
)
def test_config_errors_name_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        mmzoo.get_config("dual_encoder", "tiny", **overrides)


def test_towers_start_from_keras_hub_presets(tmp_path):
    from mmzoo.encoders.presets import save_tiny_preset
    from mmzoo.testing import prepare_model

    vit = save_tiny_preset("vit", str(tmp_path / "vit"), image_size=32)
    bert = save_tiny_preset("bert", str(tmp_path / "bert"))
    _, prepared, model, history = prepare_model(
        "dual_encoder",
        str(tmp_path),
        fit_batch_size=4,
        image_encoder="vit",
        image_preset=vit,
        image_trainable=False,
        text_encoder="bert",
        text_preset=bert,
    )
    assert np.isfinite(history.history["loss"][0])
    text_spec = prepared.config.modality_specs()[1]
    assert text_spec.preset == bert  # the preset's tokenizer
    image_tower = model.get_layer("image_tower")
    frozen = [w for w in image_tower.weights if not w.trainable]
    assert frozen  # the preset backbone, frozen
