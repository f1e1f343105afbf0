"""End-to-end tests of the `mmzoo` command on the real Criteo sample.

One `mmzoo train` run of the console script is shared by the module; the
other commands work on what it left behind (its run folder and export),
through `mmzoo.cli.main` in this process (what the console script calls),
which saves a TensorFlow start-up per command.
"""

import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from mmzoo import cli
from mmzoo._native_logs import is_start_up_noise
from mmzoo.data.ctr import CRITEO_CATEGORICAL, CRITEO_NUMERIC


def _mmzoo_command():
    script = os.path.join(os.path.dirname(sys.executable), "mmzoo")
    if os.path.isfile(script):
        return [script]
    return [sys.executable, "-m", "mmzoo.cli"]


def mmzoo(*args, cwd):
    # As a user runs it: TensorFlow's native logging left at its defaults.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [*_mmzoo_command(), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


def _last_json(proc):
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no stdout; stderr:\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1])


@pytest.fixture(scope="module")
def criteo_path(shared_data):
    return os.path.join(shared_data, "criteo_sample.tsv")


@pytest.fixture(scope="module")
def trained(criteo_path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    proc = mmzoo(
        "train", "deepfm", "--dataset", "criteo", "--data-dir", criteo_path,
        "--variant", "tiny", "--epochs", "1",
        "--logdir", str(tmp / "logs"), "--export-dir", str(tmp / "export"),
        cwd=tmp,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, proc


def test_list_names_deepfm(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    names = [line.split()[0] for line in out.splitlines() if line]
    assert "deepfm" in names
    assert "tiny" in out and "base" in out


def test_train_prints_summary_json_last(trained):
    tmp, proc = trained
    summary = _last_json(proc)
    assert {"model", "dataset", "metrics", "export"} <= set(summary)
    assert (summary["model"], summary["dataset"]) == ("deepfm", "criteo")
    for split in ("test", "val"):
        metrics = summary["metrics"][split]
        assert 0.0 <= metrics["auc"] <= 1.0, metrics
        assert math.isfinite(metrics["logloss"]) and metrics["logloss"] > 0
        # No regularizer in `tiny`: the metric is the loss, example-averaged
        # (a batch-averaged logloss drifts from it on a filtered split).
        assert metrics["logloss"] == pytest.approx(metrics["loss"], rel=1e-4)
    assert summary["export"] == str(tmp / "export" / "deepfm" / "1")
    assert os.path.isfile(os.path.join(summary["export"], "saved_model.pb"))
    assert os.path.isfile(tmp / "export" / "models.config")


def test_stderr_has_no_native_start_up_noise_and_no_progress_bar(trained):
    _, proc = trained
    noise = [
        line
        for line in proc.stderr.splitlines()
        if is_start_up_noise(line.encode())
        or "cuInit" in line
        or "absl::InitializeLog" in line
    ]
    assert not noise, noise
    # The reader counted the splits' rows: Keras knew the epoch's length.
    assert "ran out of data" not in proc.stderr
    # What fitting found (on a large file, progress lines before it).
    assert re.search(
        r"^mmzoo: criteo: 200 rows \(train \d+, val \d+, test \d+\); "
        r"vocabularies of 26 columns written to .+, 0 hashed; ",
        proc.stderr,
        re.M,
    ), proc.stderr[-2000:]
    # Not a terminal: one line per epoch ("3/3 - 3s - 1s/step - auc: ..."),
    # no progress bar redrawn in place.
    assert re.search(r"^\d+/\d+ - \d+m?s - .*loss: ", proc.stdout, re.M)
    assert "\x08" not in proc.stdout and "━" not in proc.stdout


def test_native_noise_filter_keeps_errors_and_python_lines():
    assert is_start_up_noise(
        b"I0000 00:00:1796195009.614302    1767 cudart_stub.cc:31] Could "
        b"not find cuda drivers on your machine, GPU will not be used."
    )
    assert is_start_up_noise(
        b"E0000 00:00:1796195025.451250    1767 cuda_platform.cc:52] failed"
        b" call to cuInit: INTERNAL: CUDA error"
    )
    assert is_start_up_noise(
        b"WARNING: All log messages before absl::InitializeLog() is called "
        b"are written to STDERR"
    )
    # Real errors, fatal lines and Python's own output pass.
    assert not is_start_up_noise(
        b"E0000 00:00:1796195025.451250    1767 op_kernel.cc:1844] OP_REQUIRES"
        b" failed"
    )
    assert not is_start_up_noise(
        b"F0000 00:00:1.0    1 cuda_platform.cc:1] fatal"
    )
    assert not is_start_up_noise(b"Traceback (most recent call last):")
    assert not is_start_up_noise(b"mmzoo: error: unknown model 'x'")


def test_export_run_dir_then_verify(trained, capsys):
    tmp, _ = trained
    runs = os.listdir(tmp / "logs" / "deepfm")
    assert len(runs) == 1
    run_dir = str(tmp / "logs" / "deepfm" / runs[0])
    code = cli.main(["export", run_dir, "--export-dir", str(tmp / "export")])
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    export = json.loads(out.out.strip().splitlines()[-1])["export"]
    assert export == str(tmp / "export" / "deepfm" / "2")
    assert os.path.isfile(tmp / "export" / "deepfm" / "1" / "saved_model.pb")

    code = cli.main(["verify", export])
    table = capsys.readouterr().out
    assert code == 0, table
    assert "serving_default" in table and "OK" in table.splitlines()[-1]
    for name in ("I1", "I13", "C1", "C26", "probability"):
        assert any(name in line.split() for line in table.splitlines()), name
    assert "float32" in table and "string" in table

    # --no-warmup: no TF Serving warmup records, and verify only warns.
    code = cli.main(
        ["export", run_dir, "--export-dir", str(tmp / "export"), "--no-warmup"]
    )
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    bare = json.loads(out.out.strip().splitlines()[-1])["export"]
    assert not os.path.exists(
        os.path.join(bare, "assets.extra", "tf_serving_warmup_requests")
    )
    assert cli.main(["verify", bare]) == 0
    assert "exported with --no-warmup" in capsys.readouterr().out


def test_bad_override_names_the_key(criteo_path, tmp_path, capsys):
    code = cli.main(
        [
            "train", "deepfm", "--dataset", "criteo", "--data-dir",
            criteo_path, "--variant", "tiny", "--set", "mlp_unit=3",
            "--logdir", str(tmp_path / "logs"),
            "--export-dir", str(tmp_path / "export"),
        ]
    )  # fmt: skip
    stderr = capsys.readouterr().err
    assert code != 0
    assert "'mlp_unit'" in stderr and "mlp_units" in stderr
    assert not os.path.exists(tmp_path / "export" / "deepfm")


def test_unknown_dataset_names_the_valid_ones(tmp_path, capsys):
    code = cli.main(
        [
            "train", "deepfm", "--dataset", "avazu", "--variant", "tiny",
            "--logdir", str(tmp_path / "logs"),
            "--export-dir", str(tmp_path / "export"),
        ]
    )  # fmt: skip
    stderr = capsys.readouterr().err
    assert code != 0
    assert "'avazu'" in stderr
    for name in ("synthetic", "criteo", "movielens-100k"):
        assert name in stderr, stderr


def test_export_answers_raw_values(trained, criteo_path):
    tmp, _ = trained
    with open(criteo_path) as f:
        real = f.readline().rstrip("\n").split("\t")
    rows = [
        real[1:],  # a real row: empty fields are missing values
        ["1"] * 13 + ["deadbeef"] * 26,  # unseen categories everywhere
        [""] * 39,  # everything missing
        ["nan", "inf", "-inf", "1e30"] + ["0"] * 9 + [""] * 26,
    ]
    raw = {}
    for i, name in enumerate(CRITEO_NUMERIC):
        values = [float(row[i]) if row[i] else math.nan for row in rows]
        raw[name] = tf.constant(values, tf.float32)
    for i, name in enumerate(CRITEO_CATEGORICAL):
        raw[name] = tf.constant([row[13 + i] for row in rows])
    loaded = tf.saved_model.load(str(tmp / "export" / "deepfm" / "1"))
    outputs = loaded.signatures["serving_default"](**raw)
    assert set(outputs) == {"probability"}
    probability = outputs["probability"].numpy()
    assert probability.shape == (len(rows),)
    assert probability.dtype == np.float32
    assert np.isfinite(probability).all(), probability
    assert ((probability >= 0) & (probability <= 1)).all(), probability
    # A batch of one gives the same answer as inside the batch.
    one = loaded.signatures["serving_default"](
        **{k: v[1:2] for k, v in raw.items()}
    )["probability"].numpy()
    np.testing.assert_allclose(one, probability[1:2], atol=1e-6)
