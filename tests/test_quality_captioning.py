"""Quality gate of `vit_lstm_captioner` (issue 4), marked `slow`.

The tiny variant, trained from scratch on the `synthetic` shape scenes
through the CLI (prepare, fit, evaluate, export, verify) on 2 CPU threads
within 10 minutes, must caption the test split with BLEU-4 >= 0.5 and a
CIDEr far above the baseline that always answers the most frequent
training caption.

Run it with:
    .venv/bin/python -m pytest tests/test_quality_captioning.py -m slow -s
"""

import json
import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 40
TIME_LIMIT_S = 600


@pytest.mark.slow
def test_tiny_captioner_describes_synthetic_scenes(tmp_path):
    env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="2",
        # Two CPU threads, as on the reference 2-core machine.
        TF_NUM_INTRAOP_THREADS="2",
        TF_NUM_INTEROP_THREADS="2",
    )
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (ROOT, env.get("PYTHONPATH")) if p
    )
    start = time.time()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmzoo.cli",
            "train",
            "vit_lstm_captioner",
            "--dataset",
            "synthetic",
            "--variant",
            "tiny",
            "--epochs",
            str(EPOCHS),
            "--seed",
            "0",
            "--logdir",
            str(tmp_path / "logs"),
            "--export-dir",
            str(tmp_path / "export"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=2 * TIME_LIMIT_S,
    )
    seconds = time.time() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    test = json.loads(proc.stdout.strip().splitlines()[-1])["metrics"]["test"]
    print(
        f"\ncaptioner quality gate ({seconds:.0f} s, {os.cpu_count()} CPUs): "
        + json.dumps({k: round(v, 4) for k, v in sorted(test.items())})
    )
    assert seconds <= TIME_LIMIT_S, f"took {seconds:.0f} s"
    assert test["bleu_4"] >= 0.5, test
    # The baseline says one caption for every scene; a model that reads the
    # image must beat it by a wide margin.
    assert test["cider"] >= 2.0 * test["baseline_cider"] + 1.0, test
    assert test["bleu_4"] >= test["baseline_bleu_4"] + 0.3, test
