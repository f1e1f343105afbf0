"""Tests for the LSTNet diagnosis model (mmzoo/models/lstnet_diagnosis.py)."""

import keras
import numpy as np
import pytest

import mmzoo
from mmzoo.layers import FUSION_METHODS, WEIGHTED_FUSIONS
from mmzoo.models.lstnet_diagnosis import output_losses, output_names

NAME = "lstnet_diagnosis"
SIZE = 32
LENGTH = 12
# Small, fast models; the tiny variant with smaller images and reports.
SMALL = {"image_size": SIZE, "max_text_length": LENGTH, "dropout": 0.0}


def _build(**overrides):
    return mmzoo.build(NAME, "tiny", **{**SMALL, **overrides})


def _inputs(batch=4, seed=0, missing=(1,)):
    rng = np.random.default_rng(seed)
    report = rng.integers(2, 50, (batch, LENGTH)).astype("int32")
    report[:, 8:] = 0
    for row in missing:
        report[row] = 0
    image = rng.uniform(0, 255, (batch, SIZE, SIZE, 3)).astype("float32")
    return {"image": image, "report": report}


def _as_dict(outputs):
    if isinstance(outputs, dict):
        return {k: np.asarray(v) for k, v in outputs.items()}
    return {"probabilities": np.asarray(outputs)}


CASES = [("intermediate", fusion) for fusion in FUSION_METHODS] + [
    ("early", "concat"),
    ("early", "attention"),
    ("early", "cross_attention"),
    ("early", "lmf"),
    ("late", "concat"),
    ("late", "gmu"),
    ("late", "max_alignment"),
]


@pytest.mark.parametrize("level, fusion", CASES)
def test_output_shapes_and_missing_report(level, fusion):
    model = _build(fusion=fusion, fusion_level=level)
    outputs = _as_dict(model(_inputs()))
    assert set(outputs) == set(
        output_names(model_config(fusion=fusion, fusion_level=level))
    )
    assert outputs["probabilities"].shape == (4, 3)
    for value in outputs.values():
        assert np.all(np.isfinite(value))
    probabilities = outputs["probabilities"]
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    if fusion in WEIGHTED_FUSIONS:
        weights = outputs["modality_weights"]
        assert weights.shape == (4, 2)
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
        assert weights[1, 1] == 0.0  # row 1 has no report
        assert np.all(weights[[0, 2, 3], 1] > 0)
    else:
        assert "modality_weights" not in outputs


def model_config(**overrides):
    return mmzoo.get_config(NAME, "tiny", **{**SMALL, **overrides})


def test_inputs_are_named_and_typed():
    model = _build()
    specs = {i.name: (i.dtype, tuple(i.shape)) for i in model.inputs}
    assert specs == {
        "image": ("float32", (None, SIZE, SIZE, 3)),
        "report": ("int32", (None, LENGTH)),
    }


@pytest.mark.parametrize("fusion", ["concat", "attention", "cross_attention"])
def test_missing_report_ignores_report_branch(fusion):
    # An all-zero report is masked: the prediction does not depend on what
    # the report branch would have computed, only on the mask.
    model = _build(fusion=fusion)
    inputs = _inputs(missing=(1,))
    first = _as_dict(model(inputs))["probabilities"][1]
    encoder = model.get_layer("report_encoder")
    for weight in encoder.weights:
        weight.assign(weight + 0.5)
    second = _as_dict(model(inputs))["probabilities"]
    np.testing.assert_allclose(second[1], first, atol=1e-6)


@pytest.mark.parametrize(
    "modalities, inputs",
    [(("image",), ["image"]), ("report", ["report"]), ("image,report", None)],
)
def test_modalities_turn_branches_off(modalities, inputs):
    model = _build(modalities=modalities, fusion="attention")
    names = sorted(i.name for i in model.inputs)
    assert names == (inputs or ["image", "report"])
    out = model({k: v for k, v in _inputs().items() if k in names})
    if inputs:  # one modality: no fusion, no weights
        assert tuple(out.shape) == (4, 3)
        assert "fusion" not in [layer.name for layer in model.layers]


def test_modality_dropout_only_in_training():
    model = _build(fusion="attention", modality_dropout=0.5)
    inputs = _inputs(batch=64, missing=())
    inference = _as_dict(model(inputs, training=False))["modality_weights"]
    assert np.all(inference > 0)  # nothing dropped
    again = _as_dict(model(inputs, training=False))["modality_weights"]
    np.testing.assert_array_equal(inference, again)
    training = _as_dict(model(inputs, training=True))["modality_weights"]
    dropped = (training == 0).any(axis=1)
    assert 5 < dropped.sum() < 64
    # Never both: each row keeps a modality with weight 1.
    np.testing.assert_allclose(training[dropped].max(axis=1), 1.0)


def test_reconstruction_output_and_loss():
    config = model_config(reconstruction_weight=0.5, classification_weight=2)
    model = mmzoo.build(NAME, config=config)
    outputs = _as_dict(model(_inputs()))
    assert set(outputs) == {"probabilities", "reconstruction"}
    assert outputs["reconstruction"].shape == (4, SIZE, SIZE, 3)
    assert np.all(
        (outputs["reconstruction"] >= 0) & (outputs["reconstruction"] <= 1)
    )
    _compile(model, config)
    inputs = _inputs()
    labels = np.array([[1, 0, 1]] * 4, "float32")
    targets = {
        "probabilities": labels,
        "reconstruction": inputs["image"] / 255.0,
    }
    history = model.fit(inputs, targets, epochs=1, verbose=0)
    assert {"loss", "reconstruction_loss", "probabilities_loss"} <= set(
        history.history
    )
    total = history.history["loss"][0]
    parts = (
        2 * history.history["probabilities_loss"][0]
        + 0.5 * history.history["reconstruction_loss"][0]
    )
    assert total == pytest.approx(parts, rel=1e-4)


def _compile(model, config):
    losses = output_losses(config)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss={name: loss for name, (loss, _) in losses.items()},
        loss_weights={name: weight for name, (_, weight) in losses.items()},
    )


def test_empty_modalities_mean_all():
    assert model_config(modalities=()).modalities == ("image", "report")
    assert model_config(modalities="report").modalities == ("report",)


def test_no_reconstruction_without_alpha():
    assert "reconstruction" not in output_names(model_config())


def test_reconstruction_with_odd_image_size():
    model = _build(image_size=36, reconstruction_weight=1.0)
    inputs = _inputs()
    inputs["image"] = np.zeros((4, 36, 36, 3), "float32")
    out = _as_dict(model(inputs))
    assert out["reconstruction"].shape == (4, 36, 36, 3)


@pytest.mark.parametrize(
    "overrides",
    [
        {"fusion": "attention"},
        {"fusion": "cross_attention", "modality_dropout": 0.2},
        {"fusion": "gmu", "fusion_level": "late"},
        {"fusion": "concat", "reconstruction_weight": 0.1},
    ],
)
def test_keras_round_trip(overrides, tmp_path):
    model = _build(**overrides)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    inputs = _inputs()
    got, want = _as_dict(loaded(inputs)), _as_dict(model(inputs))
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=1e-5, err_msg=key)


@pytest.mark.parametrize(
    "encoder", ["resnet50", "efficientnetb0", "vit", "patches"]
)
def test_image_encoders(encoder):
    model = _build(image_encoder=encoder, fusion="cross_attention")
    out = np.asarray(model(_inputs(batch=2)))
    assert out.shape == (2, 3) and np.all(np.isfinite(out))


def test_bilstm_report_encoder():
    model = _build(text_encoder="bilstm", fusion="gmu")
    out = _as_dict(model(_inputs()))
    assert out["probabilities"].shape == (4, 3)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"fusion": "sum"}, "unknown fusion 'sum'; valid: concat"),
        ({"fusion_level": "mid"}, "unknown fusion_level 'mid'"),
        ({"modalities": ("image", "audio")}, "modalities=.*image, report"),
        ({"modalities": ("image", "image")}, "without repeats"),
        (
            {"fusion": "cross_attention", "fusion_level": "late"},
            "Use fusion_level 'early' or 'intermediate'",
        ),
        (
            {"modalities": "report", "reconstruction_weight": 1.0},
            "needs an image modality",
        ),
        ({"modality_dropout": 1.0}, "modality_dropout=1.0"),
        ({"image_encoder": "vgg"}, "unknown image_encoder 'vgg'"),
        ({"num_labels": 2, "label_names": ("a",)}, "1 label_names"),
    ],
)
def test_config_errors_name_the_bad_value(overrides, message):
    with pytest.raises(ValueError, match=message):
        model_config(**overrides)


def test_unknown_override_is_rejected():
    with pytest.raises(ValueError, match="unknown override 'fusion_type'"):
        mmzoo.get_config(NAME, "tiny", fusion_type="concat")
