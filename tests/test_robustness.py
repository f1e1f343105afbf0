"""`mmzoo robustness RUN_DIR`: one modality at a time corrupted on the raw
inputs (`mmzoo.data.corruptions`, `mmzoo.robustness`).

Two tiny real runs (an image + report classifier and DeepFM) are trained
once per module and reported through `mmzoo.cli.main` in this process.
"""

import contextlib
import io
import json
import math
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from mmzoo import cli, robustness, training
from mmzoo.data import corruptions
from mmzoo.data.modalities import Preprocessor
from mmzoo.specs import (
    AudioSpec,
    ImageSpec,
    SensorSpec,
    TextSpec,
    encode_png,
    encode_wav,
)

RNG = np.random.default_rng(0)


def _png(pixels):
    return encode_png(np.asarray(pixels, np.uint8))


def _pixels(data):
    return tf.io.decode_png(data, channels=3).numpy().astype(np.float64)


def _text(tensor):
    return [v.decode("utf-8") for v in np.asarray(tensor).reshape(-1)]


# ------------------------------------------------------- corruptions --


@pytest.mark.parametrize(
    "fn, values",
    [
        (corruptions.gaussian_noise, [_png(np.full((8, 8, 3), 10))]),
        (corruptions.blur, [_png(np.full((8, 8, 3), 10))]),
        (corruptions.occlusion, [_png(np.full((8, 8, 3), 10))]),
        (corruptions.word_dropout, ["no fever"]),
        (corruptions.typos, ["no fever"]),
        (corruptions.audio_noise, [b""]),
        (corruptions.missing, [1.0, 2.0]),
    ],
)
def test_level_zero_returns_the_input_itself(fn, values):
    values = tf.constant(values)
    assert fn(values, 0.0, seed=5) is values


def test_gaussian_noise_has_sigma_level_times_128():
    image = _png(np.full((64, 64, 3), 128))
    (noisy,) = corruptions.gaussian_noise(tf.constant([image]), 0.25).numpy()
    difference = _pixels(noisy) - 128.0
    # sigma = 32 (values stay inside 0..255: 4 sigma of headroom).
    assert 30.0 < difference.std() < 34.0
    assert abs(difference.mean()) < 1.0


def test_blur_smooths_with_sigma_growing_with_level():
    checker = (np.indices((32, 32)).sum(axis=0) % 2 * 255)[..., None]
    image = _png(np.repeat(checker, 3, axis=2))
    spreads = [
        _pixels(corruptions.blur(tf.constant([image]), level)[0]).std()
        for level in (0.1, 0.5)
    ]
    assert _pixels(image).std() > 120
    # sigma 0.4 px keeps some contrast, 2 px none.
    assert 10 < spreads[0] < 120
    assert spreads[1] < 2


@pytest.mark.parametrize(
    "shape, level", [((40, 40), 0.25), ((40, 40), 0.5), ((20, 40), 0.5)]
)
def test_occlusion_covers_the_level_of_the_area(shape, level):
    pixels = RNG.integers(0, 120, (*shape, 3))  # never the gray 128
    image = _png(pixels)
    (out,) = corruptions.occlusion(tf.constant([image]), level).numpy()
    out = _pixels(out)
    gray = np.all(out == 128, axis=-1)
    assert abs(gray.mean() - level) < 0.02
    # One rectangle, the rest untouched.
    rows, columns = np.nonzero(gray)
    box = gray[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    assert box.all()
    np.testing.assert_array_equal(out[~gray], pixels[~gray])


def test_image_corruptions_keep_missing_frames_and_the_shape():
    frame = _png(RNG.integers(0, 256, (12, 16, 3)))
    clips = tf.constant([[frame, frame, b""], [b"", b"", b""]])
    for fn in (corruptions.gaussian_noise, corruptions.occlusion):
        out = fn(clips, 0.5, seed=1, keys=tf.constant([7, 8], tf.int64))
        assert out.shape == (2, 3)
        out = out.numpy()
        assert out[0, 2] == b"" and list(out[1]) == [b""] * 3
        assert out[0, 0] != frame
    # One clip is covered at one place in all its frames, and its frames
    # get their own noise.
    covered = corruptions.occlusion(clips, 0.5, keys=tf.constant([7, 8]))
    np.testing.assert_array_equal(
        _pixels(covered[0, 0]), _pixels(covered[0, 1])
    )
    noisy = corruptions.gaussian_noise(clips, 0.5, keys=tf.constant([7, 8]))
    assert noisy[0, 0].numpy() != noisy[0, 1].numpy()


def test_word_dropout_drops_words_and_everything_at_one():
    text = " ".join(f"w{i}" for i in range(200))
    texts = tf.constant([text, "single", ""])
    assert _text(corruptions.word_dropout(texts, 1.0)) == ["", "", ""]
    kept = _text(corruptions.word_dropout(texts, 0.5, seed=1))[0].split()
    assert 70 < len(kept) < 130
    # Kept words stay in order.
    assert kept == sorted(kept, key=lambda w: int(w[1:]))


def test_typos_keep_the_length_and_touch_letters_only():
    text = "Fever 38.5, cough; café " * 20
    (out,) = _text(corruptions.typos(tf.constant([text]), 1.0, seed=2))
    assert len(out) == len(text)
    changed = [a != b for a, b in zip(text, out)]
    assert all(a == b for a, b in zip(text, out) if not a.isalpha())
    letters = sum(c.isalpha() for c in text)
    # Probability level / 2 = 0.5 per letter (1/26 drawn back as itself).
    assert 0.35 * letters < sum(changed) < 0.6 * letters
    assert all(b in "abcdefghijklmnopqrstuvwxyz" for a, b, c in zip(
        text, out, changed) if c)  # fmt: skip


def test_missing_at_one_is_everything_missing():
    numbers = tf.constant(RNG.normal(size=(50, 4)), tf.float32)
    assert np.isnan(corruptions.missing(numbers, 1.0).numpy()).all()
    strings = tf.constant(["a", "b|c", "d"])
    assert _text(corruptions.missing(strings, 1.0)) == ["", "", ""]
    # Integer cells become strings, then go missing.
    assert _text(corruptions.missing(tf.constant([3, 4]), 1.0)) == ["", ""]
    half = corruptions.missing(numbers, 0.5, keys=tf.range(50, dtype=tf.int64))
    assert 0.35 < np.isnan(half.numpy()).mean() < 0.65


def test_removed_leaves_only_missing_values():
    clips = tf.constant([["a", "b"], ["c", ""]])
    assert _text(corruptions.removed(clips)) == [""] * 4
    assert np.isnan(corruptions.removed(tf.constant([1.0, 2.0])).numpy()).all()


def test_audio_noise_has_twice_level_times_rms():
    time = np.arange(16000) / 16000.0
    clean = 0.3 * np.sin(2 * np.pi * 220 * time)
    wav = encode_wav(clean, 16000)
    out = corruptions.audio_noise(
        tf.constant([wav, b""]), 0.5, num_samples=16000, sample_rate=16000
    ).numpy()
    assert out[1] == b""
    decoded = tf.audio.decode_wav(out[0]).audio.numpy()[:, 0]
    rms = np.sqrt(np.mean(clean**2))
    # std = 2 * 0.5 * rms: SNR 0 dB at level 0.5.
    assert 0.95 < (decoded - clean).std() / rms < 1.05


def test_same_seed_same_draws_whatever_the_batch():
    texts = ["the cat sat on the mat today", "no acute findings seen here"]
    pngs = [_png(RNG.integers(0, 256, (10, 10, 3))) for _ in range(2)]
    for fn, values in (
        (corruptions.word_dropout, texts),
        (corruptions.typos, texts),
        (corruptions.gaussian_noise, pngs),
        (corruptions.missing, list(np.arange(20) + 0.5)),
    ):
        batch = fn(tf.constant(values), 0.5, seed=4).numpy()
        again = fn(tf.constant(values), 0.5, seed=4).numpy()
        alone = fn(tf.constant(values[1:]), 0.5, seed=4).numpy()
        np.testing.assert_array_equal(batch, again)
        np.testing.assert_array_equal(batch[1:], alone)
        other = fn(tf.constant(values), 0.5, seed=5).numpy()
        assert not np.array_equal(batch, other), fn.__name__


# ----------------------------------------------------------- wrapper --


class _Recorder:
    """A preprocessor stand-in that returns what it receives."""

    specs = (ImageSpec(name="image", size=8), TextSpec(name="report"))
    serving_options = "options"

    def __init__(self):
        self.processors = {"image": lambda v: v, "report": lambda v: v}

    def __call__(self, raw):
        return dict(raw)

    def images(self, values):
        return values


def test_wrapper_corrupts_every_entry_point_and_delegates_the_rest():
    inner = _Recorder()
    image = _png(RNG.integers(0, 120, (8, 8, 3)))
    wrapped = corruptions.CorruptedInputs(
        inner,
        {
            "report": corruptions.make_corruption("word_dropout", 1.0),
            "image": corruptions.make_corruption("occlusion", 1.0),
        },
    )
    raw = {"image": tf.constant([image]), "report": tf.constant(["a b"])}
    out = wrapped(raw)
    assert _text(out["report"]) == [""]
    assert np.all(_pixels(out["image"][0]) == 128)
    assert _text(wrapped.processors["report"](tf.constant(["x y"]))) == [""]
    assert np.all(_pixels(wrapped.images(tf.constant([image]))[0]) == 128)
    assert wrapped.specs is inner.specs
    assert wrapped.serving_options == "options"
    assert wrapped.inner is inner
    # Only named inputs are touched.
    only = corruptions.CorruptedInputs(
        inner, {"report": corruptions.make_corruption("word_dropout", 1.0)}
    )
    assert only.processors["image"] is inner.processors["image"]
    assert only(raw)["image"] is raw["image"]
    with pytest.raises(ValueError, match="unknown input.*audio"):
        corruptions.CorruptedInputs(inner, {"audio": corruptions.removed})


def test_wrapper_on_a_preprocessor_of_readings_and_audio(tmp_path):
    specs = (SensorSpec(dimension=3), AudioSpec(seconds=0.1))
    wrapped = corruptions.CorruptedInputs(
        Preprocessor(specs, str(tmp_path)),
        {
            "sensors": corruptions.make_corruption("missing", 0.5, seed=1),
            "audio": corruptions.make_corruption("removed", 1.0),
        },
    )
    wav = encode_wav(np.full(1600, 0.25), 16000)
    raw = {
        "sensors": tf.constant(RNG.normal(size=(64, 3)), tf.float32),
        "audio": tf.constant([wav] * 64),
    }
    out = wrapped(raw)
    assert out["sensors"].shape == (64, 3)
    assert 0.3 < np.isnan(out["sensors"].numpy()).mean() < 0.7
    # Rows draw independently of each other (row keys), readings too.
    assert len({tuple(np.isnan(row)) for row in out["sensors"].numpy()}) > 4
    assert np.isnan(out["audio"].numpy()).all()  # "" is a missing audio
    again = wrapped(raw)["sensors"].numpy()
    np.testing.assert_array_equal(np.isnan(again), np.isnan(out["sensors"]))


def test_bad_levels_are_named():
    with pytest.raises(ValueError, match="within 0..1, got 1.5"):
        robustness.check_levels([0, 1.5])
    with pytest.raises(ValueError, match="within 0..1, got 2"):
        corruptions.make_corruption("blur", 2)
    assert robustness.check_levels([1, 0, 0.5, 1]) == (0.0, 0.5, 1.0)


# ------------------------------------------------------- real runs --


def _report_through_cli(run_dir, *args):
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = cli.main(["robustness", str(run_dir), *args])
    assert code == 0
    with open(os.path.join(run_dir, robustness.JSON_FILE)) as f:
        report = json.load(f)
    return report, stdout.getvalue()


def _train(tmp_path_factory, model, **kwargs):
    run_dir = tmp_path_factory.mktemp("robustness") / model
    training.train(
        model,
        "synthetic",
        variant="tiny",
        export_dir=None,
        run_dir=str(run_dir),
        verbose=0,
        # The same weights every time: the margins below hold for them.
        deterministic=True,
        **kwargs,
    )
    return run_dir


@pytest.fixture(scope="module")
def diagnosis(tmp_path_factory):
    run_dir = _train(
        tmp_path_factory, "lstnet_diagnosis", epochs=2, steps_per_epoch=10
    )
    return run_dir, *_report_through_cli(run_dir, "--levels", "0,1")


@pytest.fixture(scope="module")
def deepfm(tmp_path_factory):
    run_dir = _train(tmp_path_factory, "deepfm", epochs=1, steps_per_epoch=50)
    return run_dir, *_report_through_cli(
        run_dir, "--levels", "0,0.5,1", "--batch-size", "128"
    )


def _rows(report):
    return {
        (r["modality"], r["corruption"], r["level"]): r for r in report["rows"]
    }


def _value(report, modality, corruption, level):
    return _rows(report)[(modality, corruption, level)]["value"]


def _test_metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return json.load(f)["test"]


def _check_files(run_dir, report, stdout):
    with open(os.path.join(run_dir, robustness.TEXT_FILE)) as f:
        table = f.read()
    assert stdout.strip() == table.strip()
    png = tf.io.decode_png(
        tf.io.read_file(os.path.join(run_dir, robustness.PLOT_FILE))
    )
    assert png.shape[0] > 200 and png.shape[1] > 400
    # The clean value is the run's own test evaluation (the same split
    # re-created from train.json; metrics.json holds task.evaluate's).
    clean = _test_metrics(run_dir)
    assert report["clean"].keys() == clean.keys()
    for name, value in clean.items():
        assert math.isclose(report["clean"][name], value, abs_tol=1e-6), name
    assert report["clean_value"] == report["clean"][report["metric"]]
    # Every value shows in the table with 4 decimals.
    for row in report["rows"]:
        assert f"{row['value']:.4f}" in table
    assert not [p for p in os.listdir(run_dir) if ".tmp-" in p]


def test_diagnosis_report(diagnosis):
    run_dir, report, stdout = diagnosis
    assert (report["model"], report["dataset"]) == (
        "lstnet_diagnosis",
        "synthetic",
    )
    assert report["metric"] == "auroc"
    expected = {
        (modality, corruption, level)
        for modality, names in (
            ("image", ("gaussian_noise", "blur", "occlusion")),
            ("report", ("word_dropout", "typos")),
        )
        for corruption in names
        for level in (0.0, 1.0)
    } | {("report", "removed", 1.0)}
    assert set(_rows(report)) == expected  # no removal of the image
    _check_files(run_dir, report, stdout)
    assert "image: not removed" in stdout
    clean = report["clean_value"]
    for key, row in _rows(report).items():
        assert row["kind"] == {"image": "image", "report": "text"}[key[0]]
        if key[2] == 0.0:
            assert row["value"] == clean
    # The report corruption reaches the model ...
    removed = _value(report, "report", "removed", 1.0)
    assert abs(removed - clean) > 1e-3
    # ... and dropping every word is a removed report (empty text).
    assert _value(report, "report", "word_dropout", 1.0) == removed
    # Wrecked pictures cost the image-dependent labels.
    worst = min(
        _value(report, "image", name, 1.0)
        for name in ("gaussian_noise", "blur", "occlusion")
    )
    assert worst < clean - 0.05


def test_deepfm_report(deepfm):
    run_dir, report, stdout = deepfm
    assert report["metric"] == "auc"
    assert report["levels"] == [0.0, 0.5, 1.0]
    assert report["batch_size"] == 128
    modalities = {m["name"]: m for m in report["modalities"]}
    assert modalities["numeric"]["inputs"] == ["price", "user_age"]
    assert modalities["categorical"]["inputs"] == [
        "user_id",
        "item_id",
        "user_segment",
        "item_category",
        "device",
        "tags",
    ]
    assert modalities["title"]["kind"] == "text"
    expected = {
        (modality, corruption, level)
        for modality, names in (
            ("categorical", ("missing",)),
            ("numeric", ("missing",)),
            ("title", ("word_dropout", "typos")),
        )
        for corruption in names
        for level in report["levels"]
    } | {(m, "removed", 1.0) for m in ("categorical", "numeric", "title")}
    assert set(_rows(report)) == expected
    _check_files(run_dir, report, stdout)
    clean = report["clean_value"]
    # Every cell missing is the whole group removed.
    for modality, corruption in (
        ("categorical", "missing"),
        ("numeric", "missing"),
        ("title", "word_dropout"),
    ):
        assert _value(report, modality, corruption, 1.0) == _value(
            report, modality, "removed", 1.0
        )
    # The ids carry most of the signal; losing them costs AUC steadily.
    curve = [
        _value(report, "categorical", "missing", level)
        for level in report["levels"]
    ]
    assert curve[-1] < clean - 0.03
    assert curve[1] < clean - 0.01


def test_same_seed_same_report_whatever_the_other_levels(deepfm, tmp_path):
    run_dir, report, _ = deepfm
    # A copy: this report would replace the module's files.
    run_dir = shutil.copytree(run_dir, tmp_path / "run")
    again = robustness.robustness_report(
        run_dir, levels=(0.5,), batch_size=128, verbose=False
    )
    assert set(_rows(again)) == {
        key for key in _rows(report) if key[2] != 0.0
    } - {(m, c, 1.0) for m, c, _ in _rows(report) if c != "removed"}
    for key, row in _rows(again).items():
        assert row["value"] == _value(report, *key), key


def test_unfinished_run_gives_the_clear_error(tmp_path, capsys):
    (tmp_path / training.ARGUMENTS_FILE).write_text("{}")
    assert cli.main(["robustness", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "holds no finished run" in err and "--resume" in err
    assert not os.path.exists(tmp_path / robustness.JSON_FILE)


def test_bad_levels_on_the_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["robustness", str(tmp_path), "--levels", "0,x"])
    assert "comma-separated numbers" in capsys.readouterr().err
