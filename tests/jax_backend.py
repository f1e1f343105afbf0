"""Runs a script in a fresh Python process under the JAX backend (CPU):
the backend is chosen at import, so the TensorFlow-backend test process
cannot switch."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_on_jax(script, *args, timeout=600):
    """Runs `python -c script *args` with `KERAS_BACKEND=jax`; asserts that
    it exits 0 and returns its stdout."""
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONPATH": os.pathsep.join(
            p for p in (ROOT, os.environ.get("PYTHONPATH")) if p
        ),
        # These scripts compile each function once and run it once. At the
        # default level, XLA's LLVM passes spend seconds per distinct
        # variable shape on JAX's random initializers on CPU (three conv
        # kernels: 13 s; at level 0: 0.9 s), far more than they save.
        "XLA_FLAGS": " ".join(
            f
            for f in (
                os.environ.get("XLA_FLAGS"),
                "--xla_backend_optimization_level=0",
            )
            if f
        ),
    }
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout
