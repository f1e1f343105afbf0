"""Tests for the generic multimodal classifier (mmzoo/models/multimodal.py)
and the classification heads (mmzoo/heads/classification.py)."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmzoo.heads.classification import (
    MaskedMeanSquaredError,
    MatchingLoss,
    TargetScale,
)
from mmzoo.layers import FUSION_METHODS, SEQUENCE_FUSIONS, WEIGHTED_FUSIONS
from mmzoo.models.multimodal import (
    FUSION_LEVELS,
    FUSIONS,
    TINY,
    ModalityMask,
    MultimodalClassifierConfig,
    build_multimodal_classifier,
    modality_specs,
    output_losses,
    output_names,
)
from mmzoo.specs import ImageSpec, TextSpec, dummy_inputs

THREE = (("image", "image"), ("text", "text"), ("text2", "text"))
SMALL = {
    **TINY,
    "image_size": 16,
    "cnn_filters": (4, 8),
    "max_text_length": 8,
    "vocabulary_size": 50,
    "dropout": 0.0,
}


def _config(**overrides):
    return MultimodalClassifierConfig(**{**SMALL, **overrides})


def _run(model, config, batch=4, training=False):
    inputs = dummy_inputs(modality_specs(config), batch)
    outputs = model(inputs, training=training)
    if not isinstance(outputs, dict):
        outputs = {"probabilities": outputs}
    return inputs, {k: np.asarray(v) for k, v in outputs.items()}


@pytest.mark.parametrize("fusion", ["concat", "attention"])
def test_three_modalities(fusion):
    config = _config(inputs=THREE, fusion=fusion)
    model = build_multimodal_classifier(config)
    assert sorted(i.name for i in model.inputs) == ["image", "text", "text2"]
    assert model.get_layer("text2_encoder") is not None
    inputs, out = _run(model, config)
    assert set(out) == set(output_names(config))
    assert out["probabilities"].shape == (4, 3)
    assert all(np.isfinite(v).all() for v in out.values())
    if fusion in WEIGHTED_FUSIONS:
        weights = out["modality_weights"]
        assert weights.shape == (4, 3)
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
        # dummy texts: the last row of each text is missing (all padding).
        assert not inputs["text"][-1].any() and not inputs["text2"][-1].any()
        np.testing.assert_array_equal(weights[-1], [1.0, 0.0, 0.0])


def test_ablation_removes_an_input():
    config = _config(inputs=THREE, modalities="image, text2", fusion="gmu")
    assert config.modalities == ("image", "text2")
    assert [s.name for s in modality_specs(config)] == ["image", "text2"]
    model = build_multimodal_classifier(config)
    assert sorted(i.name for i in model.inputs) == ["image", "text2"]
    assert "text_encoder" not in [layer.name for layer in model.layers]
    _, out = _run(model, config)
    assert out["modality_weights"].shape == (4, 2)
    # One modality: no fusion, a single output tensor.
    single = _config(inputs=THREE, modalities=("text2",), fusion="attention")
    model = build_multimodal_classifier(single)
    assert [i.name for i in model.inputs] == ["text2"]
    assert output_names(single) == ("probabilities",)
    out = model(dummy_inputs(modality_specs(single), 2))
    assert tuple(out.shape) == (2, 3)


@pytest.mark.parametrize("level", ["intermediate", "late", "early"])
def test_softmax_and_regression_heads(level):
    config = _config(
        head="softmax",
        num_labels=4,
        num_targets=2,
        fusion="attention",
        fusion_level=level,
    )
    assert output_names(config) == (
        "probabilities",
        "modality_weights",
        "score",
    )
    model = build_multimodal_classifier(config)
    _, out = _run(model, config)
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1, atol=1e-5)
    assert out["score"].shape == (4, 2) and out["score"].dtype == np.float32
    linear = model.get_layer("score_standardized")
    assert linear.activation is keras.activations.linear

    losses = output_losses(config)
    assert set(losses) == {"probabilities", "score"}
    model.compile(
        optimizer="adam",
        loss={k: loss for k, (loss, _) in losses.items()},
        loss_weights={k: w for k, (_, w) in losses.items()},
    )
    inputs = dummy_inputs(modality_specs(config), 4)
    score = np.array([[1.0, 2.0], [np.nan, np.nan], [0.5, np.nan], [0, 1]])
    targets = {
        "probabilities": np.eye(4, dtype="float32"),
        "modality_weights": np.zeros((4, 2), "float32"),
        "score": score.astype("float32"),
    }
    history = model.fit(inputs, targets, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    assert np.isfinite(history["score_loss"][0])


def test_masked_mean_squared_error_ignores_nan():
    loss = MaskedMeanSquaredError()
    y_pred = np.array([[1.0], [2.0], [3.0], [4.0]], "float32")
    y_true = np.array([[0.0], [np.nan], [1.0], [np.nan]], "float32")
    # Mean over the two present targets: (1 + 4) / 2.
    assert float(loss(y_true, y_pred)) == pytest.approx(2.5)
    # [B] targets for a one-column score.
    assert float(loss(y_true[:, 0], y_pred)) == pytest.approx(2.5)
    # A row without a target adds nothing, whatever its prediction.
    y_pred_changed = y_pred.copy()
    y_pred_changed[1] = 100.0
    assert float(loss(y_true, y_pred_changed)) == pytest.approx(2.5)

    # No targets at all: zero loss and a finite (zero) gradient.
    variable = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        value = loss(np.full((4, 1), np.nan, "float32"), variable * 2.0)
    gradient = tape.gradient(value, variable)
    assert float(value) == 0.0
    np.testing.assert_array_equal(gradient.numpy(), 0.0)

    # Only present targets get a gradient.
    with tf.GradientTape() as tape:
        value = loss(y_true, variable)
    gradient = tape.gradient(value, variable).numpy()[:, 0]
    np.testing.assert_allclose(gradient, [1.0, 0.0, 2.0, 0.0])

    restored = MaskedMeanSquaredError.from_config(loss.get_config())
    assert float(restored(y_true, y_pred)) == pytest.approx(2.5)
    assert isinstance(
        keras.losses.deserialize(keras.losses.serialize(loss)),
        MaskedMeanSquaredError,
    )


def test_keras_round_trip(tmp_path):
    config = _config(
        inputs=THREE,
        fusion="attention",
        head="softmax",
        num_targets=1,
        reconstruction_weight=0.5,
        modality_dropout=0.2,
    )
    model = build_multimodal_classifier(config)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    inputs = dummy_inputs(modality_specs(config), 3)
    want, got = model(inputs), loaded(inputs)
    assert (
        set(got)
        == set(want)
        == {
            "probabilities",
            "modality_weights",
            "score",
            "reconstruction",
        }
    )
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=1e-5, err_msg=key)


CASES = [
    (fusion, level)
    for fusion in FUSION_METHODS
    for level in FUSION_LEVELS
    if not (fusion in SEQUENCE_FUSIONS and level == "late")
]


@pytest.mark.parametrize("fusion, level", CASES)
def test_every_fusion_at_its_levels(fusion, level):
    config = _config(
        inputs=(("photo", "image"), ("caption", "text")),
        fusion=fusion,
        fusion_level=level,
    )
    model = build_multimodal_classifier(config)
    _, out = _run(model, config, batch=3)
    assert set(out) == set(output_names(config))
    assert out["probabilities"].shape == (3, 3)
    assert all(np.isfinite(v).all() for v in out.values())


def test_fitted_specs_drive_the_inputs():
    specs = (
        {"name": "image", "size": 24, "kind": "image"},
        dataclasses.asdict(TextSpec("text", max_length=5, vocabulary_size=9)),
    )
    config = _config(specs=specs, fusion="concat")
    assert isinstance(config.specs[0], ImageSpec)
    model = build_multimodal_classifier(config)
    shapes = {i.name: tuple(i.shape) for i in model.inputs}
    assert shapes == {"image": (None, 24, 24, 3), "text": (None, 5)}
    embedding = model.get_layer("text_encoder").get_layer("token_embedding")
    assert embedding.input_dim == 9
    # Ablating keeps the fitted spec of the remaining modality.
    ablated = dataclasses.replace(config, modalities="text")
    assert modality_specs(ablated) == (config.specs[1],)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"modalities": "image,audio"}, "valid: image, text, text2|subset of"),
        ({"fusion": "cross_attention"}, "exactly two modalities"),
        ({"inputs": (("image", "smell"),)}, "unknown kind 'smell'"),
        ({"head": "relu"}, "unknown head 'relu'; valid: sigmoid, softmax"),
        ({"head": "softmax", "num_labels": 1}, "num_labels >= 2"),
        (
            {"specs": ({"name": "image", "size": 8, "kind": "image"},)},
            "not for modalities",
        ),
        (
            {"modalities": "text", "reconstruction_weight": 1.0},
            "needs an image modality",
        ),
    ],
)
def test_config_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        _config(**{"inputs": THREE, **overrides})


def test_modality_mask_kinds_and_legacy_config():
    ids = np.array([[3, 0], [0, 0]], "int32")
    image = np.ones((2, 4, 4, 3), "float32")
    mask = ModalityMask(("image", "text"))([image, ids])
    np.testing.assert_array_equal(mask, [[1, 1], [1, 0]])
    config = ModalityMask(("image", "text")).get_config()
    assert config["kinds"] == ["image", "text"]
    legacy = ModalityMask(token_inputs=[False, True], name="modality_mask")
    assert legacy.kinds == ("image", "text")


def test_transformer_text_encoders_and_cross_attention():
    config = _config(
        inputs=(("title", "text"), ("body", "text")),
        text_encoder="transformer",
        fusion="cross_attention",
    )
    model = build_multimodal_classifier(config)
    _, out = _run(model, config)
    assert out["probabilities"].shape == (4, 3)
    assert np.isfinite(out["probabilities"]).all()


def test_new_fields_defaults_and_normalization():
    config = _config()
    assert config.text_loss == "crossentropy"
    assert config.target_mean == () and config.target_std == ()
    assert not config.serve_reconstruction and not config.head_from_data
    assert "stack_logits" in FUSIONS and "stack_logits" not in FUSION_METHODS
    stacked = _config(fusion="stack_logits", target_mean=[2], target_std=3)
    assert stacked.fusion_level == "late"
    assert stacked.target_mean == (2.0,) and stacked.target_std == (3.0,)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"text_loss": "hinge"}, "unknown text_loss 'hinge'; valid: cross"),
        ({"text_loss": "matching"}, "needs head 'softmax'"),
        (
            {"num_targets": 1, "target_mean": (1.0, 2.0)},
            r"target_mean=\(1.0, 2.0\) has 2 values for num_targets=1",
        ),
        (
            {"num_targets": 1, "target_std": (0.0,)},
            "expected finite values > 0",
        ),
        ({"fusion": "stacking"}, "valid: .*stack_logits"),
    ],
)
def test_new_field_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        _config(**overrides)


@pytest.mark.parametrize("fusion", ["concat", "stack_logits"])
def test_score_is_in_target_units(fusion):
    mean, std = (10.0, -2.0), (4.0, 0.5)
    config = _config(
        head="softmax",
        num_targets=2,
        target_mean=mean,
        target_std=std,
        fusion=fusion,
    )
    model = build_multimodal_classifier(config)
    standardized = keras.Model(
        model.inputs, model.get_layer("score_standardized").output
    )
    inputs = dummy_inputs(modality_specs(config), 3)
    z = np.asarray(standardized(inputs))
    score = np.asarray(model(inputs)["score"])
    np.testing.assert_allclose(score, z * std + mean, rtol=1e-5, atol=1e-5)
    loss, weight = output_losses(config)["score"]
    assert loss.mean == mean and loss.std == std and weight == 1.0


def test_target_scale_layer():
    layer = TargetScale(mean=(1.0, 2.0), std=(10.0, 0.5))
    out = layer(np.array([[1.0, 2.0]], "float32"))
    np.testing.assert_allclose(out, [[11.0, 3.0]])
    restored = TargetScale.from_config(layer.get_config())
    assert restored.mean == (1.0, 2.0) and restored.std == (10.0, 0.5)
    np.testing.assert_allclose(TargetScale()(np.ones((2, 1))), 1.0)
    with pytest.raises(ValueError, match="std"):
        TargetScale(std=(0.0,))


def test_masked_mse_standardizes_both_sides():
    loss = MaskedMeanSquaredError(mean=(100.0,), std=(10.0,))
    y_true = np.array([[110.0], [np.nan], [90.0]], "float32")
    y_pred = np.array([[100.0], [5.0], [110.0]], "float32")
    # Standardized errors: 1 and 2, mean of squares (1 + 4) / 2.
    assert float(loss(y_true, y_pred)) == pytest.approx(2.5)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert restored.mean == (100.0,) and restored.std == (10.0,)
    assert float(restored(y_true, y_pred)) == pytest.approx(2.5)


def test_matching_loss_is_the_in_batch_softmax():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(5, 4)).astype("float32")
    embeddings = rng.normal(size=(4, 3)).astype("float32")  # E, per label
    labels = np.eye(3, dtype="float32")[[0, 2, 1, 2, 0]]
    logits = features @ embeddings
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    # The seed's loss: s_ij = embed(y_j)ᵀ embed(x_i), −log softmax_j at i.
    scores = features @ (labels @ embeddings.T).T
    log_softmax = scores - np.log(np.exp(scores).sum(1, keepdims=True))
    expected = -np.mean(np.diag(log_softmax))
    loss = MatchingLoss()
    assert float(loss(labels, probabilities)) == pytest.approx(
        expected, rel=1e-4
    )
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, MatchingLoss)

    variable = tf.Variable(logits)
    with tf.GradientTape() as tape:
        value = loss(labels, tf.nn.softmax(variable))
    gradient = tape.gradient(value, variable).numpy()
    assert np.isfinite(float(value)) and np.isfinite(gradient).all()
    assert np.abs(gradient).sum() > 0


def test_matching_text_loss_trains_bias_free_logits():
    config = _config(head="softmax", text_loss="matching")
    model = build_multimodal_classifier(config)
    assert not model.get_layer("logits").use_bias
    loss, _ = output_losses(config)["probabilities"]
    assert isinstance(loss, MatchingLoss)
    model.compile(optimizer="adam", loss=loss, run_eagerly=True)
    inputs = dummy_inputs(modality_specs(config), 6)
    labels = np.eye(3, dtype="float32")[[0, 1, 2, 0, 1, 2]]
    history = model.fit(inputs, labels, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])


def test_stack_logits_fuses_per_modality_logits():
    config = _config(inputs=THREE, fusion="stack_logits", head="softmax")
    model = build_multimodal_classifier(config)
    for modality in ("image", "text", "text2"):
        assert model.get_layer(f"{modality}_logits").units == 3
    assert model.get_layer("logits").input.shape[-1] == 9
    _, out = _run(model, config)
    assert set(out) == {"probabilities"}
    np.testing.assert_allclose(out["probabilities"].sum(1), 1.0, atol=1e-5)
    model.compile(
        optimizer="adam", loss="categorical_crossentropy", run_eagerly=True
    )
    inputs = dummy_inputs(modality_specs(config), 4)
    history = model.fit(
        inputs, np.eye(3, dtype="float32")[[0, 1, 2, 0]], epochs=1, verbose=0
    ).history
    assert np.isfinite(history["loss"][0])


def test_serve_reconstruction_builds_the_decoder_without_training_it():
    config = _config(serve_reconstruction=True)
    assert output_names(config) == ("probabilities", "reconstruction")
    loss, weight = output_losses(config)["reconstruction"]
    assert weight == 0.0
    model = build_multimodal_classifier(config)
    _, out = _run(model, config)
    assert out["reconstruction"].shape == (4, 16, 16, 3)
    # Without an image modality there is nothing to reconstruct.
    text_only = _config(serve_reconstruction=True, modalities="text")
    assert output_names(text_only) == ("probabilities",)


def test_output_losses_cover_every_output():
    config = _config(
        head="sigmoid",
        num_targets=1,
        target_mean=(3.0,),
        target_std=(2.0,),
        reconstruction_weight=0.5,
        regression_weight=0.25,
    )
    losses = output_losses(config)
    assert set(losses) == {"probabilities", "score", "reconstruction"}
    assert isinstance(
        losses["probabilities"][0], keras.losses.BinaryCrossentropy
    )
    assert losses["score"][1] == 0.25 and losses["reconstruction"][1] == 0.5
    softmax = output_losses(_config(head="softmax"))["probabilities"][0]
    assert isinstance(softmax, keras.losses.CategoricalCrossentropy)


def test_round_trip_with_target_scale_and_matching(tmp_path):
    config = _config(
        fusion="stack_logits",
        head="softmax",
        text_loss="matching",
        num_targets=1,
        target_mean=(5.0,),
        target_std=(2.0,),
        serve_reconstruction=True,
    )
    model = build_multimodal_classifier(config)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    inputs = dummy_inputs(modality_specs(config), 3)
    want, got = model(inputs), loaded(inputs)
    assert set(got) == {"probabilities", "score", "reconstruction"}
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=1e-5, err_msg=key)
