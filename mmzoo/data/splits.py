"""Deterministic train/validation/test splits."""

import numpy as np

SPLITS = ("train", "val", "test")


def split_indices(num_examples, seed, fractions=(0.8, 0.1, 0.1)):
    """Splits `range(num_examples)` into shuffled train/val/test indices.

    The same `num_examples` and `seed` always give the same split.

    Returns:
        dict of split name to a sorted int64 index array.
    """
    order = np.random.default_rng(seed).permutation(num_examples)
    n_train = int(round(fractions[0] * num_examples))
    n_val = int(round(fractions[1] * num_examples))
    parts = (
        order[:n_train],
        order[n_train : n_train + n_val],
        order[n_train + n_val :],
    )
    return {name: np.sort(part) for name, part in zip(SPLITS, parts)}
