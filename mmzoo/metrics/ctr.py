"""Metrics of the click-through-rate task."""

import keras


@keras.saving.register_keras_serializable(package="mmzoo")
def example_logloss(y_true, y_pred):
    """Per-example binary cross-entropy of `[B]` labels and probabilities.

    The `logloss` metric of the CTR task; registered with Keras so that
    every process that can load a compiled CTR model's `.keras` file can
    also restore its metrics.

    `keras.metrics.BinaryCrossentropy` averages over the last axis, which
    for a `[B]` output is the whole batch: the metric then becomes a mean
    of batch means, and the empty last step Keras runs on a dataset of
    unknown length (a filtered split) counts as a batch of zero loss.
    Returning one value per example makes `logloss` the true mean.
    """
    y_true = keras.ops.expand_dims(keras.ops.cast(y_true, y_pred.dtype), -1)
    return keras.losses.binary_crossentropy(
        y_true, keras.ops.expand_dims(y_pred, -1)
    )


@keras.saving.register_keras_serializable(package="mmzoo")
def example_squared_error(y_true, y_pred):
    """Per-example squared error of `[B]` targets and predictions: the
    loss of a regression CTR model (`keras.losses.mean_squared_error`
    averages a `[B]` output over the whole batch, see `example_logloss`)."""
    y_true = keras.ops.cast(y_true, y_pred.dtype)
    return keras.ops.square(y_true - y_pred)
