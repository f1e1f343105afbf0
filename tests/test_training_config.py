"""`compile_model`: the config's optimizer, built before the first step."""

import keras
import numpy as np
import pytest

import mmzoo
from mmzoo.training_config import compile_model


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
