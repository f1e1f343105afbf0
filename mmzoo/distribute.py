"""Training on several devices or machines: `mmzoo train --distribute KIND`.

TensorFlow backend (`tf.distribute`, which Keras 3's TensorFlow trainer
runs `fit`/`evaluate`/`predict` through):

- `mirrored`: `tf.distribute.MirroredStrategy` over this machine's GPUs
  (or the logical devices TensorFlow sees).
- `multi-worker`: `tf.distribute.MultiWorkerMirroredStrategy` over the
  machines named in the `TF_CONFIG` environment variable.
- `tpu`: `tf.distribute.TPUStrategy` on the TPU of `TPU_NAME` (a TPU
  node), or this TPU VM's own.

JAX backend (`keras.distribution`):

- `data-parallel`: `keras.distribution.DataParallel` over every device.
- `model-parallel`: `keras.distribution.ModelParallel` that shards large
  embedding tables by rows over the devices (`jax_distribution`).

The batch size of the config (`--batch-size`) is the global batch: each
step splits it over the replicas, and the loss is scaled so that the
summed gradients are the global batch's mean: N devices take the steps
one device takes (`mirrored` on two devices gives one device's metrics
to float precision, `tests/test_distribute.py`). Under `multi-worker`
only the chief writes the run folder and the export; the other workers
run the same calls (every collective needs them) with a temporary folder
of their own.

Parameter-server training (`tf.distribute.ParameterServerStrategy`) is not
supported by Keras 3's `fit` (`UNSUPPORTED`).
"""

import atexit
import contextlib
import json
import os
import shutil
import sys
import tempfile

import keras

from mmzoo.training_config import build_for_data

TF_KINDS = ("mirrored", "multi-worker", "tpu")
JAX_KINDS = ("data-parallel", "model-parallel")
KINDS = TF_KINDS + JAX_KINDS
# Asked for, but out of Keras 3's reach: the reason and the route that works.
UNSUPPORTED = {
    "parameter-server": (
        "Keras 3's fit() does not run tf.distribute.ParameterServerStrategy "
        "(it needs a ClusterCoordinator to schedule each step, which only "
        "tf.keras 2 drives; Keras 3 has none). Train synchronously instead: "
        "--distribute multi-worker (every worker holds the variables), or, "
        "for embedding tables too large for one device, KERAS_BACKEND=jax "
        "with --distribute model-parallel (tables sharded by rows); or use "
        "tf.keras 2 (the tf-keras package, TF_USE_LEGACY_KERAS=1) with a "
        "custom loop on tf.distribute.coordinator.ClusterCoordinator"
    ),
}
# Embedding tables of `model-parallel`: variables whose path matches this
# regular expression, with at least `MIN_SHARDED_ROWS` rows, are split by
# rows over the devices; every other variable is replicated.
EMBEDDING_PATTERN = r".*embedding.*"
MIN_SHARDED_ROWS = 1024


def check_kind(kind):
    """Raises `ValueError` for a `--distribute` value this backend cannot
    run; returns `kind` (None: no distribution)."""
    if kind is None or kind == "none":
        return None
    if kind in UNSUPPORTED:
        raise ValueError(f"--distribute {kind}: {UNSUPPORTED[kind]}")
    backend = keras.backend.backend()
    if kind in TF_KINDS and backend != "tensorflow":
        raise ValueError(
            f"--distribute {kind} is a tf.distribute strategy and needs "
            f"KERAS_BACKEND=tensorflow (this is {backend}); on JAX use "
            f"{' or '.join(JAX_KINDS)}"
        )
    if kind in JAX_KINDS and backend != "jax":
        raise ValueError(
            f"--distribute {kind} is Keras's distribution API, which runs on "
            f"KERAS_BACKEND=jax (this is {backend}; Keras marks its "
            "TensorFlow version a prototype); on TensorFlow use "
            f"{' or '.join(TF_KINDS)}"
        )
    if kind not in KINDS:
        raise ValueError(
            f"--distribute: unknown kind {kind!r}; valid: none, "
            f"{', '.join(KINDS)}"
        )
    return kind


class Distribution:
    """Where a run trains and which of its processes writes.

    Attributes:
        kind: str or None. The `--distribute` value.
        strategy: `tf.distribute.Strategy` or None (JAX, or none).
        is_chief: bool. Whether this process writes the run folder and
            the export (False only on the other workers of
            `multi-worker`).
        worker: str. This process's task in the cluster, for messages
            (`worker:1`); `""` outside `multi-worker`.
    """

    def __init__(self, kind=None, strategy=None, is_chief=True, worker=""):
        self.kind = kind
        self.strategy = strategy
        self.is_chief = is_chief
        self.worker = worker
        self._temp_dir = None

    def check_batches(self, splits, batch_size):
        """Raises `ValueError` when a batch of a split would not divide
        over the devices of a JAX distribution: Keras's JAX trainer shards
        every batch evenly, the last one of a split included (JAX raises
        `IndivisibleError` otherwise). No check elsewhere, or for a split
        of unknown size.

        Args:
            splits: dict of split name to an unbatched `tf.data.Dataset`.
            batch_size: int. The global batch.
        """
        distribution = keras.distribution.distribution()
        if self.kind not in JAX_KINDS or distribution is None:
            return
        mesh = distribution.device_mesh
        parts = mesh.shape[mesh.axis_names.index(distribution.batch_dim_name)]
        for split, dataset in splits.items():
            size = int(dataset.cardinality())
            last = size % batch_size if size >= 0 else 0
            for batch in (batch_size, last):
                if batch % parts:
                    raise ValueError(
                        f"--distribute {self.kind}: a batch of {batch} "
                        f"examples ({split} split: {size} examples in "
                        f"batches of {batch_size}) does not split evenly "
                        f"over {parts} devices, as Keras's JAX trainer "
                        "needs for every batch; choose a --batch-size "
                        f"that is a multiple of {parts} and leaves a last "
                        "batch that is one too"
                    )

    def scope(self):
        """The context that model building and `compile` need (the
        strategy's scope; nothing otherwise)."""
        if self.strategy is not None:
            return self.strategy.scope()
        return contextlib.nullcontext()

    def build_for_data(self, model, dataset):
        """`mmzoo.training_config.build_for_data` in the strategy's scope,
        and no other build by `fit`.

        Under a strategy, Keras 3's TensorFlow trainer builds the model in
        `fit` from a batch that it draws from a first iterator over the
        training data, then starts the epoch on a second one
        (`_maybe_symbolic_build`, then `epoch_iterator.reset()`): a data
        set that reshuffles on each iteration would train on its second
        shuffle order, not the order one device trains on. Built here,
        that draw has nothing left to build and is skipped.
        """
        with self.scope():
            build_for_data(model, dataset)
        if self.strategy is not None and hasattr(model, "_symbolic_build"):
            model._maybe_symbolic_build = _built_already

    def work_dir(self, run_dir, resume=False):
        """The folder this process writes in place of `run_dir`: `run_dir`
        on the chief; on another worker a temporary folder of its own,
        holding a copy of the chief's `backup/` when resuming, so that its
        checkpoint starts from the chief's epoch (the run folder
        must then be on a filesystem every worker sees)."""
        if self.is_chief:
            return run_dir
        if self._temp_dir is None:
            tag = self.worker.replace(":", "")
            self._temp_dir = tempfile.mkdtemp(prefix=f"mmzoo-{tag}-")
            # Removed by `close`, or at exit when training fails.
            atexit.register(shutil.rmtree, self._temp_dir, True)
        if resume:
            from mmzoo.training import BACKUP_DIR

            chief_backup = os.path.join(run_dir, BACKUP_DIR)
            if os.path.isdir(chief_backup):
                shutil.copytree(
                    chief_backup,
                    os.path.join(self._temp_dir, BACKUP_DIR),
                    dirs_exist_ok=True,
                )
        return self._temp_dir

    def close(self):
        """Removes this worker's temporary folder."""
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None


def _built_already(iterator=None, data_batch=None):
    """`Model._maybe_symbolic_build` of a model `build_for_data` built."""


def setup(kind):
    """Makes the distribution of a `--distribute` value.

    Call it first in a process, before TensorFlow runs any op: a
    `MultiWorkerMirroredStrategy` configures the collective ops at start,
    and a TPU system is initialized before use. On JAX it sets the global
    `keras.distribution` that model building reads.

    Args:
        kind: str or None. `mirrored`, `multi-worker` or `tpu` (TensorFlow
            backend), `data-parallel` or `model-parallel` (JAX backend);
            None or `"none"` for one device.

    Returns:
        `Distribution`.

    Raises:
        ValueError: an unknown or unsupported kind, a kind of the other
            backend, a missing or malformed `TF_CONFIG`, or no TPU.
    """
    kind = check_kind(kind)
    if kind is None:
        return Distribution()
    if kind in JAX_KINDS:
        keras.distribution.set_distribution(jax_distribution(kind))
        return Distribution(kind)
    import tensorflow as tf

    if kind == "mirrored":
        return Distribution(kind, tf.distribute.MirroredStrategy())
    if kind == "tpu":
        return Distribution(kind, _tpu_strategy())
    cluster, task_type, task_index = parse_tf_config(
        os.environ.get("TF_CONFIG")
    )
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            cluster_resolver=resolver
        )
    except RuntimeError as error:  # TensorFlow ran ops before
        raise ValueError(
            f"--distribute multi-worker: {error}; start each worker as a "
            "fresh process (`mmzoo train`, or `train()` before TensorFlow "
            "runs anything)"
        ) from None
    _patch_scalar_log_reduction()
    return Distribution(
        kind,
        strategy,
        is_chief=is_chief(cluster, task_type, task_index),
        worker=f"{task_type}:{task_index}",
    )


TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
    '"task": {"type": "worker", "index": 0}}'
)


def parse_tf_config(text):
    """Checks a `TF_CONFIG` value for `multi-worker`.

    Args:
        text: str or None. The environment variable's value.

    Returns:
        (cluster dict of task type to list of "host:port", task type,
        task index).

    Raises:
        ValueError: it is missing, not JSON, or names no task of its
            cluster; the message shows the value and an example.
    """
    where = f"--distribute multi-worker: TF_CONFIG {text!r}"
    hint = f"; expected JSON such as {TF_CONFIG_EXAMPLE}"
    if not text:
        raise ValueError(
            "--distribute multi-worker reads the cluster from the TF_CONFIG "
            "environment variable, which is not set" + hint
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where} is not JSON ({error})" + hint) from None
    if not isinstance(config, dict):
        raise ValueError(f"{where} is not a JSON object" + hint)
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError(f"{where} has no 'cluster'" + hint)
    if not isinstance(task, dict) or "type" not in task:
        raise ValueError(f"{where} has no 'task' with a 'type'" + hint)
    task_type, task_index = task["type"], task.get("index", 0)
    for name, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(
            isinstance(a, str) and ":" in a for a in addresses
        ):
            raise ValueError(
                f"{where}: cluster '{name}' must be a list of "
                "'host:port' strings" + hint
            )
    if set(cluster) - {"chief", "worker"}:
        raise ValueError(
            f"{where}: cluster jobs {sorted(set(cluster))}; "
            "MultiWorkerMirroredStrategy takes 'chief' and 'worker' only "
            "('ps' is parameter-server training: "
            + UNSUPPORTED["parameter-server"]
            + ")"
            + hint
        )
    if (
        task_type not in cluster
        or not isinstance(task_index, int)
        or not 0 <= task_index < len(cluster[task_type])
    ):
        raise ValueError(
            f"{where}: task {task_type}:{task_index} is not in its cluster "
            f"(valid tasks: chief, worker)" + hint
        )
    return cluster, task_type, task_index


def is_chief(cluster, task_type, task_index):
    """Whether a task writes the run: the `chief` task, or `worker` 0 of a
    cluster without one (TensorFlow's rule)."""
    if "chief" in cluster:
        return task_type == "chief"
    return task_type == "worker" and task_index == 0


def _patch_scalar_log_reduction():
    """Lets Keras 3's TensorFlow trainer reduce scalar step logs (loss,
    metrics) over the workers of a `MultiWorkerMirroredStrategy`.

    Its `reduce_per_replica` averages each log with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on a scalar
    ("Invalid reduction dimension 0 for input with 0 dimensions",
    tensorflow/tensorflow#72388), so the first `fit` step fails. Scalars
    are averaged over the replicas instead (`axis=None`); everything else
    goes to Keras unchanged. Installed once, only for `multi-worker`.
    """
    from keras.src.backend.tensorflow import trainer

    original = trainer.reduce_per_replica
    if getattr(original, "mmzoo_scalar_logs", False):
        return
    import tensorflow as tf

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy
        ):
            return original(values, strategy, reduction)

        def reduce(value):
            local = strategy.experimental_local_results(value)[0]
            if getattr(local, "shape", None) is not None and (
                local.shape.rank == 0
            ):
                return strategy.reduce("MEAN", value, axis=None)
            return original(value, strategy, reduction)

        return tf.nest.map_structure(reduce, values)

    reduce_per_replica.mmzoo_scalar_logs = True
    trainer.reduce_per_replica = reduce_per_replica


def _tpu_strategy():
    """`TPUStrategy` on `TPU_NAME`'s TPU, or this TPU VM's (`local`)."""
    import tensorflow as tf

    name = os.environ.get("TPU_NAME") or "local"
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name)
        if name != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError) as error:
        first = str(error).strip().splitlines()[0] if str(error) else ""
        raise ValueError(
            f"--distribute tpu: no TPU found (TPU_NAME={name!r}: "
            f"{type(error).__name__}: {first}). Run on a Cloud TPU VM, or "
            "set TPU_NAME to a TPU node's name or grpc:// address"
        ) from None
    return tf.distribute.TPUStrategy(resolver)


class _ShardedTables(keras.distribution.ModelParallel):
    """`ModelParallel` whose layout map applies to a variable only when it
    has at least `min_rows` rows, split evenly over the mesh's `model`
    axis; every other variable, and every layer output, stays replicated
    (a layout map alone sees paths, not shapes)."""

    def __init__(self, layout_map, min_rows, **kwargs):
        super().__init__(layout_map=layout_map, **kwargs)
        self.min_rows = int(min_rows)
        self.sharded = []

    def get_variable_layout(self, variable):
        if getattr(variable, "_layout", None) is not None:
            return variable._layout
        layout = self._layout_map[variable.path]
        shape = tuple(variable.shape)
        replicated = keras.distribution.TensorLayout(
            [None] * len(shape), self.device_mesh
        )
        if (
            layout is None
            or len(layout.axes) != len(shape)
            or shape[0] < self.min_rows
        ):
            return replicated
        parts = self.device_mesh.shape[
            self.device_mesh.axis_names.index(layout.axes[0])
        ]
        if shape[0] % parts:
            print(
                f"mmzoo: warning: --distribute model-parallel: "
                f"{variable.path} {shape} is replicated: its {shape[0]} "
                f"rows do not split evenly over {parts} devices",
                file=sys.stderr,
                flush=True,
            )
            return replicated
        if variable.path not in self.sharded:
            self.sharded.append(variable.path)
        return layout

    def get_tensor_layout(self, path):
        return None


def jax_distribution(
    kind,
    devices=None,
    model_devices=None,
    pattern=EMBEDDING_PATTERN,
    min_rows=MIN_SHARDED_ROWS,
):
    """The `keras.distribution.Distribution` of a JAX `--distribute` kind.

    `data-parallel`: `DataParallel` over `devices` (each device holds every
    variable and a slice of each batch). `model-parallel`: a
    `ModelParallel` on a `DeviceMesh` of axes `("batch", "model")` whose
    `LayoutMap` splits the variables matching `pattern` (embedding tables)
    by rows over the `model` axis; tables with fewer than `min_rows` rows,
    or whose rows do not split evenly (warned), and all other variables
    are replicated. Set it (`keras.distribution.set_distribution`) before
    building the model.

    Args:
        kind: str. `data-parallel` or `model-parallel`.
        devices: list of device names or None. Defaults to
            `keras.distribution.list_devices()`.
        model_devices: int or None. Devices a sharded table is split over
            (`model-parallel`); the rest of the mesh splits the batch.
            Defaults to all devices.
        pattern: str. Regular expression over variable paths.
        min_rows: int. Smallest table that is split. Defaults to
            `MIN_SHARDED_ROWS`.

    Returns:
        `keras.distribution.DataParallel` or `ModelParallel` (its `sharded`
        attribute lists the variable paths it split, once built).

    Example:
        >>> keras.distribution.set_distribution(
        ...     jax_distribution("model-parallel", min_rows=8))
    """
    if kind not in JAX_KINDS:
        raise ValueError(
            f"jax_distribution: unknown kind {kind!r}; valid: "
            f"{', '.join(JAX_KINDS)}"
        )
    devices = list(devices or keras.distribution.list_devices())
    if kind == "data-parallel":
        return keras.distribution.DataParallel(devices=devices)
    model_devices = int(model_devices or len(devices))
    if model_devices < 1 or len(devices) % model_devices:
        raise ValueError(
            f"jax_distribution: model_devices={model_devices} must divide "
            f"the {len(devices)} devices"
        )
    mesh = keras.distribution.DeviceMesh(
        shape=(len(devices) // model_devices, model_devices),
        axis_names=("batch", "model"),
        devices=devices,
    )
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[pattern] = ("model", None)
    return _ShardedTables(layout_map, min_rows, batch_dim_name="batch")
