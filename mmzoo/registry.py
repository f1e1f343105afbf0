"""Model registry: `register_model`, `build`, `get_config`, `list_models`.

Modelled on timm's `_registry.py`: every architecture registers a builder,
its config dataclass, its named variants, the kind of problem it solves
(which picks the generic task that trains, evaluates and serves it), the
modality specs of its served inputs and the datasets it reads. This is the
only registry: the CLI, training, export, the main job and the contract
harness (`mmzoo.testing`) all read it, so a new model is one file.
"""

import dataclasses
from collections.abc import Callable

# Imports no TensorFlow: task modules load when a task is asked for.
from mmzoo.tasks import PROBLEM_TASKS

_MODELS = {}


PROBLEMS = tuple(PROBLEM_TASKS)
"""Problem kinds; each has one generic task in `mmzoo.tasks`."""

TFDS_PREFIX = "tfds:"
"""`--dataset` names starting with this name a TensorFlow Datasets builder
(`tfds:movielens/100k-ratings`); `mmzoo.data.tfds` maps it to the layout
the model's task reads."""

TFDS_DATASET = TFDS_PREFIX + "NAME"
"""Listed in a model's `datasets` when its task reads `tfds:NAME` (any
builder whose features match the task's mapping; see `mmzoo.data.tfds`)."""


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about one architecture.

    Attributes:
        name: str. Registry name.
        config_class: the frozen config dataclass.
        builder: `builder(config) -> keras.Model`.
        variants: dict of variant name to config overrides.
        problem: str. One of `PROBLEMS`.
        inputs: `inputs(config) -> tuple of specs` (`mmzoo.specs`): the
            raw inputs a client sends, in serving order.
        datasets: tuple of str. Dataset names `mmzoo train --dataset`
            accepts for this model (`synthetic` first: the main job's).
        description: str. One line for `mmzoo list` and README's table.
        test_overrides: dict. Config overrides the contract harness adds
            to the `tiny` variant.
        synthetic: str. Name of the synthetic data generator the task uses
            for `--dataset synthetic` ("" = the task's default).
    """

    name: str
    config_class: type
    builder: Callable
    variants: dict
    problem: str = "classification"
    inputs: Callable = None
    datasets: tuple = ("synthetic",)
    description: str = ""
    test_overrides: dict = dataclasses.field(default_factory=dict)
    synthetic: str = ""


def register_model(
    name,
    config_class,
    variants,
    problem="classification",
    inputs=None,
    datasets=("synthetic",),
    description="",
    test_overrides=None,
    synthetic="",
):
    """Decorator factory registering `builder(config) -> keras.Model`.

    Args:
        name: str. Registry name, e.g. `"deepfm"`.
        config_class: frozen dataclass type whose defaults are the reference
            settings.
        variants: dict of variant name to a dict of config overrides. Must
            hold at least `"tiny"` and `"base"`.
        problem: str. One of `PROBLEMS`. Defaults to `"classification"`.
        inputs: callable `config -> tuple of specs` of the served raw
            inputs (`mmzoo.specs`). Defaults to the config's
            `modality_specs()` method.
        datasets: tuple of str. Datasets the model reads.
        description: str. One line describing the architecture.
        test_overrides: dict or None. Config overrides of the contract
            harness.
        synthetic: str. The synthetic data generator of `--dataset
            synthetic`, when the task has several ("" = its default).

    Returns:
        A decorator that registers the builder and returns it unchanged.
    """
    if problem not in PROBLEMS:
        raise ValueError(
            f"{name}: unknown problem {problem!r}; valid: {', '.join(PROBLEMS)}"
        )

    missing = {"tiny", "base"} - set(variants)
    if missing:
        raise ValueError(
            f"{name}: variants must include 'tiny' and 'base'; "
            f"missing {sorted(missing)}"
        )
    fields = {f.name for f in dataclasses.fields(config_class)}
    for variant, overrides in variants.items():
        unknown = set(overrides) - fields
        if unknown:
            raise ValueError(
                f"{name}: variant '{variant}' sets unknown config keys "
                f"{sorted(unknown)}; valid: {', '.join(sorted(fields))}"
            )

    if inputs is None:
        if not hasattr(config_class, "modality_specs"):
            raise ValueError(
                f"{name}: pass inputs=, or give {config_class.__name__} a "
                "modality_specs() method"
            )

        def inputs(config):
            return tuple(config.modality_specs())

    def decorator(builder):
        if name in _MODELS:
            raise ValueError(f"model '{name}' is already registered")
        _MODELS[name] = ModelEntry(
            name,
            config_class,
            builder,
            dict(variants),
            problem=problem,
            inputs=inputs,
            datasets=tuple(datasets),
            description=description,
            test_overrides=dict(test_overrides or {}),
            synthetic=synthetic,
        )
        return builder

    return decorator


def _load_models():
    # Importing the package registers every architecture in mmzoo/models.
    import mmzoo.models  # noqa: F401


def get_entry(name):
    """Returns the `ModelEntry` of `name`, or raises `ValueError`."""
    _load_models()
    if name not in _MODELS:
        raise ValueError(
            f"unknown model '{name}'; valid: {', '.join(sorted(_MODELS))}"
        )
    return _MODELS[name]


def list_models():
    """Returns the sorted names of all registered models."""
    _load_models()
    return sorted(_MODELS)


def get_task(name):
    """Returns the generic task (`mmzoo.tasks`) that trains, evaluates and
    serves model `name`, chosen by its registered problem kind."""
    from mmzoo.tasks import task_for

    return task_for(get_entry(name))


def list_variants(name):
    """Returns the variant names of model `name`."""
    return sorted(get_entry(name).variants)


def get_config(name, variant="base", **overrides):
    """Returns the config of `name` at `variant` with `overrides` applied.

    Args:
        name: str. A registered model name.
        variant: str. A variant of that model. Defaults to `"base"`.
        **overrides: config fields to set; unknown keys raise `ValueError`.

    Returns:
        An instance of the model's frozen config dataclass.
    """
    entry = get_entry(name)
    if variant not in entry.variants:
        raise ValueError(
            f"{name}: unknown variant '{variant}'; valid: "
            f"{', '.join(sorted(entry.variants))}"
        )
    fields = {f.name for f in dataclasses.fields(entry.config_class)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(
            f"{name}: unknown override '{unknown[0]}'; valid: "
            f"{', '.join(sorted(fields))}"
        )
    values = {**entry.variants[variant], **overrides}
    return entry.config_class(**values)


def build(name, variant="base", config=None, **overrides):
    """Builds an uncompiled `keras.Model`.

    Args:
        name: str. A registered model name.
        variant: str. A variant of that model. Defaults to `"base"`.
        config: optional config instance; when given, `variant` and
            `overrides` must be left at their defaults.
        **overrides: config fields to set; unknown keys raise `ValueError`.

    Returns:
        An uncompiled Functional `keras.Model`. Its layers are built under
        the config's `dtype_policy` (`mmzoo.training_config`), set as
        Keras' global policy for the build only and restored afterwards;
        each layer keeps its policy, also through `.keras` save and load.

    Example:
    >>> model = mmzoo.build("deepfm", variant="tiny", embedding_dim=8)
    >>> mixed = mmzoo.build("deepfm", "tiny", dtype_policy="mixed_bfloat16")
    """
    entry = get_entry(name)
    if config is None:
        config = get_config(name, variant, **overrides)
    elif overrides:
        raise ValueError(f"{name}: pass either config or overrides, not both")
    policy = getattr(config, "dtype_policy", None)
    if policy is None:
        return entry.builder(config)
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        return entry.builder(config)
    finally:
        keras.config.set_dtype_policy(previous)


def _freeze(value):
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return {k: _freeze(v) for k, v in value.items()}
    return value


def config_from_dict(name, values):
    """Rebuilds model `name`'s config from a JSON dict (lists → tuples)."""
    entry = get_entry(name)
    return entry.config_class(**{k: _freeze(v) for k, v in values.items()})
