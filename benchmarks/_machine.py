"""What every benchmark JSON line records about the run and the machine."""

import datetime
import os
import platform
import sys


def run_header(name, load_before):
    """The leading fields of a benchmark's JSON line.

    Args:
        name: str. Benchmark name.
        load_before: float. 1-minute load average when the run started;
            other work on the machine skews the figures, so a reader can
            tell from the load before and after.
    """
    # Imported here: the scripts set up their environment before TF loads.
    import keras
    import tensorflow as tf

    return {
        "benchmark": name,
        "date": datetime.date.today().isoformat(),
        "command": " ".join([os.path.relpath(sys.executable), *sys.argv]),
        "machine": {
            "cpu_cores": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "load_average_1m": [
                round(load_before, 2),
                round(os.getloadavg()[0], 2),
            ],
        },
    }
