"""Generic tasks: one per problem kind, not one per model.

A task joins any registered model of its problem kind to TensorFlow data
pipelines, losses, metrics and its serving signatures. Which task a model
gets is read from its registry entry (`register_model(..., problem=...)`),
so this package holds no list of models.
"""

import importlib

# problem kind → module:class. A module is imported only when it is used.
# The one list of problem kinds (`mmzoo.registry.PROBLEMS` reads it).
PROBLEM_TASKS = {
    "classification": "mmzoo.tasks.classification:ClassificationTask",
    "ctr": "mmzoo.tasks.ctr:CTRTask",
    "captioning": "mmzoo.tasks.captioning:CaptioningTask",
    "retrieval": "mmzoo.tasks.retrieval:RetrievalTask",
    "vqa": "mmzoo.tasks.vqa:VQATask",
}


def task_for(entry):
    """Returns the task of a registry `ModelEntry`, bound to that model."""
    module, cls = PROBLEM_TASKS[entry.problem].split(":")
    return getattr(importlib.import_module(module), cls)(entry)


def get_task(model):
    """Returns the task of registered model `model` (a name)."""
    from mmzoo import registry

    return registry.get_task(model)
