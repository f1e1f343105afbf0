"""mmzoo: multimodal Keras models you build in one call, train with
`model.fit`, and serve with TF Serving."""

from mmzoo.registry import build, get_config, list_models, list_variants

__version__ = "0.1.0"

__all__ = ["build", "get_config", "list_models", "list_variants", "export"]


def __getattr__(name):
    # mmzoo.export imports TensorFlow; load it only when it is used so that
    # `import mmzoo` stays backend-agnostic.
    if name == "export":
        import importlib

        return importlib.import_module("mmzoo.export")
    raise AttributeError(f"module 'mmzoo' has no attribute {name!r}")
