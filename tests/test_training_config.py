"""`compile_model`: the config's optimizer, built before the first step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo.training_config import build_for_data, compile_model


def _model():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3)(inputs)
    return keras.Model(inputs, keras.layers.Dense(1)(hidden))


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_the_train_step_is_traced_once(optimizer):
    config = mmzoo.get_config("deepfm", "tiny", optimizer=optimizer)
    model = _model()
    compile_model(model, config, loss="mse")
    assert model.optimizer.built
    assert type(model.optimizer).__name__.lower() == optimizer
    traces = []
    step = model.train_step
    model.train_step = lambda data: traces.append(1) or step(data)
    x, y = np.ones((8, 4), "float32"), np.ones((8, 1), "float32")
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    # Unbuilt, the optimizer would create its slots inside the first trace
    # and tf.function would trace the step again.
    assert len(traces) == 1


def _two_output_model():
    inputs = keras.Input((4,), name="x")
    hidden = keras.layers.Dense(3)(inputs)
    return keras.Model(
        inputs,
        {
            "label": keras.layers.Dense(2, activation="softmax")(hidden),
            "score": keras.layers.Dense(1)(hidden),
        },
    )


def test_build_for_data_makes_a_multi_output_step_trace_once():
    config = mmzoo.get_config("deepfm", "tiny")
    model = _two_output_model()
    compile_model(
        model,
        config,
        loss={"label": "categorical_crossentropy", "score": "mse"},
        metrics={"label": [keras.metrics.AUC(multi_label=True)]},
    )
    x = np.ones((8, 4), "float32")
    y = {"label": np.eye(2, dtype="float32")[[0, 1] * 4], "score": x[:, :1]}
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    build_for_data(model, dataset)
    traces = []
    step = model.train_step
    model.train_step = lambda data: traces.append(1) or step(data)
    model.fit(dataset, epochs=2, verbose=0)
    # Without it, Keras creates the per-output loss trackers and the metric
    # variables inside the first trace, and tf.function traces again.
    assert len(traces) == 1
