"""Model registry: `register_model`, `build`, `get_config`, `list_models`.

Modelled on timm's `_registry.py`: every architecture registers a builder,
its config dataclass and its named variants, and one registry-driven
contract test covers every registered model.
"""

import dataclasses
from collections.abc import Callable

_MODELS = {}


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about one architecture."""

    name: str
    config_class: type
    builder: Callable
    variants: dict


def register_model(name, config_class, variants):
    """Class decorator factory registering `builder(config) -> keras.Model`.

    Args:
        name: str. Registry name, e.g. `"deepfm"`.
        config_class: frozen dataclass type whose defaults are the reference
            settings.
        variants: dict of variant name to a dict of config overrides. Must
            hold at least `"tiny"` and `"base"`.

    Returns:
        A decorator that registers the builder and returns it unchanged.
    """
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

    def decorator(builder):
        if name in _MODELS:
            raise ValueError(f"model '{name}' is already registered")
        _MODELS[name] = ModelEntry(name, config_class, builder, dict(variants))
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
        An uncompiled Functional `keras.Model`.

    Example:
    >>> model = mmzoo.build("deepfm", variant="tiny", embedding_dim=8)
    """
    entry = get_entry(name)
    if config is None:
        config = get_config(name, variant, **overrides)
    elif overrides:
        raise ValueError(f"{name}: pass either config or overrides, not both")
    return entry.builder(config)


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
