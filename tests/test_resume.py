"""Runs that survive a kill: `mmzoo train --run-dir DIR [--resume]
[--deterministic] [--early-stopping N]` (`mmzoo.training`)."""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from mmzoo import checkpoints, training
from tests.test_cli import _mmzoo_command

# DeepFM's tiny variant with dropout, so the resumed run must also replay
# the dropout masks (random-generator state), not only weights, optimizer
# and shuffle order; with the base variant's fused Adam.
TRAIN = [
    "train",
    "deepfm",
    "--variant",
    "tiny",
    "--epochs",
    "3",
    "--deterministic",
    "--export-dir",
    "",
    "--set",
    "dropout=0.3",
    "--set",
    "optimizer=fused_adam",
]


def _start(run_dir):
    return subprocess.Popen(
        [*_mmzoo_command(), *TRAIN, "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(args, timeout=600):
    proc = subprocess.run(
        [*_mmzoo_command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _weights(run_dir):
    import keras

    from mmzoo import registry

    registry.list_models()  # registers mmzoo's layers
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    return model.get_weights()


def test_sigkilled_run_resumes_to_the_uninterrupted_weights(tmp_path):
    killed = tmp_path / "killed"
    proc = _start(killed)
    # Kill it (SIGKILL: no cleanup) once its first epoch is checkpointed,
    # i.e. in its second epoch (or, on a slow machine, later: the kill
    # may land in the middle of writing a checkpoint).
    backup = killed / "backup"
    deadline = time.time() + 300
    while checkpoints.latest(backup) is None and proc.poll() is None:
        assert time.time() < deadline, "no checkpoint within 300 s"
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    epochs_done = checkpoints.read_state(backup)["epoch"]
    assert 1 <= epochs_done < 3
    assert not (killed / "run.json").exists()

    # A killed run cannot be exported, and says how to go on.
    export = subprocess.run(
        [*_mmzoo_command(), "export", str(killed)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert export.returncode == 2
    assert "--resume" in export.stderr and "no run.json" in export.stderr

    resumed = _finish([*TRAIN, "--run-dir", str(killed), "--resume"])
    straight = _finish([*TRAIN, "--run-dir", str(tmp_path / "straight")])
    assert resumed["metrics"] == straight["metrics"]
    for a, b in zip(_weights(killed), _weights(tmp_path / "straight")):
        np.testing.assert_array_equal(a, b)
    assert (killed / "best.weights.h5").exists()


def test_resume_checks_the_run_folder(tmp_path):
    arguments = {"model": "deepfm", "seed": 0}
    with pytest.raises(ValueError, match="--run-dir"):
        training.train("deepfm", variant="tiny", resume=True)
    with pytest.raises(ValueError, match="no run to resume"):
        training._start_run(str(tmp_path / "new"), arguments, resume=True)
    training._start_run(str(tmp_path / "run"), arguments, resume=False)
    recorded = json.loads((tmp_path / "run" / "train.json").read_text())
    assert recorded == arguments
    with pytest.raises(ValueError, match="already holds files"):
        training._start_run(str(tmp_path / "run"), arguments, resume=False)
    with pytest.raises(ValueError, match=r"seed: \(0, 1\)"):
        training._start_run(
            str(tmp_path / "run"), {**arguments, "seed": 1}, resume=True
        )
    training._start_run(str(tmp_path / "run"), arguments, resume=True)
    (tmp_path / "run" / "run.json").write_text("{}")
    with pytest.raises(ValueError, match="is finished"):
        training._start_run(str(tmp_path / "run"), arguments, resume=True)


def test_load_run_refuses_an_unfinished_folder(tmp_path):
    with pytest.raises(ValueError, match="not a run folder"):
        training.load_run(str(tmp_path))
    (tmp_path / "train.json").write_text("{}")
    with pytest.raises(ValueError, match="still training or was killed"):
        training.load_run(str(tmp_path))


def test_early_stopping_keeps_the_best_weights(tmp_path):
    # A learning rate far too high: the validation loss gets worse after
    # the first epochs, and training stops long before 30 epochs.
    result = training.train(
        "deepfm",
        variant="tiny",
        epochs=30,
        overrides={"learning_rate": 3.0},
        export_dir=None,
        run_dir=str(tmp_path / "run"),
        early_stopping=1,
        verbose=0,
    )
    history = result["keras_model"].history.history["val_loss"]
    assert len(history) < 30
    best = min(history)
    # The restored weights are the best epoch's.
    metrics = result["metrics"]["val"]
    assert metrics["loss"] == pytest.approx(best, rel=1e-4)
    assert (tmp_path / "run" / "best.weights.h5").exists()

    # TensorBoard's HParams tab gets the run's settings and final metrics.
    import glob

    import tensorflow as tf

    (events,) = glob.glob(str(tmp_path / "run" / "hparams" / "events.*"))
    tags, plugins = set(), set()
    for event in tf.compat.v1.train.summary_iterator(events):
        for value in event.summary.value:
            tags.add(value.tag)
            plugins.add(value.metadata.plugin_data.plugin_name)
    assert "hparams" in plugins
    assert {"test/auc", "val/loss"} <= tags
