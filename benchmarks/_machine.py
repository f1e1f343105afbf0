"""What every benchmark JSON line records about the run and the machine."""

import datetime
import importlib.metadata
import os
import platform
import sys

# Versions every header records: JSON key → distribution name.
PACKAGES = (("tensorflow", "tensorflow"), ("keras", "keras"))


def package_version(name):
    """The installed version of distribution `name`, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def run_header(name, load_before, packages=PACKAGES):
    """The leading fields of a benchmark's JSON line.

    Versions come from package metadata, so nothing is imported (the GPU
    machine of `vit_encoder.py` has no TensorFlow).

    Args:
        name: str. Benchmark name.
        load_before: float. 1-minute load average when the run started;
            other work on the machine skews the figures, so a reader can
            tell from the load before and after.
        packages: pairs of (JSON key, distribution name) whose versions
            are recorded; None for one not installed.
    """
    return {
        "benchmark": name,
        "date": datetime.date.today().isoformat(),
        "command": " ".join([os.path.relpath(sys.executable), *sys.argv]),
        "machine": {
            "cpu_cores": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            **{key: package_version(dist) for key, dist in packages},
            "load_average_1m": [
                round(load_before, 2),
                round(os.getloadavg()[0], 2),
            ],
        },
    }
