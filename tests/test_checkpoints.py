"""`mmzoo.checkpoints.RunCheckpoint`: a run killed at any instant resumes
to the weights, random states, best weights and early-stopping state of an
uninterrupted one. In process, on a small model with dropout; the
subprocess SIGKILL test is in `test_resume.py`."""

import os

import keras
import numpy as np
import pytest

from mmzoo import checkpoints, optimizers

EPOCHS = 4


class Killed(Exception):
    pass


class KillAtEpoch(keras.callbacks.Callback):
    """Stops the process's training like a kill at the start of `epoch`."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Killed(epoch)


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    return x, y


def _model(optimizer=keras.optimizers.Adam):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dropout(0.4)(keras.layers.Dense(8, "relu")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1, "sigmoid")(hidden))
    model.compile(optimizer(0.05), "binary_crossentropy")
    return model


def _fit(
    folder,
    extra=(),
    patience=None,
    learning_rate=None,
    optimizer=keras.optimizers.Adam,
):
    """One `fit` as `mmzoo.training.train` runs it: returns the model, the
    callbacks and the history."""
    model = _model(optimizer)
    if learning_rate:
        model.optimizer.learning_rate.assign(learning_rate)
    stopping = None
    if patience:
        stopping = keras.callbacks.EarlyStopping(
            patience=patience, restore_best_weights=True
        )
    checkpoint = checkpoints.RunCheckpoint(
        str(folder / "backup"),
        str(folder / "best.weights.h5"),
        early_stopping=stopping,
    )
    callbacks = [*([stopping] if stopping else []), checkpoint, *extra]
    x, y = _data()
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=EPOCHS,
        initial_epoch=checkpoints.initial_epoch(str(folder / "backup"), EPOCHS),
        validation_data=(x[:16], y[:16]),
        shuffle=False,
        callbacks=callbacks,
        verbose=0,
    )
    return model, checkpoint, history


def _weights(path):
    model = _model()
    model.optimizer.build(model.trainable_variables)
    model.load_weights(path)
    return model.get_weights()


def _assert_same(a, b):
    assert len(a) == len(b)
    for left, right in zip(a, b):
        np.testing.assert_array_equal(left, right)


@pytest.mark.parametrize(
    "kill_at, optimizer",
    [(1, "keras"), (2, "keras"), (3, "keras"), (2, "fused")],
)
def test_killed_and_resumed_equals_uninterrupted(tmp_path, kill_at, optimizer):
    # `fused`: mmzoo's Adam (base DeepFM's `fused_adam`), whose update
    # kernel reads the step count from the restored optimizer.
    optimizer = {"keras": keras.optimizers.Adam, "fused": optimizers.Adam}[
        optimizer
    ]
    straight, _, _ = _fit(tmp_path / "straight", optimizer=optimizer)
    with pytest.raises(Killed):
        _fit(
            tmp_path / "killed",
            extra=[KillAtEpoch(kill_at)],
            optimizer=optimizer,
        )
    assert (
        checkpoints.read_state(str(tmp_path / "killed" / "backup"))["epoch"]
        == kill_at
    )
    resumed, _, history = _fit(tmp_path / "killed", optimizer=optimizer)
    assert len(history.history["loss"]) == EPOCHS - kill_at
    # Dropout draws masks from the restored random states: without them
    # the weights differ.
    _assert_same(resumed.get_weights(), straight.get_weights())
    _assert_same(
        _weights(tmp_path / "killed" / "best.weights.h5"),
        _weights(tmp_path / "straight" / "best.weights.h5"),
    )


def test_a_kill_while_writing_leaves_the_previous_checkpoint(
    tmp_path, monkeypatch
):
    rename = os.rename

    def killed_before_epoch_2_lands(source, destination):
        if str(destination).endswith("epoch-2"):
            raise Killed(destination)
        rename(source, destination)

    monkeypatch.setattr(checkpoints.os, "rename", killed_before_epoch_2_lands)
    with pytest.raises(Killed):
        _fit(tmp_path / "killed")
    monkeypatch.undo()
    backup = tmp_path / "killed" / "backup"
    # epoch-2's files were all written, but under a temporary name.
    assert sorted(os.listdir(backup)) == [
        "epoch-1",
        f"epoch-2.tmp-{os.getpid()}",
    ]
    assert checkpoints.read_state(str(backup))["epoch"] == 1

    resumed, _, history = _fit(tmp_path / "killed")
    assert len(history.history["loss"]) == EPOCHS - 1
    straight, _, _ = _fit(tmp_path / "straight")
    _assert_same(resumed.get_weights(), straight.get_weights())
    # The temporary folder is cleared, and only the last epoch is kept.
    assert os.listdir(backup) == [f"epoch-{EPOCHS}"]


def test_early_stopping_state_survives_the_kill(tmp_path):
    # A learning rate far too high: the best validation loss comes before
    # the kill and training stops after it, so the resumed run must know
    # the best value, its weights and the patience count from before.
    straight, _, straight_history = _fit(
        tmp_path / "straight", patience=1, learning_rate=3.0
    )
    with pytest.raises(Killed):
        _fit(
            tmp_path / "killed",
            extra=[KillAtEpoch(2)],
            patience=1,
            learning_rate=3.0,
        )
    resumed, checkpoint, history = _fit(
        tmp_path / "killed", patience=1, learning_rate=3.0
    )
    straight_losses = straight_history.history["val_loss"]
    assert len(straight_losses) < EPOCHS
    assert int(np.argmin(straight_losses)) < 2
    resumed_losses = history.history["val_loss"]
    assert resumed_losses == straight_losses[2:]
    assert checkpoint.best == pytest.approx(min(straight_losses), rel=1e-6)
    # The restored best weights may come from an epoch before the kill.
    _assert_same(resumed.get_weights(), straight.get_weights())


def test_a_stopped_run_resumes_to_no_more_epochs(tmp_path):
    stopping = keras.callbacks.EarlyStopping(patience=1)
    checkpoint = checkpoints.RunCheckpoint(
        str(tmp_path / "backup"),
        str(tmp_path / "best.weights.h5"),
        early_stopping=stopping,
    )
    model = _model()
    checkpoint.set_model(model)
    stopping.set_model(model)
    stopping.on_train_begin()
    checkpoint.on_train_begin()
    # A first epoch after which training stops (as EarlyStopping would).
    stopping.on_epoch_end(0, {"val_loss": 1.0})
    model.stop_training = True
    checkpoint.on_epoch_end(0, {"val_loss": 1.0})
    assert checkpoints.read_state(str(tmp_path / "backup"))["stopped"]
    assert checkpoints.initial_epoch(str(tmp_path / "backup"), 10) == 10
    assert checkpoints.initial_epoch(str(tmp_path / "missing"), 10) == 0
