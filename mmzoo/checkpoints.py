"""A run folder's checkpoint of its last finished epoch, written so that a
kill at any instant leaves either the previous epoch's checkpoint or the
new one, never a mixture.

Keras's `BackupAndRestore` writes the weights in place and then
`training_metadata.json`, and keeps no random-generator states; a second
callback writing those could be killed between the two callbacks' writes.
Here one callback writes everything an epoch end leaves behind into a
temporary folder and renames it into place (`os.rename` of a folder is
atomic on POSIX):

    backup/epoch-<n>/model.weights.h5    weights and optimizer state
    backup/epoch-<n>/random_state.npz    random-generator states (dropout
                                         masks, modality dropout, noise)
    backup/epoch-<n>/state.json          epochs done, best validation value,
                                         early-stopping state, stopped

The best weights by the monitored value (`best.weights.h5` beside
`backup/`) are renamed into place the same way, and their value is part of
the checkpoint, so a resumed run keeps the best of the epochs before the
kill and `EarlyStopping` keeps its patience count.
"""

import json
import os
import re
import shutil

import keras

_EPOCH_FOLDER = re.compile(r"^epoch-(\d+)$")
WEIGHTS_FILE = "model.weights.h5"
RANDOM_STATE_FILE = "random_state.npz"
STATE_FILE = "state.json"


def latest(directory):
    """The newest complete checkpoint folder in `directory`, or None."""
    if not os.path.isdir(directory):
        return None
    epochs = [
        int(match.group(1))
        for match in map(_EPOCH_FOLDER.match, os.listdir(directory))
        if match
    ]
    if not epochs:
        return None
    return os.path.join(directory, f"epoch-{max(epochs)}")


def _load_state(folder):
    with open(os.path.join(folder, STATE_FILE)) as f:
        return json.load(f)


def read_state(directory):
    """The `state.json` of the newest checkpoint in `directory` (a dict with
    `epoch`, the epochs done, and `stopped`), or None without one."""
    folder = latest(directory)
    return None if folder is None else _load_state(folder)


def initial_epoch(directory, epochs):
    """The epoch `fit` resumes at: the checkpoint's epochs done, or
    `epochs` (nothing left) when the run had stopped early."""
    state = read_state(directory)
    if state is None:
        return 0
    return epochs if state["stopped"] else state["epoch"]


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _random_states(model):
    """The model's random-generator state variables, in the model's own
    (structural) order: their names carry process-wide counters
    (`seed_generator_3`), their order does not."""
    return [
        variable
        for variable in model.variables
        if "seed_generator" in variable.path
    ]


class RunCheckpoint(keras.callbacks.Callback):
    """Checkpoints the last finished epoch into `directory` and the best
    weights by `monitor` (lower is better) into `best_path`, atomically,
    and restores both when training starts.

    Put it after `early_stopping` (a Keras `EarlyStopping` on the same
    monitor, or None) in the callback list: it saves that callback's
    state after its epoch end, and restores it after its `on_train_begin`
    has reset it.

    `fit` must be given `initial_epoch=initial_epoch(directory, epochs)`.
    """

    def __init__(
        self, directory, best_path, monitor="val_loss", early_stopping=None
    ):
        super().__init__()
        self.directory = directory
        self.best_path = best_path
        self.monitor = monitor
        self.early_stopping = early_stopping
        self.best = None

    def on_train_begin(self, logs=None):
        self.best = None
        if os.path.isdir(self.directory):
            # Left by a kill during a write; never a checkpoint.
            for name in os.listdir(self.directory):
                if ".tmp-" in name:
                    shutil.rmtree(os.path.join(self.directory, name), True)
        folder = latest(self.directory)
        if folder is None:
            return
        state = _load_state(folder)
        model = self.model
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        stopping = self.early_stopping
        if stopping is not None and stopping.restore_best_weights:
            if state["best"] is not None and os.path.exists(self.best_path):
                model.load_weights(self.best_path)
                stopping.best_weights = model.get_weights()
        model.load_weights(os.path.join(folder, WEIGHTS_FILE))
        import numpy as np

        with np.load(os.path.join(folder, RANDOM_STATE_FILE)) as saved:
            states = [saved[f"state_{i}"] for i in range(len(saved.files))]
        variables = _random_states(model)
        if len(states) != len(variables):
            raise ValueError(
                f"{folder} holds {len(states)} random-generator states; this "
                f"model has {len(variables)}: not a checkpoint of this model"
            )
        for variable, value in zip(variables, states):
            variable.assign(value)
        self.best = state["best"]
        if stopping is not None and state["early_stopping"] is not None:
            for name, value in state["early_stopping"].items():
                setattr(stopping, name, value)

    def on_epoch_end(self, epoch, logs=None):
        import numpy as np

        value = (logs or {}).get(self.monitor)
        improved = value is not None and (
            self.best is None or value < self.best
        )
        if improved:
            self.best = float(value)
        os.makedirs(self.directory, exist_ok=True)
        folder = os.path.join(self.directory, f"epoch-{epoch + 1}")
        tmp = f"{folder}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        weights = os.path.join(tmp, WEIGHTS_FILE)
        self.model.save_weights(weights)
        with open(os.path.join(tmp, RANDOM_STATE_FILE), "wb") as f:
            np.savez(
                f,
                **{
                    f"state_{i}": np.asarray(variable)
                    for i, variable in enumerate(_random_states(self.model))
                },
            )
        stopping = self.early_stopping
        state = {
            "epoch": epoch + 1,
            "best": self.best,
            "stopped": bool(self.model.stop_training),
            "early_stopping": None
            if stopping is None
            else {
                "wait": int(stopping.wait),
                "best": None if stopping.best is None else float(stopping.best),
                "best_epoch": int(stopping.best_epoch),
            },
        }
        with open(os.path.join(tmp, STATE_FILE), "w") as f:
            json.dump(state, f)
        for name in os.listdir(tmp):
            _fsync(os.path.join(tmp, name))
        if improved:
            # The epoch's weights file is the best one too: linked, not
            # written twice, and in place before the state that names it.
            best = f"{self.best_path}.tmp-{os.getpid()}"
            if os.path.exists(best):
                os.remove(best)
            try:
                os.link(weights, best)
            except OSError:  # no hard links here
                shutil.copyfile(weights, best)
            os.replace(best, self.best_path)
        os.rename(tmp, folder)
        _fsync(self.directory)
        # The new checkpoint is in place; older ones are no longer needed.
        for name in os.listdir(self.directory):
            match = _EPOCH_FOLDER.match(name)
            if match and int(match.group(1)) < epoch + 1:
                shutil.rmtree(os.path.join(self.directory, name), True)
