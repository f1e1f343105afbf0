"""Tests for the av-clips reader and its synthetic generator."""

import os
import wave

import numpy as np
import pytest
from PIL import Image

from mmzoo.data.av_clips import (
    LABELS,
    read_av_clips,
    write_synthetic_av_clips,
)
from mmzoo.specs import encode_png, encode_wav

NUM_CLIPS = 200
NUM_FRAMES = 8
SAMPLE_RATE = 8000


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("av"))
    assert (
        write_synthetic_av_clips(
            out,
            num_examples=NUM_CLIPS,
            seed=3,
            image_size=24,
            num_frames=NUM_FRAMES,
            sample_rate=SAMPLE_RATE,
            seconds=0.5,
        )
        == out
    )
    return out, read_av_clips(out)


def test_synthetic_reads_back(synthetic):
    out, examples = synthetic
    assert len(examples) == NUM_CLIPS
    assert examples.kinds == {"frames": "video", "audio": "audio"}
    assert examples.label_names == LABELS
    assert examples.multi_label is True
    assert examples.splits is None and examples.targets is None
    assert examples.labels.dtype == np.float32
    assert examples.labels.shape == (NUM_CLIPS, 3)
    assert set(np.unique(examples.labels)) <= {0.0, 1.0}
    for i, frames in enumerate(examples.columns["frames"]):
        assert isinstance(frames, tuple) and len(frames) == NUM_FRAMES
        assert list(frames) == sorted(frames)
        assert all(os.path.isabs(p) and os.path.isfile(p) for p in frames)
        assert os.path.dirname(frames[0]) == os.path.join(
            out, "clips", f"{i:05d}"
        )
    audio = examples.columns["audio"]
    missing = [path for path in audio if not path]
    # About 5% missing, at least one.
    assert 1 <= len(missing) <= 20
    for path in audio:
        if path:
            assert os.path.isabs(path) and os.path.isfile(path)
            with wave.open(path) as w:
                assert w.getframerate() == SAMPLE_RATE
                assert w.getsampwidth() == 2 and w.getnchannels() == 1
                assert w.getnframes() == SAMPLE_RATE // 2
    balance = examples.labels.mean(axis=0)
    assert np.all(np.abs(balance - 0.5) < 0.12), balance
    # take() copies the per-row tuples.
    part = examples.take([2, 0])
    assert part.columns["frames"] == [
        examples.columns["frames"][2],
        examples.columns["frames"][0],
    ]


def _frame_segment_and_red(frames):
    """Segment (0/1) whose frames hold the bright square, and its colour."""
    pixels = np.stack([np.asarray(Image.open(p), np.float32) for p in frames])
    brightness = pixels.max(axis=-1).mean(axis=(1, 2))
    half = len(frames) // 2
    segment = int(brightness[half:].mean() > brightness[:half].mean())
    event = pixels[half:] if segment else pixels[:half]
    bright = event.max(axis=-1) > 150
    red = event[..., 0][bright].mean() > event[..., 2][bright].mean()
    return segment, red


def _audio_segment_and_high(path):
    """Louder segment (0/1) of a WAV and whether its tone is high."""
    with wave.open(path) as w:
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    samples = data.astype(np.float64) / 32767
    half = len(samples) // 2
    first, second = samples[:half], samples[half:]
    segment = int(np.sqrt(np.mean(second**2)) > np.sqrt(np.mean(first**2)))
    louder = second if segment else first
    spectrum = np.abs(np.fft.rfft(louder))
    pitch = np.argmax(spectrum) * rate / len(louder)
    return segment, pitch > rate / 16


def test_synthetic_planted_relation(synthetic):
    _, examples = synthetic
    checked = 0
    for i in range(60):
        if not examples.columns["audio"][i]:
            continue
        alarm, red_object, high_tone = examples.labels[i]
        visual, red = _frame_segment_and_red(examples.columns["frames"][i])
        sound, high = _audio_segment_and_high(examples.columns["audio"][i])
        assert bool(alarm) == (visual == sound), i
        assert bool(red_object) == red, i
        assert bool(high_tone) == high, i
        checked += 1
    assert checked >= 40


def test_synthetic_is_deterministic(tmp_path):
    kwargs = dict(num_examples=20, image_size=12, num_frames=4, seconds=0.1)
    a = write_synthetic_av_clips(tmp_path / "a", seed=7, **kwargs)
    b = write_synthetic_av_clips(tmp_path / "b", seed=7, **kwargs)
    c = write_synthetic_av_clips(tmp_path / "c", seed=8, **kwargs)
    index_a = (tmp_path / "a" / "index.csv").read_bytes()
    assert index_a == (tmp_path / "b" / "index.csv").read_bytes()
    frame = os.path.join("clips", "00003", "frame_01.png")
    with open(os.path.join(a, frame), "rb") as fa:
        with open(os.path.join(b, frame), "rb") as fb:
            assert fa.read() == fb.read()
    with open(os.path.join(c, frame), "rb") as fc:
        with open(os.path.join(a, frame), "rb") as fa:
            assert fa.read() != fc.read()
    assert read_av_clips(a).columns["audio"].count("") == 1


def test_synthetic_rewrite_drops_stale_frames(tmp_path):
    write_synthetic_av_clips(tmp_path, num_examples=3, num_frames=6)
    write_synthetic_av_clips(tmp_path, num_examples=3, num_frames=4)
    examples = read_av_clips(tmp_path)
    assert [len(f) for f in examples.columns["frames"]] == [4, 4, 4]


# ----------------------------------------------------------------- reader --


def _clip(root, name, frames=2, wav=True):
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((4, 4, 3), np.uint8)
    for k in range(frames):
        (folder / f"f{k}.png").write_bytes(encode_png(pixels))
    if wav:
        (root / f"{name}.wav").write_bytes(encode_wav(np.zeros(80), 8000))


def _write(tmp_path, text, clips=("a", "b"), **kwargs):
    for name in clips:
        _clip(tmp_path, name, **kwargs)
    (tmp_path / "index.csv").write_text(text, encoding="utf-8")
    return tmp_path


def test_reader_columns_order_split_and_missing_audio(tmp_path):
    _clip(tmp_path, "a")
    folder = tmp_path / "b"
    folder.mkdir()
    pixels = np.zeros((4, 4, 3), np.uint8)
    for name in ("z.PNG", "b.jpeg", "a.JPG", "m.png"):
        (folder / name).write_bytes(encode_png(pixels))
    (folder / "notes.txt").write_text("ignored")
    (folder / "sub.png").mkdir()  # a folder, not a frame
    (tmp_path / "index.csv").write_text(
        "\ufeffy,split,audio,frames,x\n"
        '1,train,a.wav,a,0.0\n\n0,"TEST", ,"b",1.0\n',
        encoding="utf-8",
    )
    examples = read_av_clips(tmp_path)
    root = str(tmp_path)
    assert examples.label_names == ("y", "x")
    np.testing.assert_array_equal(examples.labels, [[1, 0], [0, 1]])
    assert examples.splits == ["train", "test"]
    assert examples.columns["audio"] == [os.path.join(root, "a.wav"), ""]
    assert examples.columns["frames"][0] == (
        os.path.join(root, "a", "f0.png"),
        os.path.join(root, "a", "f1.png"),
    )
    assert examples.columns["frames"][1] == tuple(
        os.path.join(root, "b", name)
        for name in ("a.JPG", "b.jpeg", "m.png", "z.PNG")
    )


def test_missing_index(tmp_path):
    with pytest.raises(ValueError, match="index.csv not found"):
        read_av_clips(tmp_path)


@pytest.mark.parametrize(
    "text, match",
    [
        ("", r"index.csv:1: empty file"),
        ("audio,y\na.wav,1\n", r"index.csv:1: missing column 'frames'"),
        ("frames,y\na,1\n", r"index.csv:1: missing column 'audio'"),
        ("frames,audio,split\na,a.wav,train\n", r"index.csv:1: no label"),
        ("frames,audio,y,y\na,a.wav,1,1\n", r"index.csv:1: duplicate"),
        ("frames,audio,y\n", r"index.csv:1: no examples"),
        (
            "frames,audio,y\na,a.wav,1\nb,b.wav,2\n",
            r"index.csv:3: label 'y' must be 0 or 1, got '2'",
        ),
        (
            "frames,audio,y\na,a.wav,1\nb,b.wav,yes\n",
            r"index.csv:3: label 'y' must be 0 or 1",
        ),
        ("frames,audio,y\na,a.wav,1\nb,b.wav\n", r"index.csv:3: expected 3"),
        ("frames,audio,y\na,a.wav,1,0\n", r"index.csv:2: expected 3 fields"),
        (
            "frames,audio,y\na,a.wav,1\nnope,b.wav,1\n",
            r"index.csv:3: frames folder 'nope' not found",
        ),
        (
            "frames,audio,y\na.wav,a.wav,1\n",
            r"index.csv:2: frames folder 'a.wav' is not a folder",
        ),
        ("frames,audio,y\n ,a.wav,1\n", r"index.csv:2: empty 'frames'"),
        (
            "frames,audio,y\na,a.wav,1\nb,c.wav,1\n",
            r"index.csv:3: audio file 'c.wav' not found",
        ),
        (
            "frames,audio,y\na,a.mp3,1\n",
            r"index.csv:2: audio file 'a.mp3' must be .* '.wav'",
        ),
        (
            "frames,audio,y,split\na,a.wav,1,train\nb,b.wav,0,dev\n",
            r"index.csv:3: split must be one of train, val, test, got 'dev'",
        ),
    ],
)
def test_reader_errors(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        read_av_clips(_write(tmp_path, text))


def test_empty_frames_folder(tmp_path):
    _write(tmp_path, "frames,audio,y\na,a.wav,1\nb,,0\n")
    for file in os.listdir(tmp_path / "b"):
        os.remove(tmp_path / "b" / file)
    (tmp_path / "b" / "readme.txt").write_text("no frames here")
    with pytest.raises(
        ValueError, match=r"index.csv:3: frames folder 'b' holds no frame"
    ):
        read_av_clips(tmp_path)


def test_multi_line_quoted_cell_keeps_line_numbers(tmp_path):
    # Quoted cells may span lines (surrounding whitespace is stripped).
    text = (
        "frames,audio,y,split\n"
        'a,a.wav,"1\n\n",train\n'  # lines 2-4
        'b,"\nb.wav",0,"\nval"\n'  # lines 5-7
        "a,a.wav,{},test\n"  # line 8
    )
    examples = read_av_clips(_write(tmp_path, text.format("1")))
    np.testing.assert_array_equal(examples.labels, [[1], [0], [1]])
    assert examples.splits == ["train", "val", "test"]
    assert examples.columns["audio"][1] == os.path.join(tmp_path, "b.wav")
    (tmp_path / "index.csv").write_text(text.format("x"), encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"index.csv:8: label 'y' must be 0 or 1, got 'x'"
    ):
        read_av_clips(tmp_path)


def test_sensors_column(tmp_path):
    _write(
        tmp_path,
        'frames,audio,sensors,alarm\na,a.wav,"0.5 1;nan",1\nb,b.wav,,0\n',
    )
    examples = read_av_clips(tmp_path)
    assert examples.kinds["sensors"] == "sensor"
    assert examples.label_names == ("alarm",)
    first, second = examples.columns["sensors"]
    assert first[:2] == (0.5, 1.0) and np.isnan(first[2])
    assert len(second) == 3 and np.isnan(second).all()  # empty: none


@pytest.mark.parametrize(
    "rows, message",
    [
        ('a,a.wav,"1 x",1\n', r"index.csv:2: sensors '1 x' is not numbers"),
        ("a,a.wav,1 2,1\nb,b.wav,1,0\n", r"index.csv:3: sensors has 1"),
        ("a,a.wav,,1\nb,b.wav,,0\n", "sensors column is empty on every row"),
    ],
)
def test_sensors_errors(tmp_path, rows, message):
    _write(tmp_path, "frames,audio,sensors,alarm\n" + rows)
    with pytest.raises(ValueError, match=message):
        read_av_clips(tmp_path)
