"""TensorBoard records of a training run beyond Keras's scalars.

`log_hparams` writes the run's hyperparameters (every scalar config field,
plus the variant, dataset and seed) with the HParams plugin, and its final
validation and test metrics as the plugin's metrics, so TensorBoard's
HParams tab compares runs of a model side by side.
"""

import math
import os

import tensorflow as tf

HPARAMS_DIR = "hparams"


def _scalar(value):
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def log_hparams(run_dir, hparams, metrics):
    """Writes `hparams` and the final `metrics` under `run_dir/hparams`.

    Args:
        run_dir: str. The run folder (TensorBoard's log dir).
        hparams: dict of name to value; scalars (bool, int, float, str)
            are kept, tuples become their text, the rest is dropped.
        metrics: dict of split (`val`, `test`) to dict of metric to float;
            written as scalars `<split>/<metric>` at step 0.

    Returns:
        The dict of hyperparameters written.
    """
    from tensorboard.plugins.hparams import api as hp

    kept = {}
    for name, value in hparams.items():
        if isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        value = _scalar(value)
        if value is not None:
            kept[name] = value
    writer = tf.summary.create_file_writer(os.path.join(run_dir, HPARAMS_DIR))
    with writer.as_default():
        hp.hparams(kept, trial_id=os.path.basename(os.path.normpath(run_dir)))
        for split, values in metrics.items():
            for name, value in values.items():
                if isinstance(value, int | float) and math.isfinite(value):
                    tf.summary.scalar(f"{split}/{name}", float(value), step=0)
    writer.close()
    return kept
