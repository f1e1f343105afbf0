"""A classifier over image + text built from locally saved keras-hub
presets trains, exports and answers raw bytes and text, as a user would
do with `vit_base_patch16_224_imagenet` and `bert_base_en_uncased`
(presets are saved here with random weights: nothing is downloaded)."""

import json
import os
import subprocess
import sys
import textwrap

import keras_hub
import numpy as np
import pytest

from mmzoo.encoders.presets import save_tiny_preset
from mmzoo.export.verify import verify
from mmzoo.training import train

NAME = "lstnet_diagnosis"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("presets")
    vit = save_tiny_preset("vit", str(tmp / "vit"), image_size=32)
    bert = save_tiny_preset("bert", str(tmp / "bert"))
    result = train(
        NAME,
        dataset="synthetic",
        variant="tiny",
        epochs=1,
        steps_per_epoch=3,
        overrides={
            "image_encoder": "vit",
            "image_preset": vit,
            "image_trainable": False,
            "text_encoder": "bert",
            "text_preset": bert,
            "fusion": "cross_attention",
        },
        logdir=str(tmp / "logs"),
        export_dir=str(tmp / "export"),
        verbose=0,
    )
    return vit, bert, result


def test_presets_set_the_inputs_and_the_weights(run):
    vit, bert, result = run
    config = result["prepared"].config
    specs = {spec.name: spec for spec in config.specs}
    assert specs["image"].size == 32  # the preset's image size
    assert specs["report"].preset == bert
    # The frozen image backbone still holds the preset's weights.
    preset = keras_hub.models.Backbone.from_preset(vit)
    model = result["keras_model"]
    encoder = model.get_layer("image_encoder")
    trained = {w.path.split("/", 1)[-1]: w for w in encoder.weights}
    compared = 0
    for weight in preset.weights:
        key = weight.path.split("/", 1)[-1]
        if key in trained:
            np.testing.assert_array_equal(trained[key], weight.numpy())
            compared += 1
    assert compared > 5
    # The report vocabulary is the preset tokenizer's.
    with open(
        os.path.join(result["prepared"].directory, "report_vocabulary.txt")
    ) as f:
        vocabulary = f.read().split()
    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(bert)
    assert vocabulary[:50] == tokenizer.get_vocabulary()[:50]


SERVE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (TF Serving links TF Text)
    serving = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    image = open(sys.argv[2], "rb").read()
    out = serving(image=tf.constant([image, image]),
                  report=tf.constant(["Fever and cough, smoker.", ""]))
    print(json.dumps({
        "keras_hub_loaded": "keras_hub" in sys.modules,
        "shape": list(out["probabilities"].shape),
        "finite": bool(np.all(np.isfinite(out["probabilities"].numpy()))),
    }))
    """
)


def test_export_answers_raw_bytes_and_text_in_a_tf_only_process(run):
    _, _, result = run
    report = verify(result["export"])
    assert report.ok, report.table()
    image = result["prepared"].examples["test"].columns["image"][0]
    proc = subprocess.run(
        [sys.executable, "-c", SERVE, result["export"], image],
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {
        "keras_hub_loaded": False,
        "shape": [2, 3],
        "finite": True,
    }
