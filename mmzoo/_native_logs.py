"""Keeps TensorFlow's native start-up lines out of the `mmzoo` command's
stderr.

On every machine without a GPU, importing TensorFlow and running its first
op writes lines from C++ straight to file descriptor 2, past Python's
`sys.stderr` and past `TF_CPP_MIN_LOG_LEVEL` (they come through absl before
it is initialised): "All log messages before absl::InitializeLog() ...",
"Could not find cuda drivers", "This TensorFlow binary is optimized to use
available CPU instructions ...", "failed call to cuInit". `filtered_stderr`
points descriptor 2 at a pipe and forwards every other line, Python's
warnings and tracebacks included; child processes (the main job's
workers, the verification process) inherit the filter.
"""

import contextlib
import os
import re
import sys
import threading

# absl's line prefix: severity, MMDD, time, thread id, source file:line.
_ABSL_PREFIX = re.compile(rb"^([IWEF])\d{4} [\d:.]+\s+\d+ ([\w.]+):\d+\] ")
# Errors that only say there is no GPU (the CUDA probe at start-up).
_GPU_PROBE_SOURCES = (
    b"cuda_platform.cc",
    b"cuda_executor.cc",
    b"cuda_diagnostics.cc",
    b"cuda_driver.cc",
)
_NOISE_STARTS = (
    b"WARNING: All log messages before absl::InitializeLog() is called",
    # The second line of cpu_feature_guard's INFO message.
    b"To enable the following instructions:",
)


def is_start_up_noise(line):
    """Whether `line` (bytes) is a native start-up line to drop: an absl
    INFO or WARNING line, a GPU-probe error, or one of `_NOISE_STARTS`.
    Fatal lines and other errors are kept."""
    if line.startswith(_NOISE_STARTS):
        return True
    match = _ABSL_PREFIX.match(line)
    if not match:
        return False
    severity, source = match.groups()
    if severity in (b"I", b"W"):
        return True
    return severity == b"E" and source in _GPU_PROBE_SOURCES


def _forward(read_fd, write_fd):
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        pending = b""
        while True:
            chunk = pipe.read(65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = [line for line in lines if not is_start_up_noise(line)]
            if kept:
                os.write(write_fd, b"\n".join(kept) + b"\n")
        if pending and not is_start_up_noise(pending):
            os.write(write_fd, pending)


@contextlib.contextmanager
def filtered_stderr():
    """Drops native start-up noise from descriptor 2 inside the block."""
    sys.stderr.flush()
    original = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    thread = threading.Thread(
        target=_forward, args=(read_fd, original), daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # closes this process's write end of the pipe
        # Children that outlive the command may still hold the pipe: do
        # not wait for them.
        thread.join(timeout=5)
        os.close(original)
