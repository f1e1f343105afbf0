"""`mmzoo.optimizers.Adam`: Keras's Adam arithmetic in one fused
TensorFlow kernel per variable, and row-sparse (lazy) embedding updates."""

import keras
import numpy as np
import tensorflow as tf

from mmzoo.optimizers import Adam


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    ids = keras.Input((3,), dtype="int32")
    x = keras.layers.Embedding(50, 4)(ids)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(8, activation="relu")(x)
    return keras.Model(ids, keras.layers.Dense(1)(x))


def _train(optimizer, steps=5, rows=(1, 2, 3), dense=False):
    model = _model()
    optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        ids = rng.choice(rows, size=(16, 3)).astype("int32")
        target = rng.normal(size=(16, 1)).astype("float32")
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(ids) - target) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        if dense:  # the embedding's gradient as a dense tensor
            grads = [tf.convert_to_tensor(g) for g in grads]
        optimizer.apply(grads, model.trainable_variables)
    return model


def test_fused_adam_is_keras_adam():
    ours = _train(Adam(1e-2))
    theirs = _train(keras.optimizers.Adam(1e-2))
    for a, b in zip(ours.weights, theirs.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_lazy_adam_updates_only_the_rows_of_the_batch():
    before = _model().weights[0].numpy()
    model = _train(Adam(1e-2, lazy=True), rows=(1, 2, 3))
    table = model.weights[0].numpy()
    changed = np.flatnonzero(np.any(table != before, axis=1))
    assert changed.tolist() == [1, 2, 3]
    # On rows seen every step, lazy Adam is Adam on the dense gradient (no
    # row skipped a step, so no moment missed a decay; a row repeated in a
    # batch has its gradients summed first).
    dense = (
        _train(keras.optimizers.Adam(1e-2), rows=(1, 2, 3), dense=True)
        .weights[0]
        .numpy()
    )
    np.testing.assert_allclose(table[1:4], dense[1:4], rtol=1e-5, atol=1e-6)


def test_round_trips_through_config_and_a_saved_model(tmp_path):
    optimizer = Adam(3e-3, lazy=True)
    again = Adam.from_config(optimizer.get_config())
    assert again.lazy and float(again.learning_rate) == np.float32(3e-3)
    model = _model()
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(np.ones((8, 3), "int32"), np.ones((8, 1)), verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, Adam) and loaded.optimizer.lazy
