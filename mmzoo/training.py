"""Train a registered model on a dataset, evaluate it and export it.

The one training loop behind `mmzoo train` and the main job; it holds no
per-model code (that lives in the model's task).

A run folder survives a kill:

- `train.json` (the run's arguments) is written first; `backup/` holds
  the checkpoint of the last finished epoch (weights, optimizer and
  random-generator states, best validation loss, early-stopping state),
  renamed into place as one folder (`mmzoo.checkpoints`);
  `best.weights.h5` the weights of the best validation loss so far.
- `train(..., run_dir=DIR, resume=True)` (`mmzoo train ... --run-dir DIR
  --resume`) continues a killed run from its last finished epoch, after
  checking that the arguments are the same. The training data's shuffle
  order is replayed: the epochs already done are skipped over, so epoch k
  sees the order it would have seen.
- `model.keras`, `examples.npz`, `metrics.json` and the reports are written
  to temporary names and renamed; `run.json` comes last and marks a
  finished run: `load_run` (`mmzoo export`) refuses a folder without it.
- `deterministic=True` seeds weights, shuffles and splits and turns on
  TensorFlow's op determinism, so a killed and resumed run ends with the
  weights of an uninterrupted one.
- `distribute=KIND` trains on several devices or machines
  (`mmzoo.distribute`); under `multi-worker` only the chief writes the run
  folder and the export.
"""

import json
import os
import shutil
import time

import keras

from mmzoo import checkpoints, registry
from mmzoo.distribute import setup as setup_distribution


def train(
    model_name,
    dataset="synthetic",
    data_dir=None,
    variant="base",
    epochs=None,
    batch_size=None,
    seed=0,
    overrides=None,
    logdir="logs",
    export_dir="export",
    steps_per_epoch=None,
    verbose="auto",
    run_dir=None,
    resume=False,
    deterministic=False,
    early_stopping=0,
    distribute=None,
):
    """Fits `model_name` on `dataset`, evaluates, saves and exports it.

    Args:
        model_name: str. A registered model.
        dataset: str. A dataset name the model's task reads.
        data_dir: str or None. Where the dataset's files are.
        variant: str. Model variant. Defaults to `"base"`.
        epochs: int or None. Defaults to the config's `epochs` (set per
            variant).
        batch_size: int or None. Defaults to the config's `batch_size`.
        seed: int. Seeds weights, shuffling and the data split.
        overrides: dict of config overrides (strict).
        logdir: str. Run folders (TensorBoard logs, `model.keras`, config,
            preprocessing assets, `metrics.json` (the returned metrics),
            the task's text reports on the test split such as
            `classification_report.txt`) go to
            `logdir/<model>/<time>/`.
        export_dir: str or None. Export base folder; None skips the export.
        steps_per_epoch: int or None. Cap on training steps per epoch.
        verbose: Keras `fit` verbosity (progress bar by default).
        run_dir: str or None. The run folder; None = a new timestamped one
            under `logdir/<model>/`. A new run refuses a folder that holds
            files.
        resume: bool. Continue the killed run in `run_dir` from its last
            finished epoch (the same arguments are required).
        deterministic: bool. TensorFlow op determinism on (slower on some
            ops): with the same seed, the same weights and metrics.
        early_stopping: int. Stop when the validation loss has not
            improved for this many epochs, and keep the best weights; 0
            trains every epoch (the best weights are still saved to
            `best.weights.h5`).
        distribute: str or None. Train on several devices or machines:
            `mirrored`, `multi-worker` or `tpu` (TensorFlow backend),
            `data-parallel` or `model-parallel` (JAX backend); see
            `mmzoo.distribute`. `batch_size` is then the global batch,
            split over the replicas. Under `multi-worker` only the chief
            writes `run_dir` and the export; the other workers return
            `run_dir` and `export` None. Defaults to None (one device).

    Returns:
        dict with `model`, `dataset`, `metrics` (`val`, `test`), `export`,
        `run_dir`, and the Keras model under `keras_model`.
    """
    task = registry.get_task(model_name)
    task.check_dataset(dataset, data_dir)
    overrides = dict(overrides or {})
    if epochs:
        overrides["epochs"] = epochs
    if batch_size:
        overrides["batch_size"] = batch_size
    arguments = {
        "model": model_name,
        "dataset": dataset,
        "data_dir": os.path.abspath(data_dir) if data_dir else None,
        "variant": variant,
        "overrides": overrides,
        "seed": seed,
        "steps_per_epoch": steps_per_epoch,
        "deterministic": bool(deterministic),
        "early_stopping": int(early_stopping),
    }
    if resume and not run_dir:
        raise ValueError("--resume continues a run: name it with --run-dir")
    # First: a strategy sets TensorFlow up before it runs any op.
    distribution = setup_distribution(distribute)
    if run_dir is None:
        run_dir = os.path.join(
            logdir,
            model_name,
            time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}",
        )
    if distribution.is_chief:
        _start_run(run_dir, arguments, resume)
    # What this process writes: `run_dir`, or another worker's own folder.
    work_dir = distribution.work_dir(run_dir, resume)
    keras.utils.set_random_seed(seed)
    if deterministic:
        from mmzoo.tasks.base import enable_op_determinism

        enable_op_determinism()
    config = registry.get_config(model_name, variant, **overrides)
    assets_dir = os.path.join(work_dir, "preprocessing")
    prepared = task.prepare(config, dataset, data_dir, assets_dir, seed)
    config = prepared.config
    with distribution.scope():
        model = registry.build(model_name, config=config)
        task.compile(model, config)
    epochs = config.epochs
    batch_size = config.batch_size
    distribution.check_batches(prepared.splits, batch_size)
    train_data = task.pipeline(
        prepared, "train", batch_size, training=True, seed=seed
    )
    if steps_per_epoch:
        train_data = train_data.repeat()
    distribution.build_for_data(model, train_data)
    val_data = task.pipeline(prepared, "val", batch_size)
    if variant != "tiny" and not _has_accelerator():
        # Probed on validation data: drawing from the training data would
        # advance its shuffle order.
        cost = probe_cost(model, val_data, train_data)
        warning = size_warning(model_name, variant, cost, epochs)
        if warning:
            import sys

            print(f"mmzoo: warning: {warning}", file=sys.stderr, flush=True)
    backup_dir = os.path.join(work_dir, BACKUP_DIR)
    done = checkpoints.initial_epoch(backup_dir, epochs) if resume else 0
    if done and not steps_per_epoch:
        # Every iterator Keras makes over the training data draws the next
        # shuffle order (`reshuffle_each_iteration`): draw the ones the
        # finished epochs drew, so the next epoch sees its own order.
        for _ in range(done * _iterators_per_epoch(train_data)):
            iter(train_data)
    examples = task.raw_examples(prepared, "test", 8)
    stopping = None
    if early_stopping:
        stopping = keras.callbacks.EarlyStopping(
            monitor="val_loss",
            patience=int(early_stopping),
            restore_best_weights=True,
        )
    callbacks = [
        keras.callbacks.TensorBoard(work_dir),
        _sample_predictions(task, model, prepared, work_dir, examples),
        *([stopping] if stopping else []),
        # After EarlyStopping: it saves and restores that callback's state.
        checkpoints.RunCheckpoint(
            backup_dir,
            os.path.join(work_dir, BEST_WEIGHTS),
            monitor="val_loss",
            early_stopping=stopping,
        ),
    ]
    model.fit(
        train_data,
        validation_data=val_data,
        epochs=epochs,
        initial_epoch=done,
        steps_per_epoch=steps_per_epoch,
        shuffle=False,
        callbacks=callbacks,
        verbose=verbose,
    )
    # Every worker evaluates alike (the metrics are reduced over all of
    # them); only the chief writes.
    metrics = {
        split: task.evaluate(model, prepared, split, batch_size)
        for split in ("val", "test")
    }
    reports = task.reports(model, prepared, "test")
    confusion = task.confusion(model, prepared, "test")
    embeddings = task.embeddings(model, prepared, "test")
    result = {
        "model": model_name,
        "dataset": dataset,
        "metrics": metrics,
        "export": None,
        "run_dir": run_dir,
        "keras_model": model,
        "prepared": prepared,
    }
    if not distribution.is_chief:
        distribution.close()
        return {**result, "run_dir": None}
    from mmzoo.export.saved_model import config_to_dict
    from mmzoo.tasks import tensorboard

    tensorboard.log_hparams(
        run_dir,
        {
            **config_to_dict(config),
            "model": model_name,
            "variant": variant,
            "dataset": dataset,
            "seed": seed,
        },
        metrics,
    )
    _write_text(
        os.path.join(run_dir, "metrics.json"), json.dumps(metrics, indent=1)
    )
    for filename, text in reports.items():
        _write_text(os.path.join(run_dir, filename), text)
    if confusion is not None:
        tensorboard.log_confusion_matrix(run_dir, confusion)
    if embeddings is not None:
        tensorboard.log_embeddings(run_dir, *embeddings)
    # Last: `run.json` marks the run finished (see `load_run`); the
    # checkpoint is no longer needed.
    save_run(run_dir, model_name, model, config, examples)
    shutil.rmtree(backup_dir, ignore_errors=True)
    if export_dir:
        from mmzoo.export import export_model

        result["export"] = export_model(
            model,
            task,
            config,
            prepared.preprocessor,
            export_dir,
            examples=examples,
        )
    return result


BACKUP_DIR = "backup"
# Test examples served and logged to TensorBoard after every epoch.
SAMPLE_COUNT = 4


def _sample_predictions(task, model, prepared, run_dir, examples):
    """The `SamplePredictions` callback of a run: the first `SAMPLE_COUNT`
    of `examples` through the task's `serving_default` code."""
    from mmzoo.tasks.base import SERVING_DEFAULT
    from mmzoo.tasks.tensorboard import sample_predictions_callback

    endpoint = task.endpoints(prepared.config, prepared.preprocessor)[
        SERVING_DEFAULT
    ]
    signature = task.endpoint_signature(prepared.config, endpoint)
    raw = {
        name: value[:SAMPLE_COUNT]
        for name, value in endpoint.inputs_from(examples, signature).items()
    }
    kinds = {spec.name: spec.kind for spec in task.input_specs(prepared.config)}
    return sample_predictions_callback(
        run_dir,
        lambda inputs: endpoint.serve(model, prepared.preprocessor, inputs),
        raw,
        kinds,
    )


BEST_WEIGHTS = "best.weights.h5"
ARGUMENTS_FILE = "train.json"
RUN_FILE = "run.json"


def _write_text(path, text):
    """Writes `path` atomically (a temporary file, then a rename)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _start_run(run_dir, arguments, resume):
    """Checks the run folder and records the run's arguments."""
    path = os.path.join(run_dir, ARGUMENTS_FILE)
    if resume:
        if not os.path.exists(path):
            raise ValueError(
                f"--resume: {run_dir} holds no run to resume (no "
                f"{ARGUMENTS_FILE}); train without --resume to start one"
            )
        if os.path.exists(os.path.join(run_dir, RUN_FILE)):
            raise ValueError(
                f"--resume: the run in {run_dir} is finished ({RUN_FILE} "
                "is there); export it with `mmzoo export`"
            )
        with open(path) as f:
            recorded = json.load(f)
        changed = {
            key: (recorded.get(key), value)
            for key, value in arguments.items()
            if recorded.get(key) != json.loads(json.dumps(value))
        }
        if changed:
            raise ValueError(
                f"--resume: the run in {run_dir} was started with other "
                "arguments; (recorded, now): "
                + ", ".join(f"{k}: {v}" for k, v in sorted(changed.items()))
            )
        return
    if os.path.isdir(run_dir) and os.listdir(run_dir):
        raise ValueError(
            f"--run-dir {run_dir} already holds files; add --resume to "
            "continue its run, or name a new folder"
        )
    os.makedirs(run_dir, exist_ok=True)
    _write_text(path, json.dumps(arguments, indent=1))


# A run without an accelerator that is expected to take longer or to
# hold more than this is warned about before its first step.
CPU_HOURS_WARNING = 0.5
MEMORY_FRACTION_WARNING = 0.5


def _has_accelerator():
    from mmzoo.tasks.base import has_accelerator

    return has_accelerator()


def _resident_bytes():
    """This process's resident memory now (Linux `/proc`; else its peak)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _machine_bytes():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return 0


def probe_cost(model, probe_data, train_data):
    """Measures one forward pass on the first batch of `probe_data` (the
    second call, after tracing) and returns what `size_warning` needs:
    dict with `parameters`, `forward_seconds`, `forward_bytes` (resident
    memory the pass added), `resident_bytes` (now), `machine_bytes` and
    `steps_per_epoch` (batches of `train_data`; 0 when unknown)."""
    inputs = next(iter(probe_data))[0]
    before = _resident_bytes()
    model(inputs, training=False)  # traces and builds
    start = time.perf_counter()
    model(inputs, training=False)
    seconds = time.perf_counter() - start
    after = _resident_bytes()
    steps = int(train_data.cardinality())
    return {
        "parameters": int(model.count_params()),
        "forward_seconds": seconds,
        "forward_bytes": max(0, after - before),
        "resident_bytes": after,
        "machine_bytes": _machine_bytes(),
        "steps_per_epoch": max(steps, 0),
    }


def size_warning(model_name, variant, cost, epochs):
    """The warning for a run on a CPU that will take long or hold much of
    the machine's memory, or None.

    Estimates (a training step costs about three forward passes; its
    memory is the process now, twice the forward pass's activations for
    the backward pass, and Adam's two moments plus the gradients at 4
    bytes a parameter each): time = 3 × forward × steps × epochs.

    Args:
        model_name: str. For the message.
        variant: str. For the message.
        cost: dict of `probe_cost`.
        epochs: int.

    Returns:
        str or None.
    """
    hours = 3 * cost["forward_seconds"] * cost["steps_per_epoch"] * epochs
    hours /= 3600
    memory = (
        cost["resident_bytes"]
        + 2 * cost["forward_bytes"]
        + 12 * cost["parameters"]
    )
    machine = cost["machine_bytes"]
    too_long = hours > CPU_HOURS_WARNING
    too_big = bool(machine) and memory > MEMORY_FRACTION_WARNING * machine
    if not (too_long or too_big):
        return None
    of_machine = (
        f" of this machine's {machine / 2**30:.0f} GB" if machine else ""
    )
    return (
        f"no GPU or TPU here, and the '{variant}' variant of {model_name} "
        f"({cost['parameters'] / 1e6:.1f} M parameters) is sized for one: "
        f"about {memory / 2**30:.1f} GB{of_machine} and "
        f"{hours:.1f} h for {epochs} epochs on this CPU (from one measured "
        "forward pass). For a CPU run pass --variant tiny, or start from a "
        "pretrained preset (--set image_preset=... / text_preset=...)"
    )


def _iterators_per_epoch(dataset):
    """Iterators Keras 3's `EpochIterator` makes over `dataset` per epoch
    of `fit` (no `steps_per_epoch`): two when the number of batches is
    known (one at the epoch's start, one made at its end and dropped),
    one otherwise. `tests/test_resume.py` fails if this changes."""
    # tf.data's INFINITE_CARDINALITY is -1, UNKNOWN_CARDINALITY -2.
    return 2 if int(dataset.cardinality()) >= 0 else 1


def save_run(run_dir, model_name, model, config, examples):
    """Saves what `mmzoo export RUN_DIR` needs to re-export a model; each
    file is renamed into place, and `run.json` (the mark of a finished
    run) comes last."""
    import numpy as np

    from mmzoo.export.saved_model import config_to_dict
    from mmzoo.export.verify import encode_arrays

    os.makedirs(run_dir, exist_ok=True)
    tag = f"tmp-{os.getpid()}"
    examples_path = os.path.join(run_dir, "examples.npz")
    with open(f"{examples_path}.{tag}", "wb") as f:
        np.savez(f, **encode_arrays(examples))
    os.replace(f"{examples_path}.{tag}", examples_path)
    model_path = os.path.join(run_dir, "model.keras")
    model.save(f"{model_path}.{tag}.keras")
    os.replace(f"{model_path}.{tag}.keras", model_path)
    _write_text(
        os.path.join(run_dir, RUN_FILE),
        json.dumps({"model": model_name, "config": config_to_dict(config)}),
    )


def load_run(run_dir):
    """Loads a finished run folder of `train`: returns (model name, model,
    config, preprocessor, examples).

    Raises:
        ValueError: the folder holds no finished run (no `run.json`: still
            training, or killed; `--resume` continues it).
    """
    import numpy as np

    from mmzoo.export.verify import decode_arrays

    path = os.path.join(run_dir, RUN_FILE)
    if not os.path.exists(path):
        started = os.path.exists(os.path.join(run_dir, ARGUMENTS_FILE))
        raise ValueError(
            f"{run_dir} holds no finished run (no {RUN_FILE}): "
            + (
                "it is still training or was killed; continue it with "
                "`mmzoo train ... --run-dir "
                f"{run_dir} --resume`, then export"
                if started
                else "not a run folder of `mmzoo train`"
            )
        )
    with open(path) as f:
        run = json.load(f)
    name = run["model"]
    config = registry.config_from_dict(name, run["config"])
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    preprocessor = registry.get_task(name).make_preprocessor(
        config, os.path.join(run_dir, "preprocessing")
    )
    with np.load(os.path.join(run_dir, "examples.npz")) as data:
        examples = decode_arrays(data)
    return name, model, config, preprocessor, examples
