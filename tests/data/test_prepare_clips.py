"""Tests for `mmzoo prepare-clips`: a folder of videos -> `av-clips`.

The source videos are made with the ffmpeg binary of imageio-ffmpeg (tiny
test patterns and sine tones, about 40 ms each); the module is skipped
without that package (`pip install mmzoo[video]`).
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import wave

import pytest
import tensorflow as tf

from mmzoo import cli
from mmzoo.data import prepare_clips as pc

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
SECONDS = 1.5
LONG_SECONDS = 3.0


def _encoders():
    out = subprocess.run(
        [FFMPEG, "-hide_banner", "-encoders"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # After the legend: " V....D libx264  libx264 H.264 / AVC ...".
    fields = (line.split() for line in out.split(" ------", 1)[-1].splitlines())
    return {f[1] for f in fields if len(f) > 1}


@pytest.fixture(scope="module")
def codecs():
    """(video codec, audio codec) this ffmpeg build can write to .mp4."""
    have = _encoders()
    video = "libx264" if "libx264" in have else "mpeg4"
    audio = "aac" if "aac" in have else "libmp3lame"
    return video, audio


def _make_video(
    path, codecs, size="64x48", seconds=SECONDS, audio=True, video=True
):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    video_codec, audio_codec = codecs
    inputs, outputs = [], []
    if video:
        pattern = f"testsrc=size={size}:rate=10:duration={seconds}"
        inputs += ["-f", "lavfi", "-i", pattern]
        outputs += ["-c:v", video_codec, "-pix_fmt", "yuv420p"]
    if audio:
        tone = f"sine=frequency=440:sample_rate=22050:duration={seconds}"
        inputs += ["-f", "lavfi", "-i", tone]
        outputs += ["-c:a", audio_codec, "-shortest"]
    if path.lower().endswith((".mp4", ".mov")):
        # The index up front, so that a truncated copy still opens.
        outputs += ["-movflags", "+faststart"]
    args = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    args += [*inputs, *outputs, path]
    subprocess.run(args, check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory, codecs):
    """A source folder: two label subfolders, a video directly in it, one
    without audio, a portrait one, odd names, and files to ignore."""
    src = tmp_path_factory.mktemp("videos")
    _make_video(str(src / "alarm" / "a.mp4"), codecs)
    _make_video(str(src / "alarm" / "deep" / "Loud Clip.MOV"), codecs)
    _make_video(
        str(src / "quiet" / "long.mkv"),
        codecs,
        size="48x80",
        seconds=LONG_SECONDS,
        audio=False,
    )
    _make_video(str(src / "top.mp4"), codecs)
    (src / "quiet" / "notes.txt").write_text("not a video")
    (src / ".hidden.mp4").write_bytes(b"garbage, but hidden")
    return src


def _copy(src, tmp_path):
    out = tmp_path / "src"
    shutil.copytree(src, out)
    return out


def _index(dst):
    with open(os.path.join(dst, "index.csv"), newline="") as f:
        header, *rows = list(csv.reader(f))
    return header, {row[0]: dict(zip(header, row)) for row in rows}


def _frames(dst, cell):
    folder = os.path.join(dst, cell)
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder))]


def _jpeg_size(path):
    height, width, _ = tf.image.extract_jpeg_shape(tf.io.read_file(path))
    return int(width), int(height)


@pytest.fixture(scope="module")
def prepared(videos, tmp_path_factory):
    dst = tmp_path_factory.mktemp("out") / "av"
    summary = pc.prepare_clips(videos, dst, size=40)
    return dst, summary


def test_summary_and_header_from_subfolders(prepared):
    dst, summary = prepared
    assert summary == {
        "clips": 4,
        "with_audio": 3,
        "labels": ["alarm", "quiet"],
        "skipped": [],
        "index": os.path.join(str(dst), "index.csv"),
    }
    header, rows = _index(dst)
    assert header == ["frames", "audio", "alarm", "quiet"]
    assert sorted(rows) == [
        "clips/alarm_a",
        "clips/alarm_deep_Loud_Clip",
        "clips/quiet_long",
        "clips/top",
    ]
    labels = {key: (row["alarm"], row["quiet"]) for key, row in rows.items()}
    assert labels == {
        "clips/alarm_a": ("1", "0"),
        "clips/alarm_deep_Loud_Clip": ("1", "0"),
        "clips/quiet_long": ("0", "1"),
        "clips/top": ("0", "0"),
    }
    assert not [n for n in os.listdir(dst) if n.endswith(".tmp")]


def test_frames_counted_and_scaled(prepared):
    dst, _ = prepared
    _, rows = _index(dst)
    # fps 2: 1.5 s -> 3 frames, 3 s -> 6 frames.
    counts = {key: len(_frames(dst, key)) for key in rows}
    assert counts == {
        "clips/alarm_a": 3,
        "clips/alarm_deep_Loud_Clip": 3,
        "clips/quiet_long": 6,
        "clips/top": 3,
    }
    assert [os.path.basename(p) for p in _frames(dst, "clips/quiet_long")] == [
        f"frame_{i:05d}.jpg" for i in range(1, 7)
    ]
    # size 40: 64x48 -> 40x30, portrait 48x80 -> 24x40.
    assert _jpeg_size(_frames(dst, "clips/alarm_a")[0]) == (40, 30)
    for path in _frames(dst, "clips/quiet_long"):
        assert _jpeg_size(path) == (24, 40)


def test_wav_is_mono_16_bit_at_the_rate_and_missing_audio_empty(prepared):
    dst, _ = prepared
    _, rows = _index(dst)
    assert rows["clips/quiet_long"]["audio"] == ""
    assert not os.path.exists(os.path.join(dst, "clips", "quiet_long.wav"))
    for key in ("clips/alarm_a", "clips/alarm_deep_Loud_Clip", "clips/top"):
        assert rows[key]["audio"] == key + ".wav"
        with wave.open(os.path.join(dst, rows[key]["audio"]), "rb") as f:
            assert f.getnchannels() == 1
            assert f.getsampwidth() == 2
            assert f.getframerate() == 16000
            assert f.getnframes() / 16000 == pytest.approx(SECONDS, abs=0.1)


def test_reads_back_as_av_clips(prepared):
    av_clips = pytest.importorskip("mmzoo.data.av_clips")
    dst, _ = prepared
    examples = av_clips.read_av_clips(dst)
    assert examples.label_names == ("alarm", "quiet")
    assert [len(frames) for frames in examples.columns["frames"]] == [
        3,
        3,
        6,
        3,
    ]
    assert sum(1 for a in examples.columns["audio"] if a) == 3


def test_fps_max_frames_rate_and_no_upscale(videos, tmp_path):
    summary = pc.prepare_clips(
        videos, tmp_path / "av", fps=4, max_frames=5, sample_rate=8000
    )
    assert summary["clips"] == 4
    dst = tmp_path / "av"
    # fps 4: 1.5 s -> 6 frames, capped at 5; 3 s -> 12, capped at 5.
    assert len(_frames(dst, "clips/quiet_long")) == 5
    assert len(_frames(dst, "clips/alarm_a")) == 5
    # size 256 (default) never upscales.
    assert _jpeg_size(_frames(dst, "clips/alarm_a")[0]) == (64, 48)
    assert _jpeg_size(_frames(dst, "clips/quiet_long")[0]) == (48, 80)
    with wave.open(str(dst / "clips" / "top.wav"), "rb") as f:
        assert f.getframerate() == 8000
        assert f.getnframes() / 8000 == pytest.approx(SECONDS, abs=0.1)


def test_labels_file(videos, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "video,labels\n"
        "alarm/a.mp4,siren|person\n"
        '"alarm/deep/Loud Clip.MOV",siren\n'
        "\n"
        "./quiet/long.mkv,\n"
        "top.mp4, person \n"
    )
    summary = pc.prepare_clips(videos, tmp_path / "av", labels=labels)
    assert summary["labels"] == ["person", "siren"]
    header, rows = _index(tmp_path / "av")
    assert header == ["frames", "audio", "person", "siren"]
    labels = {key: (row["person"], row["siren"]) for key, row in rows.items()}
    assert labels == {
        "clips/alarm_a": ("1", "1"),
        "clips/alarm_deep_Loud_Clip": ("0", "1"),
        "clips/quiet_long": ("0", "0"),
        "clips/top": ("1", "0"),
    }


def test_labels_file_errors(videos, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "video,labels\nalarm/a.mp4,x\nalarm/nope.mp4,x\ntop.mp4,x\n"
    )
    with pytest.raises(ValueError, match=r"labels\.csv:3: .*alarm/nope\.mp4"):
        pc.prepare_clips(videos, tmp_path / "av", labels=labels)
    labels.write_text("video,labels\nalarm/a.mp4,x\ntop.mp4,x\n")
    with pytest.raises(ValueError, match=r"Loud Clip\.MOV.* not listed"):
        pc.prepare_clips(videos, tmp_path / "av", labels=labels)
    labels.write_text("path,labels\nalarm/a.mp4,x\n")
    with pytest.raises(ValueError, match=r"labels\.csv:1: .*video,labels"):
        pc.prepare_clips(videos, tmp_path / "av", labels=labels)
    assert not (tmp_path / "av").exists()  # checked before any ffmpeg run


def test_videos_only_at_top_level_need_labels(codecs, tmp_path):
    _make_video(str(tmp_path / "src" / "x.AVI"), codecs, audio=False)
    with pytest.raises(ValueError, match="subfolders.*--labels"):
        pc.prepare_clips(tmp_path / "src", tmp_path / "av")


def test_label_subfolder_may_not_be_a_column_name(videos, tmp_path):
    src = _copy(videos, tmp_path)
    shutil.copytree(src / "quiet", src / "audio")
    with pytest.raises(ValueError, match="'audio' is not allowed"):
        pc.prepare_clips(src, tmp_path / "av")


def test_garbage_video_named_or_skipped(videos, codecs, tmp_path, capsys):
    src = _copy(videos, tmp_path)
    bad = src / "quiet" / "broken.mp4"
    bad.write_bytes(os.urandom(3000))
    dst = tmp_path / "av"
    with pytest.raises(ValueError, match=r"broken\.mp4: .*Invalid data"):
        pc.prepare_clips(src, dst)
    assert not (dst / "index.csv").exists()

    sound = _make_video(str(src / "quiet" / "sound.mp4"), codecs, video=False)
    summary = pc.prepare_clips(src, dst, skip_bad=True)
    assert summary["skipped"] == [str(bad), sound]
    assert summary["clips"] == 4
    err = capsys.readouterr().err
    assert "broken.mp4" in err
    assert "sound.mp4: no video stream" in err
    _, rows = _index(dst)
    assert "clips/quiet_broken" not in rows
    assert not (dst / "clips" / "quiet_broken").exists()
    assert not (dst / "clips" / "quiet_sound.wav").exists()


def test_partly_damaged_video_kept_with_a_warning(codecs, tmp_path, capsys):
    full = _make_video(str(tmp_path / "full.mp4"), codecs, seconds=3.0)
    data = open(full, "rb").read()
    (tmp_path / "src" / "x").mkdir(parents=True)
    (tmp_path / "src" / "x" / "cut.mp4").write_bytes(data[: len(data) // 2])
    summary = pc.prepare_clips(tmp_path / "src", tmp_path / "av")
    assert summary["clips"] == 1 and summary["skipped"] == []
    assert 1 <= len(_frames(tmp_path / "av", "clips/x_cut")) < 6
    err = capsys.readouterr().err
    assert "cut.mp4, its clip may be incomplete" in err


def test_refuses_to_overwrite_index(prepared, videos):
    dst, _ = prepared
    before = (dst / "index.csv").read_text()
    with pytest.raises(ValueError, match=r"index\.csv already exists"):
        pc.prepare_clips(videos, dst, size=40)
    assert (dst / "index.csv").read_text() == before


def test_overwrite_replaces_clips(videos, tmp_path):
    dst = tmp_path / "av"
    pc.prepare_clips(videos, dst, max_frames=6)
    summary = pc.prepare_clips(videos, dst, max_frames=2, overwrite=True)
    assert summary["clips"] == 4
    assert len(_frames(dst, "clips/quiet_long")) == 2  # no stale frames


def test_missing_or_empty_source(tmp_path):
    with pytest.raises(ValueError, match=f"{tmp_path / 'nope'} not found"):
        pc.prepare_clips(tmp_path / "nope", tmp_path / "av")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "a.txt").write_text("x")
    with pytest.raises(ValueError, match=f"{tmp_path / 'empty'} holds no"):
        pc.prepare_clips(tmp_path / "empty", tmp_path / "av")


def test_bad_arguments(videos, tmp_path):
    for kwargs in ({"fps": 0}, {"max_frames": 0}, {"sample_rate": 10}):
        with pytest.raises(ValueError, match="must be"):
            pc.prepare_clips(videos, tmp_path / "av", **kwargs)


def test_clip_ids_are_safe_and_unique():
    assert pc._clip_ids(
        ["a b.mp4", "a_b.avi", "a/b.MP4", "x.mkv", "x.webm", "X.mov", "é.mp4"]
    ) == ["a_b", "a_b_2", "a_b_3", "x", "x_2", "X_3", "_"]


def test_needs_imageio_ffmpeg(videos, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    with pytest.raises(ImportError, match=r"mmzoo\[video\]"):
        pc.prepare_clips(videos, tmp_path / "av")
    # The command reports it as its other errors, exit status 2.
    assert cli.main(["prepare-clips", str(videos), str(tmp_path / "b")]) == 2
    assert "mmzoo: error: " in capsys.readouterr().err


def _mmzoo_command():
    script = os.path.join(os.path.dirname(sys.executable), "mmzoo")
    if os.path.isfile(script):
        return [script]
    return [sys.executable, "-m", "mmzoo.cli"]


def test_command(videos, tmp_path):
    src = _copy(videos, tmp_path)
    (src / "alarm" / "bad.mp4").write_bytes(b"\0" * 100)
    args = [
        *_mmzoo_command(), "prepare-clips", str(src), str(tmp_path / "av"),
        "--fps", "2", "--max-frames", "2", "--sample-rate", "16000",
        "--size", "32",
    ]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("mmzoo: error: ")
    assert "bad.mp4" in proc.stderr

    proc = subprocess.run(
        [*args, "--skip-bad"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "mmzoo: warning: skipped" in proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["clips"] == 4
    assert summary["skipped"] == [str(src / "alarm" / "bad.mp4")]
    assert summary["index"] == str(tmp_path / "av" / "index.csv")
    header, rows = _index(tmp_path / "av")
    assert header == ["frames", "audio", "alarm", "quiet"]
    assert len(_frames(tmp_path / "av", "clips/quiet_long")) == 2
