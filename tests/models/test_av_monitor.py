"""av_monitor: the audio + video configuration of the multimodal
classifier, its encoders and the audio/video modality masks."""

import numpy as np
import pytest

import mmzoo
from mmzoo.encoders.audio import build_audio_encoder
from mmzoo.layers import NaNMask
from mmzoo.models.multimodal import ModalityMask, modality_specs
from mmzoo.specs import dummy_inputs


def _inputs(config, batch=3, seed=0):
    return dummy_inputs(modality_specs(config), batch, seed)


def test_tiny_builds_with_video_and_audio_inputs():
    config = mmzoo.get_config("av_monitor", "tiny", num_labels=3)
    model = mmzoo.build("av_monitor", config=config)
    assert {t.name for t in model.inputs} == {"frames", "audio"}
    specs = {s.name: s for s in modality_specs(config)}
    assert specs["frames"].input_shape == (4, 32, 32, 3)
    assert specs["audio"].input_shape == (8000,)
    out = np.asarray(model(_inputs(config), training=False))
    assert out.shape == (3, 3) and np.isfinite(out).all()
    assert ((out >= 0) & (out <= 1)).all()  # sigmoid, multi-label
    names = [layer.name for layer in model.layers]
    assert "fusion" in names and "modality_dropout" in names


def test_missing_audio_and_padding_frames_are_masked_not_nan():
    config = mmzoo.get_config("av_monitor", "tiny", num_labels=2)
    model = mmzoo.build("av_monitor", config=config)
    inputs = _inputs(config)  # row 1: missing audio; row 2: all padding
    out = np.asarray(model(inputs, training=False))
    assert np.isfinite(out).all()
    mask = ModalityMask(("video", "audio"))([inputs["frames"], inputs["audio"]])
    np.testing.assert_array_equal(np.asarray(mask), [[1, 1], [1, 0], [0, 1]])
    # A missing audio is its absence, not a silence: the output differs
    # from the same clip with silent audio.
    silent = dict(inputs, audio=np.nan_to_num(inputs["audio"], nan=0.0))
    assert not np.allclose(
        np.asarray(model(silent, training=False))[1], out[1], atol=1e-6
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"fusion": "concat"},
        {"fusion": "gmu", "fusion_level": "late"},
        {"fusion": "attention", "fusion_level": "early"},
        {"audio_encoder": "transformer", "video_temporal": "transformer"},
        {"audio_encoder": "mel", "video_temporal": "mean"},
        {"modalities": "audio"},
        {"modalities": "frames"},
    ],
)
def test_fusions_levels_and_encoders_build(overrides):
    config = mmzoo.get_config(
        "av_monitor", "tiny", num_labels=2, text_num_layers=1, **overrides
    )
    model = mmzoo.build("av_monitor", config=config)
    out = model(_inputs(config), training=False)
    if isinstance(out, dict):
        out = out["probabilities"]
    assert np.asarray(out).shape == (3, 2) and np.isfinite(out).all()


def test_a_snapshot_image_can_join_with_a_vector_fusion():
    inputs = (("frames", "video"), ("audio", "audio"), ("snapshot", "image"))
    with pytest.raises(ValueError, match="exactly two modalities"):
        mmzoo.get_config("av_monitor", "tiny", inputs=inputs)
    config = mmzoo.get_config(
        "av_monitor", "tiny", inputs=inputs, fusion="attention"
    )
    model = mmzoo.build("av_monitor", config=config)
    out = model(_inputs(config), training=False)
    assert np.asarray(out["probabilities"]).shape == (3, config.num_labels)
    assert np.asarray(out["modality_weights"]).shape == (3, 3)


def test_bad_audio_and_video_settings_are_named():
    with pytest.raises(ValueError, match="audio_encoder"):
        mmzoo.get_config("av_monitor", "tiny", audio_encoder="vggish")
    with pytest.raises(ValueError, match="video_temporal"):
        mmzoo.get_config("av_monitor", "tiny", video_temporal="lstm")
    with pytest.raises(ValueError, match="sample_rate"):
        mmzoo.get_config("av_monitor", "tiny", audio_sample_rate=10)


def test_audio_encoder_sequence_has_positions_and_masks_missing_rows():
    encoder = build_audio_encoder(
        4000,
        8000,
        num_mel_bins=16,
        fft_length=128,
        stride=64,
        filters=(8,),
        units=8,
    )
    waves = np.random.default_rng(0).normal(0, 0.1, (2, 4000))
    waves = waves.astype("float32")
    waves[1] = np.nan
    pooled, sequence, mask = (np.asarray(t) for t in encoder(waves))
    assert mask[0].all() and not mask[1].any()
    assert np.isfinite(pooled).all() and np.isfinite(sequence).all()
    assert (pooled[1] == 0).all()  # nothing to pool in a missing audio


def test_nan_mask_layer():
    values = np.ones((2, 3, 4), "float32")
    values[0, 1, 2] = np.nan
    cleaned, mask = NaNMask(2)(values)
    np.testing.assert_array_equal(np.asarray(mask), [[1, 0, 1], [1, 1, 1]])
    assert np.asarray(cleaned)[0, 1].sum() == 0
    assert np.isfinite(np.asarray(cleaned)).all()
    _, rows = NaNMask(1)(values)
    np.testing.assert_array_equal(np.asarray(rows), [0, 1])


SENSOR_INPUTS = (("frames", "video"), ("audio", "audio"), ("sensors", "sensor"))


def test_sensor_readings_join_as_a_modality():
    config = mmzoo.get_config(
        "av_monitor", "tiny", inputs=SENSOR_INPUTS, fusion="attention"
    )
    model = mmzoo.build("av_monitor", config=config)
    inputs = _inputs(config)  # sensors: row 0 one NaN reading, row 2 none
    out = model(inputs, training=False)
    assert np.isfinite(np.asarray(out["probabilities"])).all()
    weights = np.asarray(out["modality_weights"])
    assert weights[2, 2] == 0 and weights[0, 2] > 0  # missing row: weight 0


def test_sensor_model_passes_the_contract(tmp_path):
    """The `sensor` kind end to end on the dummy dataset: fit step, .keras
    reload, export (both signatures) equal to the Python outputs."""
    from mmzoo.testing import check_model

    report = check_model(
        "av_monitor",
        str(tmp_path),
        verify_export=False,
        inputs=SENSOR_INPUTS,
        fusion="attention",
    )
    assert set(report.signatures) == {"serving_default", "waveform"}
    assert report.examples["sensors"].dtype == np.float32


def test_a_rows_output_does_not_depend_on_its_batch():
    # The log-mel has no clamp relative to the batch's loudest row: one
    # clip served alone or beside others gets the same probabilities.
    config = mmzoo.get_config("av_monitor", "tiny", num_labels=2)
    model = mmzoo.build("av_monitor", config=config)
    inputs = _inputs(config, batch=4)
    inputs["audio"][3] *= 0.001  # a quiet clip beside loud ones
    together = np.asarray(model(inputs, training=False))
    for row in range(4):
        alone = {k: v[row : row + 1] for k, v in inputs.items()}
        np.testing.assert_allclose(
            np.asarray(model(alone, training=False))[0],
            together[row],
            atol=1e-5,
        )


def test_frames_go_through_a_keras_hub_preset(tmp_path):
    # Any registered image encoder runs per frame, presets included (here
    # a tiny random ViT saved as a local preset: nothing is downloaded).
    from mmzoo.encoders import save_tiny_preset

    preset = save_tiny_preset("vit", str(tmp_path / "vit"), image_size=32)
    config = mmzoo.get_config(
        "av_monitor",
        "tiny",
        num_labels=2,
        image_encoder="vit",
        image_preset=preset,
        image_trainable=False,
    )
    model = mmzoo.build("av_monitor", config=config)
    frame_encoder = model.get_layer("frames_encoder").get_layer("frames")
    assert not any(w.trainable for w in frame_encoder.layer.weights)
    out = np.asarray(model(_inputs(config), training=False))
    assert out.shape == (3, 2) and np.isfinite(out).all()
