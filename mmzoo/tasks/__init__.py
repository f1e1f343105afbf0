"""Per-model glue between data pipelines, training and serving."""

import importlib

# model name → module:class. A module is imported only when its task is used.
_TASKS = {
    "deepfm": "mmzoo.tasks.deepfm:DeepFMTask",
    "vit_lstm_captioner": "mmzoo.tasks.captioning:CaptioningTask",
    "lstnet_diagnosis": "mmzoo.tasks.diagnosis:DiagnosisTask",
}


def get_task(model):
    """Returns the `Task` of registered model `model`."""
    if model not in _TASKS:
        raise ValueError(
            f"no task for model '{model}'; valid: {', '.join(sorted(_TASKS))}"
        )
    module, cls = _TASKS[model].split(":")
    return getattr(importlib.import_module(module), cls)()
