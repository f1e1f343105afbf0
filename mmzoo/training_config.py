"""Training settings every model config carries, set per variant.

Optimizer, learning rate, epochs, batch size and dtype policy live in one
place: the fields below, which each model config inherits and each variant
of `VARIANTS` may set (`tiny` sizes them for a CPU, `base` for the
reference run). `mmzoo train --epochs/--batch-size/--set learning_rate=...`
(`--set dtype_policy=mixed_bfloat16`) override them like any other config
value.
"""

import dataclasses

import keras

from mmzoo import optimizers

OPTIMIZERS = ("adam", "fused_adam", "lazy_adam", "adamw", "sgd")

DTYPE_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
"""Keras dtype policies a model may be built under (`dtype_policy`)."""


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Training settings of a model.

    Attributes:
        optimizer: str. `adam` (Keras's), `fused_adam`
            (`mmzoo.optimizers.Adam`: the same arithmetic in one fused
            TensorFlow kernel per variable), `lazy_adam` (fused, and an
            embedding table's sparse gradient updates only the rows of the
            batch, moments included: the usual choice for large CTR
            tables), `adamw` (decoupled weight decay) or `sgd` (with
            momentum 0.9). Defaults to `adam`.
        learning_rate: float. Defaults to 1e-3.
        weight_decay: float. Weight decay of `adamw`. Defaults to 1e-4.
        global_clipnorm: float. Clip the global gradient norm to this value;
            0 turns clipping off. Defaults to 0.
        epochs: int. Epochs of `mmzoo train` (and of the main job for the
            `tiny` variant). Defaults to 10.
        batch_size: int. Examples per training step. Defaults to 32.
        steps_per_execution: int. Training steps run by one call of the
            compiled train function (Keras `compile(steps_per_execution=)`):
            less Python between steps, for models whose steps are short;
            batch-level callbacks then see every N-th step. Defaults to 1.
        dtype_policy: str. Keras dtype policy the model is built under:
            `float32`, `mixed_bfloat16` or `mixed_float16` (layers compute
            in 16 bits and keep float32 weights; `mixed_float16` also
            wraps the optimizer in a `LossScaleOptimizer` at `compile`).
            The model's outputs stay float32 and so does its export.
            Defaults to `float32`.
    """

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    global_clipnorm: float = 0.0
    epochs: int = 10
    batch_size: int = 32
    steps_per_execution: int = 1
    dtype_policy: str = "float32"

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"{type(self).__name__}: unknown optimizer "
                f"{self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}"
            )
        if self.dtype_policy not in DTYPE_POLICIES:
            raise ValueError(
                f"{type(self).__name__}: unknown dtype_policy "
                f"{self.dtype_policy!r}; valid: {', '.join(DTYPE_POLICIES)}"
            )
        if self.learning_rate <= 0:
            raise ValueError(
                f"{type(self).__name__}: learning_rate must be > 0, got "
                f"{self.learning_rate}"
            )
        if int(self.steps_per_execution) < 1:
            raise ValueError(
                f"{type(self).__name__}: steps_per_execution must be >= 1, "
                f"got {self.steps_per_execution}"
            )
        if int(self.epochs) < 1 or int(self.batch_size) < 1:
            raise ValueError(
                f"{type(self).__name__}: epochs and batch_size must be >= 1, "
                f"got epochs={self.epochs}, batch_size={self.batch_size}"
            )


def make_optimizer(config):
    """The `keras.optimizers.Optimizer` of a config's training settings."""
    clip = {}
    if config.global_clipnorm:
        clip["global_clipnorm"] = config.global_clipnorm
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(
            config.learning_rate, weight_decay=config.weight_decay, **clip
        )
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(config.learning_rate, momentum=0.9, **clip)
    if config.optimizer in ("fused_adam", "lazy_adam"):
        return optimizers.Adam(
            config.learning_rate, lazy=config.optimizer == "lazy_adam", **clip
        )
    return keras.optimizers.Adam(config.learning_rate, **clip)


def compile_model(model, config, **compile_kwargs):
    """`model.compile(**compile_kwargs)` with the config's optimizer, built
    on the model's trainable variables at once.

    Keras' TensorFlow trainer otherwise creates the optimizer's slot
    variables inside the first trace of the train step, and `tf.function`
    then traces the step a second time, without variable creation: on a
    tiny model the first `fit` step is mostly tracing, so building first
    halves it (the tiny captioner's one-epoch `fit`: 22.6 s -> 11.4 s).
    Compile again after changing which layers are trainable.

    Under `dtype_policy="mixed_float16"` the optimizer is a
    `keras.optimizers.LossScaleOptimizer` (dynamic loss scaling, so small
    float16 gradients do not flush to zero). Keras wraps it at `compile`
    for a model built under that global policy; this wraps it from the
    config, so that a model reloaded from a `.keras` file (whose own
    policy is the global one at load) gets it too.
    """
    optimizer = make_optimizer(config)
    if getattr(config, "dtype_policy", "float32") == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(
            optimizer, name="loss_scale_optimizer"
        )
    compile_kwargs.setdefault(
        "steps_per_execution", int(getattr(config, "steps_per_execution", 1))
    )
    model.compile(optimizer=optimizer, **compile_kwargs)
    model.optimizer.build(model.trainable_variables)


def build_for_data(model, dataset):
    """Builds a compiled model's losses and metrics for `dataset`'s batches
    now, before the first train step.

    Keras' TensorFlow trainer (without a distribution strategy) creates the
    loss trackers and metric variables of a multi-output model inside the
    first trace of the train step, and `tf.function` then traces the step a
    second time (the tiny vision-language classifier's first `fit`: 20.1 s
    -> 13.4 s). Uses Keras' private `_symbolic_build`; a no-op where it is
    missing and on other backends (whose trainers build first already).

    Args:
        model: a compiled `keras.Model`.
        dataset: the `tf.data.Dataset` of `(inputs, targets[, weights])`
            that `fit` will get.
    """
    build = getattr(model, "_symbolic_build", None)
    if build is None or keras.backend.backend() != "tensorflow":
        return
    spec = dataset.element_spec
    weights = spec[2] if len(spec) > 2 else None
    build(data_batch=(spec[0], spec[1], weights))
