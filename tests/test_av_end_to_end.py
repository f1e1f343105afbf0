"""av_monitor as a new user meets it: video files it has never seen →
`prepare-clips` → `mmzoo train av_monitor --dataset av-clips` (which
verifies its export) → the export called with JPEG frames and WAV bytes (and
with float samples on `waveform`) in a process that imports only
TensorFlow."""

import json
import os
import subprocess
import sys
import textwrap
import wave

import numpy as np
import pytest

from mmzoo.data.prepare_clips import prepare_clips
from tests.test_cli import _last_json, mmzoo

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def _video(path, event):
    """A 2 s clip: moving test pattern; `alarm` clips have a 1 kHz tone and
    a white flash in their second half, `quiet` ones a low hum."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    flash = "drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='gt(t,1)'"
    tone = "sine=frequency=1000:sample_rate=16000:duration=2"
    hum = "sine=frequency=120:sample_rate=16000:duration=2"
    args = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    args += ["-f", "lavfi", "-i", "testsrc=size=80x60:rate=8:duration=2"]
    args += ["-f", "lavfi", "-i", tone if event else hum]
    if event:
        args += ["-vf", flash]
    args += ["-c:v", "mpeg4", "-c:a", "pcm_s16le", "-shortest", path]
    subprocess.run(args, check=True, capture_output=True)


TENSORFLOW_ONLY = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    # TF Serving has neither: no op of theirs may be needed.
    NOT_SERVING = ("mmzoo", "keras_hub", "tensorflow_text")
    assert not any(m in sys.modules for m in NOT_SERVING)
    export, request = sys.argv[1], json.load(open(sys.argv[2]))
    loaded = tf.saved_model.load(export)
    frames = tf.constant(
        [[open(p, "rb").read() if p else b"" for p in row]
         for row in request["frames"]]
    )
    audio = tf.constant(
        [open(p, "rb").read() if p else b"" for p in request["audio"]]
    )
    out = loaded.signatures["serving_default"](frames=frames, audio=audio)
    samples = tf.constant(np.asarray(request["waveform"], np.float32))
    wave_out = loaded.signatures["waveform"](frames=frames, waveform=samples)
    print(json.dumps({
        "probabilities": out["probabilities"].numpy().tolist(),
        "label": [v.decode() for v in out["label"].numpy()],
        "waveform": wave_out["probabilities"].numpy().tolist(),
        "modules": sorted(m for m in NOT_SERVING if m in sys.modules),
    }))
    """
)


def test_videos_to_a_served_av_monitor(tmp_path):
    src, dst = tmp_path / "videos", tmp_path / "clips"
    for i in range(6):
        _video(str(src / "alarm" / f"a{i}.avi"), event=True)
        _video(str(src / "quiet" / f"q{i}.avi"), event=False)

    # The API of `mmzoo prepare-clips` (its command line is tested in
    # tests/data/test_prepare_clips.py; one CLI start less here).
    summary = prepare_clips(
        src,
        dst,
        fps=4,
        size=48,
        sample_rate=8000,  # the tiny model's: `waveform` gets the same samples
    )
    assert summary["clips"] == 12 and summary["labels"] == ["alarm", "quiet"]

    trained = mmzoo(
        "train",
        "av_monitor",
        "--dataset",
        "av-clips",
        "--data-dir",
        str(dst),
        "--variant",
        "tiny",
        "--epochs",
        "1",
        "--logdir",
        str(tmp_path / "logs"),
        "--export-dir",
        str(tmp_path / "export"),
        cwd=tmp_path,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    result = _last_json(trained)
    assert result["export"].endswith(os.path.join("av_monitor", "1"))
    test = result["metrics"]["test"]
    for key in ("auroc", "map", "auroc/alarm", "ap/quiet"):
        assert key in test, sorted(test)

    # `train` verified the export in a TensorFlow-only process already.
    # A request of two clips from the prepared folder: frames as the
    # client has them (more than the model's 4, padded with ""), the WAV
    # bytes, and the same audio as float samples read by the wave module.
    with open(dst / "index.csv") as f:
        rows = [line.strip().split(",") for line in f][1:3]
    frames, audio, samples = [], [], []
    for folder, wav_path, *_ in rows:
        paths = sorted(str(dst / folder / n) for n in os.listdir(dst / folder))
        frames.append(paths + [""] * 2)
        audio.append(str(dst / wav_path))
        with wave.open(str(dst / wav_path)) as w:
            assert w.getframerate() == 8000
            pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        samples.append((pcm / 32768.0)[:8000].tolist())
    width = max(len(row) for row in frames)
    frames = [row + [""] * (width - len(row)) for row in frames]
    request = tmp_path / "request.json"
    request.write_text(
        json.dumps({"frames": frames, "audio": audio, "waveform": samples})
    )
    script = tmp_path / "client.py"
    script.write_text(TENSORFLOW_ONLY)
    proc = subprocess.run(
        [sys.executable, str(script), result["export"], str(request)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    assert served["modules"] == []
    probabilities = np.asarray(served["probabilities"])
    assert probabilities.shape == (2, 2) and np.isfinite(probabilities).all()
    np.testing.assert_allclose(served["waveform"], probabilities, atol=1e-5)
