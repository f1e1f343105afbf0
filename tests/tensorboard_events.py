"""Reads the records of TensorBoard event files, for tests."""

import glob
import os

import tensorflow as tf


def summaries(folder):
    """Every summary in `folder`'s event files: dict of (tag, plugin) to
    a list of (step, value as a NumPy array)."""
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "events.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                key = (value.tag, value.metadata.plugin_data.plugin_name)
                array = (
                    tf.make_ndarray(value.tensor)
                    if value.HasField("tensor")
                    else value.simple_value
                )
                out.setdefault(key, []).append((event.step, array))
    return out
