"""Export options shared by every model (DeepFM tiny stands in)."""

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from mmzoo.export import export_model
from mmzoo.export.verify import verify
from tests.tiny import tiny_model


def test_tpu_function_alias_names_the_model_forward_pass(tmp_path):
    task, prepared, model, _ = tiny_model("deepfm", str(tmp_path))
    raw = task.raw_examples(prepared, "test", 4)
    path = export_model(
        model,
        task,
        prepared.config,
        prepared.preprocessor,
        str(tmp_path / "export"),
        examples=raw,
        tpu_function_alias="tpu_func",
    )
    proto = saved_model_pb2.SavedModel()
    with open(f"{path}/saved_model.pb", "rb") as f:
        proto.ParseFromString(f.read())
    aliases = proto.meta_graphs[0].meta_info_def.function_aliases
    assert "tpu_func" in set(aliases.values())
    loaded = tf.saved_model.load(path)
    inputs = prepared.preprocessor({k: tf.constant(v) for k, v in raw.items()})
    forward = loaded.signatures["tpu_func"](**inputs)
    served = loaded.signatures["serving_default"](
        **{k: tf.constant(v) for k, v in raw.items()}
    )
    tf.debugging.assert_near(
        list(forward.values())[0], served["probability"], atol=1e-6
    )
    assert verify(path).ok
