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


def check_batch_sizes(raw, signature):
    """Fails with InvalidArgument, naming every input and its batch size,
    when the batched inputs of one request have different batch sizes.

    Without it a mismatch is undefined: a model may broadcast one input
    against another, or fail deep inside with a message naming no input.
    TF Serving's row (`instances`) form cannot send such a request; its
    columnar (`inputs`) form and gRPC can. The error reads `assertion
    failed: [inputs of one request need one batch size; got] [device=2,
    price=3]`.

    Args:
        raw: dict of input name to tensor.
        signature: dict of input name to `tf.TensorSpec`.

    Returns:
        `raw`, its tensors made to depend on the check.
    """
    import tensorflow as tf

    batched = sorted(k for k, spec in signature.items() if spec.shape.rank)
    if len(batched) < 2:
        return raw
    sizes = tf.stack([tf.shape(raw[k], out_type=tf.int64)[0] for k in batched])
    described = tf.strings.reduce_join(
        tf.strings.join(
            [tf.constant(batched), tf.strings.as_string(sizes)], "="
        ),
        separator=", ",
    )
    check = tf.debugging.Assert(
        tf.reduce_all(tf.equal(sizes, sizes[0])),
        ["inputs of one request need one batch size; got", described],
    )
    with tf.control_dependencies([check]):
        return {k: tf.identity(v) for k, v in raw.items()}


def answer_empty_batches(serve, raw, signature):
    """Runs `serve(raw)`, or answers an empty batch without running it.

    Models are not obliged to handle a batch of zero examples (an arg-max
    over an empty beam fails deep inside with a message naming no input);
    a request with none is answered with empty outputs of the model's
    output dtypes and shapes, whatever the model.

    Args:
        serve: function `raw -> dict of tensors` (preprocessing + model).
        raw: dict of input name to tensor.
        signature: dict of input name to `tf.TensorSpec`.
    """
    import tensorflow as tf

    batched = sorted(k for k, spec in signature.items() if spec.shape.rank)
    if not batched:
        return serve(raw)
    specs = []

    def run():
        outputs = serve(raw)
        specs.append(
            tf.nest.map_structure(
                lambda t: tf.TensorSpec(t.shape, t.dtype), outputs
            )
        )
        return outputs

    def empty():
        # cond_v2 traces the true branch first, so `specs` is known here.
        if not specs:
            raise RuntimeError("the model branch was not traced first")

        def zeros(spec):
            shape = [0] + [d or 0 for d in spec.shape.as_list()[1:]]
            if spec.dtype == tf.string:
                return tf.fill(shape, "")
            return tf.zeros(shape, spec.dtype)

        return tf.nest.map_structure(zeros, specs[0])

    size = tf.shape(raw[batched[0]])[0]
    return tf.cond(size > 0, run, empty)


def float32_outputs(outputs):
    """Casts the 16-bit floating tensors of a dict of outputs to float32.

    Models built under a mixed dtype policy (`dtype_policy`) keep their
    outputs float32, but a signature may also serve an inner layer's
    tensor; every export serves full precision whatever the policy. Other
    dtypes (ids, strings, float32) pass through.
    """
    import tensorflow as tf

    def cast(tensor):
        if getattr(tensor, "dtype", None) in (tf.float16, tf.bfloat16):
            return tf.cast(tensor, tf.float32)
        return tensor

    return {key: cast(value) for key, value in outputs.items()}


def _model_input_signature(model):
    """`tf.TensorSpec`s of the Keras model's own (preprocessed) inputs."""
    import tensorflow as tf

    return {
        tensor.name: tf.TensorSpec(
            tensor.shape, tf.as_dtype(tensor.dtype), name=tensor.name
        )
        for tensor in model.inputs
    }


def _build_archive(model, task, config, preprocessor, tpu_function_alias=None):
    """The `ExportArchive` of the task's endpoints, and a dict of signature
    name to its traced `tf.function` (what the export serves)."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(preprocessor)

    def endpoint_function(endpoint, signature):
        # Autograph is off in ExportArchive endpoints: `serve` must use
        # graph-friendly control flow only. Every endpoint checks that the
        # inputs share one batch size and answers an empty batch itself.
        def function(raw):
            raw = check_batch_sizes(raw, signature)
            return answer_empty_batches(
                lambda r: float32_outputs(
                    endpoint.serve(model, preprocessor, r)
                ),
                raw,
                signature,
            )

        return function

    functions = {}
    for name, endpoint in task.endpoints(config, preprocessor).items():
        signature = task.endpoint_signature(config, endpoint)
        functions[name] = archive.add_endpoint(
            name,
            endpoint_function(endpoint, signature),
            input_signature=[signature],
        )
    if tpu_function_alias:
        # The TPU inference converter rewrites the function named by this
        # alias (the model's forward pass on preprocessed tensors) for the
        # TPU; string preprocessing stays on the host.
        archive.add_endpoint(
            tpu_function_alias,
            lambda inputs: model(inputs, training=False),
            input_signature=[_model_input_signature(model)],
        )
    return archive, functions


def signature_inputs(task, config, preprocessor=None):
    """Dict of signature name to the raw input names it takes."""
    return {
        name: tuple(task.endpoint_signature(config, endpoint))
        for name, endpoint in task.endpoints(config, preprocessor).items()
    }


def export_model(
    model,
    task,
    config,
    preprocessor,
    export_dir="export",
    name=None,
    keep_versions=None,
    examples=None,
    tpu_function_alias=None,
    gallery=None,
    top_k=None,
    warmup=True,
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
            in `assets.extra/` for `mmzoo verify` to replay, and TF
            Serving warmup requests (batch 1 and all examples, per
            signature) in `assets.extra/tf_serving_warmup_requests`.
        warmup: bool. Write the warmup requests (with `examples`). False
            leaves them out on purpose (`--no-warmup`), which the export's
            metadata records: `mmzoo verify` then only warns. Defaults to
            True.
        tpu_function_alias: str or None. If set (e.g. `"tpu_func"`), the
            model's forward pass on preprocessed inputs is also exported as
            a signature of that name and registered under that function
            alias, which the TPU inference converter looks for.

    Returns:
        The path of the new version directory.
    """
    name = name or task.model
    if gallery is not None:
        attach = getattr(task, "attach_gallery", None)
        if attach is None:
            raise ValueError(
                f"{task.model}: a gallery is for retrieval models; this "
                "model has no search signatures"
            )
        attach(model, preprocessor, gallery, top_k=top_k)
    model_dir = os.path.join(export_dir, name)
    os.makedirs(model_dir, exist_ok=True)
    archive, functions = _build_archive(
        model, task, config, preprocessor, tpu_function_alias
    )
    tmp_dir = tempfile.mkdtemp(prefix=".tmp-", dir=model_dir)
    try:
        staged = os.path.join(tmp_dir, "saved_model")
        options = None
        if tpu_function_alias:
            import tensorflow as tf

            options = tf.saved_model.SaveOptions(
                function_aliases={
                    tpu_function_alias: getattr(
                        archive._tf_trackable, tpu_function_alias
                    )
                }
            )
        archive.write_out(staged, options=options, verbose=False)
        extra = os.path.join(staged, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        metadata = {
            "model": task.model,
            "config": config_to_dict(config),
            "signature": {
                key: {"dtype": spec.dtype.name, "shape": spec.shape.as_list()}
                for key, spec in task.serving_signature(config).items()
            },
            "signatures": signature_inputs(task, config, preprocessor),
            "keras_version": keras.__version__,
            # Whether TF Serving warmup records were written; `mmzoo
            # verify` fails an export that lacks them unless this is false.
            "warmup": bool(examples is not None and warmup),
        }
        with open(os.path.join(extra, METADATA_FILE), "w") as f:
            json.dump(metadata, f, indent=2)
        if examples is not None:
            # Under a mixed dtype policy, graph and eager runs round
            # differently (a fused kernel rounds once), so the outputs to
            # replay are the exported functions' own.
            mixed = getattr(config, "dtype_policy", "float32") != "float32"
            record_examples(
                staged,
                model,
                task,
                config,
                preprocessor,
                examples,
                functions=functions if mixed else None,
            )
        if examples is not None and warmup:
            from mmzoo.export.warmup import write_warmup_requests

            write_warmup_requests(
                staged,
                name,
                endpoint_examples(task, config, preprocessor, examples),
                signature_names=signature_inputs(task, config, preprocessor),
            )
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


def endpoint_examples(task, config, preprocessor, examples):
    """`examples` (raw serving values) plus the inputs that only some
    signatures take, made from them (`Endpoint.examples`: e.g. the
    `waveform` samples decoded from the WAV bytes)."""
    merged = dict(examples)
    for endpoint in task.endpoints(config, preprocessor).values():
        signature = task.endpoint_signature(config, endpoint)
        merged.update(endpoint.inputs_from(examples, signature))
    return merged


def record_examples(
    version_dir, model, task, config, preprocessor, examples, functions=None
):
    """Runs every signature's function eagerly on `examples` (the inputs
    it takes) and records inputs and outputs for `mmzoo verify`.

    `functions` (signature name to the exported `tf.function`, as
    `_build_archive` returns them) records those functions' outputs
    instead: for a model built under a mixed dtype policy, whose eager
    outputs differ from its graph's by 16-bit rounding (about 1e-3), and
    whose arg-max outputs (labels, captions) may flip on near ties.
    """
    import numpy as np
    import tensorflow as tf

    from mmzoo.export.verify import write_examples

    recorded = {}
    endpoints = task.endpoints(config, preprocessor)
    for key, endpoint in endpoints.items():
        signature = task.endpoint_signature(config, endpoint)
        taken = {
            k: np.asarray(v)
            for k, v in endpoint.inputs_from(examples, signature).items()
        }
        raw = {k: tf.constant(v) for k, v in taken.items()}
        if functions is not None:
            outputs = functions[key](raw)
        else:
            outputs = float32_outputs(endpoint.serve(model, preprocessor, raw))
        recorded[key] = (taken, {k: np.asarray(v) for k, v in outputs.items()})
    write_examples(version_dir, recorded)


def write_models_config(export_dir):
    """Writes TF Serving's `models.config` listing every model folder under
    `export_dir` that holds at least one version, and the batching
    parameters file beside it (`mmzoo.export.batching`)."""
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
    # The server's --batching_parameters_file, beside --model_config_file.
    from mmzoo.export.batching import write_batching_parameters

    write_batching_parameters(export_dir)
    return path


def read_metadata(version_dir):
    """Reads `assets.extra/mmzoo.json` of an export."""
    with open(os.path.join(version_dir, "assets.extra", METADATA_FILE)) as f:
        return json.load(f)
