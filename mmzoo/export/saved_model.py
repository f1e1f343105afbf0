"""SavedModel export of any registered model, for TF Serving.

`export_model` needs nothing model-specific: the model's task supplies the
raw-input signature and the `serve` function (preprocessing + model), and
this module writes `<export_dir>/<model>/<version>/` atomically.
"""

import dataclasses
import json
import os
import shutil
import tempfile

import keras

SERVING_KEY = "serving_default"
METADATA_FILE = "mmzoo.json"


def config_to_dict(config):
    """JSON-ready dict of a (possibly nested) config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def list_versions(model_dir):
    """Sorted integer versions present under `model_dir`."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(name) for name in os.listdir(model_dir) if name.isdigit())


def next_version(model_dir):
    """The next integer version under `model_dir` (1 for a new model)."""
    versions = list_versions(model_dir)
    return versions[-1] + 1 if versions else 1


def _build_archive(model, task, config, preprocessor):
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(preprocessor)
    signature = task.serving_signature(config)

    def endpoint(serve):
        # Autograph is off in ExportArchive endpoints: `serve` must use
        # graph-friendly control flow only.
        return lambda raw: serve(model, preprocessor, raw)

    archive.add_endpoint(
        SERVING_KEY, endpoint(task.serve), input_signature=[signature]
    )
    for name, serve in task.extra_signatures(config).items():
        archive.add_endpoint(name, endpoint(serve), input_signature=[signature])
    return archive


def export_model(
    model,
    task,
    config,
    preprocessor,
    export_dir="export",
    name=None,
    keep_versions=None,
    examples=None,
):
    """Exports `model` with its raw-input serving signature.

    The SavedModel is written to a temporary folder beside its destination
    and renamed to `<export_dir>/<name>/<next version>/`, so TF Serving
    never sees a half-written version and an existing version is never
    overwritten.

    Args:
        model: a trained `keras.Model`.
        task: the model's `mmzoo.tasks.base.Task`.
        config: the model config it was built from.
        preprocessor: the `tf.Module` of `task.make_preprocessor`.
        export_dir: str. Base folder. Defaults to `"export"`.
        name: str. Model name in the export tree. Defaults to `task.model`.
        keep_versions: int or None. If set, older versions beyond the newest
            `keep_versions` are removed after the export.
        examples: optional dict of raw input name to a NumPy array (a few
            real examples). Their inputs and the Keras outputs are recorded
            in `assets.extra/` for `mmzoo verify` to replay.

    Returns:
        The path of the new version directory.
    """
    name = name or task.model
    model_dir = os.path.join(export_dir, name)
    os.makedirs(model_dir, exist_ok=True)
    archive = _build_archive(model, task, config, preprocessor)
    tmp_dir = tempfile.mkdtemp(prefix=".tmp-", dir=model_dir)
    try:
        staged = os.path.join(tmp_dir, "saved_model")
        archive.write_out(staged, verbose=False)
        extra = os.path.join(staged, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        metadata = {
            "model": task.model,
            "config": config_to_dict(config),
            "signature": {
                key: {"dtype": spec.dtype.name, "shape": spec.shape.as_list()}
                for key, spec in task.serving_signature(config).items()
            },
            "keras_version": keras.__version__,
        }
        with open(os.path.join(extra, METADATA_FILE), "w") as f:
            json.dump(metadata, f, indent=2)
        if examples is not None:
            record_examples(staged, model, task, config, preprocessor, examples)
        while True:
            version_dir = os.path.join(model_dir, str(next_version(model_dir)))
            try:
                # rename() fails rather than replace a non-empty directory,
                # so two concurrent exports cannot clobber one version.
                os.rename(staged, version_dir)
                break
            except OSError:
                if not os.path.exists(version_dir):
                    raise
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    if keep_versions:
        for old in list_versions(model_dir)[:-keep_versions]:
            shutil.rmtree(os.path.join(model_dir, str(old)))
    write_models_config(export_dir)
    return version_dir


def record_examples(version_dir, model, task, config, preprocessor, examples):
    """Runs every signature's function eagerly on `examples` and records
    inputs and outputs for `mmzoo verify`."""
    import numpy as np
    import tensorflow as tf

    from mmzoo.export.verify import write_examples

    raw = {k: tf.constant(v) for k, v in examples.items()}
    functions = {SERVING_KEY: task.serve, **task.extra_signatures(config)}
    recorded = {}
    for key, serve in functions.items():
        outputs = serve(model, preprocessor, raw)
        recorded[key] = (
            {k: np.asarray(v) for k, v in examples.items()},
            {k: np.asarray(v) for k, v in outputs.items()},
        )
    write_examples(version_dir, recorded)


def write_models_config(export_dir):
    """Writes TF Serving's `models.config` listing every model folder under
    `export_dir` that holds at least one version."""
    entries = []
    for name in sorted(os.listdir(export_dir)):
        model_dir = os.path.join(export_dir, name)
        if os.path.isdir(model_dir) and list_versions(model_dir):
            entries.append(
                "  config {\n"
                f'    name: "{name}"\n'
                f'    base_path: "/models/{name}"\n'
                '    model_platform: "tensorflow"\n'
                "  }\n"
            )
    path = os.path.join(export_dir, "models.config")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("model_config_list {\n" + "".join(entries) + "}\n")
    os.replace(tmp, path)
    return path


def read_metadata(version_dir):
    """Reads `assets.extra/mmzoo.json` of an export."""
    with open(os.path.join(version_dir, "assets.extra", METADATA_FILE)) as f:
        return json.load(f)
