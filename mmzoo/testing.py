"""The contract harness every registered model meets (STYLE.md §8).

Shipped with the package so that users can run it on models they register
themselves:

```python
from mmzoo.testing import check_model
report = check_model("my_model", "/tmp/contract")   # raises on a breach
```

It needs no dataset: the model's input specs (`mmzoo.specs`) give random
raw client values (PNG bytes, sentences, categorical strings), the model's
task fits its preprocessing on them (the `dummy` dataset), and then:

1. the tiny variant builds with named inputs, and a forward pass on a
   preprocessed batch gives finite outputs;
2. one `fit` step on the task's real `tf.data` pipeline gives a finite loss;
3. a `.keras` save and `safe_mode=True` reload gives equal outputs, every
   output compared;
4. a SavedModel export answers raw values at batch 1 and 7 with the same
   outputs as the Python-side serving function, for every signature
   (export versioning is model-independent and tested with the CLI);
5. `mmzoo verify` loads the export in a process that imports only
   TensorFlow (TF Serving's view) and replays the recorded examples.
"""

import dataclasses
import os

import keras
import numpy as np

from mmzoo import registry
from mmzoo.specs import dummy_raw_inputs
from mmzoo.tasks.base import DUMMY_DATASET
from mmzoo.training_config import build_for_data

SERVING_BATCH_SIZES = (1, 7)


@dataclasses.dataclass
class ContractReport:
    """What `check_model` checked.

    Attributes:
        model: str. Model name.
        loss: float. Loss of the one fit step.
        outputs: tuple of str. Output names compared after reload.
        signatures: tuple of str. Signatures compared after export.
        export: str. The first export's version folder.
        examples: dict of NumPy arrays. The raw request the export was
            checked with (its rows are also the export's warmup
            examples); every signature gave the Keras model's outputs on
            it.
        expected: dict of NumPy arrays. The Keras model's
            `serving_default` outputs on `examples` (what the export
            gave).
    """

    model: str
    loss: float
    outputs: tuple
    signatures: tuple
    export: str
    examples: dict = dataclasses.field(default_factory=dict, repr=False)
    expected: dict = dataclasses.field(default_factory=dict, repr=False)


def prepare_model(
    name,
    directory,
    dataset=DUMMY_DATASET,
    fit_batch_size=None,
    seed=0,
    variant="tiny",
    **overrides,
):
    """Prepares, builds and compiles model `name`; optionally fits one step.

    Args:
        name: str. A registered model.
        directory: str. Preprocessing assets go to `directory/assets`.
        dataset: str. A dataset of the model's task. Defaults to `dummy`
            (spec-derived random values).
        fit_batch_size: int or None. When set, one `fit` step on one
            training batch of the task's pipeline.
        seed: int. Seeds weights and data.
        variant: str. Defaults to `tiny`.
        **overrides: config overrides on top of the registry's
            `test_overrides`.

    Returns:
        `(task, prepared, model, history)`; `history` is None without
        `fit_batch_size`.
    """
    import tensorflow as tf

    task = registry.get_task(name)
    keras.utils.set_random_seed(seed)
    config = registry.get_config(
        name, variant, **{**task.contract_overrides, **overrides}
    )
    prepared = task.prepare(
        config, dataset, None, os.path.join(directory, "assets"), seed
    )
    model = registry.build(name, config=prepared.config)
    task.compile(model, prepared.config)
    history = None
    if fit_batch_size:
        batch = next(
            iter(
                task.pipeline(prepared, "train", fit_batch_size, training=True)
            )
        )
        dataset = tf.data.Dataset.from_tensors(batch)
        build_for_data(model, dataset)
        history = model.fit(dataset, epochs=1, verbose=0)
    return task, prepared, model, history


def serve_eagerly(
    task, config, model, preprocessor, raw, signature="serving_default"
):
    """Runs a signature's Python function on NumPy raw values; returns a
    dict of NumPy outputs."""
    import tensorflow as tf

    endpoint = task.endpoints(config, preprocessor)[signature]
    inputs = task.endpoint_signature(config, endpoint)
    tensors = {k: tf.constant(raw[k]) for k in inputs}
    outputs = endpoint.serve(model, preprocessor, tensors)
    return {k: np.asarray(v) for k, v in outputs.items()}


def assert_outputs_equal(got, want, atol=1e-5, where=""):
    """Asserts two dicts of arrays hold the same keys, shapes and values
    (floats within `atol`)."""
    if set(got) != set(want):
        raise AssertionError(
            f"{where}: outputs {sorted(got)} != expected {sorted(want)}"
        )
    for key in want:
        a, b = np.asarray(got[key]), np.asarray(want[key])
        if a.shape != b.shape:
            raise AssertionError(
                f"{where}: output '{key}' has shape {a.shape}, expected "
                f"{b.shape}"
            )
        if b.dtype.kind in "fc":
            np.testing.assert_allclose(
                a, b, atol=atol, rtol=0, err_msg=f"{where}: {key}"
            )
        else:
            np.testing.assert_array_equal(a, b, err_msg=f"{where}: {key}")


def _as_dict(outputs, model):
    if isinstance(outputs, dict):
        return {k: np.asarray(v) for k, v in outputs.items()}
    if isinstance(outputs, list | tuple):
        return {
            name: np.asarray(v) for name, v in zip(model.output_names, outputs)
        }
    return {model.output_names[0]: np.asarray(outputs)}


def check_model(
    name, directory, variant="tiny", seed=0, verify_export=True, **overrides
):
    """Runs the whole contract on model `name`; raises `AssertionError` on
    the first breach.

    Args:
        name: str. A registered model.
        directory: str. Scratch folder (assets, `.keras` file, exports).
        variant: str. Defaults to `tiny`.
        seed: int. Seeds weights and dummy values.
        verify_export: bool. Check the export in a process that imports
            only TensorFlow (`mmzoo.export.verify`). False leaves it to the
            caller, e.g. to check several exports in one such process with
            `verify_exports`.
        **overrides: config overrides.

    Returns:
        A `ContractReport`.
    """
    import tensorflow as tf

    from mmzoo.export import export_model
    from mmzoo.export.verify import verify

    task, prepared, model, history = prepare_model(
        name,
        directory,
        fit_batch_size=4,
        seed=seed,
        variant=variant,
        **overrides,
    )
    config = prepared.config
    loss = float(history.history["loss"][0])
    if not np.isfinite(loss):
        raise AssertionError(f"{name}: the fit step's loss is {loss}")
    unnamed = [i.name for i in model.inputs if i.name.startswith("input")]
    if unnamed:
        raise AssertionError(f"{name}: unnamed model inputs {unnamed}")
    signature = task.serving_signature(config)
    specs = task.input_specs(config)
    if set(signature) != {s.name for s in specs}:
        raise AssertionError(
            f"{name}: serving inputs {sorted(signature)} differ from the "
            f"input specs {[s.name for s in specs]}"
        )

    # Forward pass and .keras round trip on a preprocessed batch.
    inputs, _ = next(iter(task.pipeline(prepared, "test", 3)))
    before = _as_dict(model(inputs, training=False), model)
    for key, value in before.items():
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise AssertionError(f"{name}: output '{key}' is not finite")
    path = os.path.join(directory, f"{name}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert_outputs_equal(
        _as_dict(reloaded(inputs, training=False), reloaded),
        before,
        where=f"{name} after .keras reload",
    )

    # SavedModel: raw values in, every signature, two batch sizes.
    raw = dummy_raw_inputs(specs, max(SERVING_BATCH_SIZES), seed)
    export_dir = os.path.join(directory, "export")
    version = export_model(
        model,
        task,
        config,
        prepared.preprocessor,
        export_dir,
        examples=raw,
    )
    if not version.endswith(os.path.join(name, "1")):
        raise AssertionError(f"{name}: first export went to {version}")
    loaded = tf.saved_model.load(version)
    endpoints = task.endpoints(config, prepared.preprocessor)
    signatures = tuple(endpoints)
    expected = {}
    for key, endpoint in endpoints.items():
        serving = loaded.signatures[key]
        inputs = endpoint.inputs_from(
            raw, task.endpoint_signature(config, endpoint)
        )
        for size in SERVING_BATCH_SIZES:
            batch = {k: v[:size] for k, v in inputs.items()}
            served = serving(**{k: tf.constant(v) for k, v in batch.items()})
            want = serve_eagerly(
                task, config, model, prepared.preprocessor, batch, key
            )
            assert_outputs_equal(
                {k: v.numpy() for k, v in served.items()},
                want,
                where=f"{name} signature {key} at batch {size}",
            )
            if key == "serving_default" and size == max(SERVING_BATCH_SIZES):
                expected = want
    if verify_export:
        report = verify(version)
        if not report.ok:
            raise AssertionError(f"{name}: verify failed\n{report.table()}")
    return ContractReport(
        name,
        loss,
        tuple(sorted(before)),
        signatures,
        version,
        examples=raw,
        expected=expected,
    )
