"""Reference architectures; importing this package registers them all.

Every module in this folder is imported, so a new model is one file here:
its `@register_model` runs on import and nothing else needs editing.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
