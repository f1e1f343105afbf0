"""SavedModel export and verification for TF Serving (TensorFlow only)."""

from mmzoo.export.saved_model import (
    export_model,
    list_versions,
    next_version,
    read_metadata,
    write_models_config,
)

__all__ = [
    "export_model",
    "list_versions",
    "next_version",
    "read_metadata",
    "write_models_config",
]
