"""TensorBoard records beyond Keras's scalars (`mmzoo.tasks.tensorboard`):
sample predictions, confusion matrices and embeddings. Trained runs are
checked in the task tests (classification, retrieval, captioning)."""

import numpy as np
import pytest
import tensorflow as tf

from mmzoo.tasks import tensorboard
from tests.tensorboard_events import summaries


def _png(colour):
    pixels = np.zeros((8, 8, 3), np.uint8) + np.uint8(colour)
    return tf.io.encode_png(pixels).numpy()


def test_sample_predictions_log_table_and_pictures(tmp_path):
    raw = {
        "image": np.array([_png(10), _png(200), b"not an image"], object),
        "report": np.array(["Fever | cough", "", "x" * 500], object),
    }
    calls = []

    def serve(inputs):
        calls.append(inputs)
        batch = int(tf.shape(inputs["image"])[0])
        return {
            "label": tf.constant(["pneumonia", "", "edema|effusion"]),
            "probabilities": tf.fill([batch, 3], 0.25),
        }

    samples = tensorboard.SamplePredictions(
        str(tmp_path), serve, raw, {"image": "image", "report": "text"}
    )
    served = samples.log(step=3)
    samples.close()
    assert list(served["label"]) == [b"pneumonia", b"", b"edema|effusion"]
    records = summaries(str(tmp_path / tensorboard.SAMPLES_DIR))
    ((step, table),) = records[("samples", "text")]
    table = table.item().decode()
    assert step == 3
    lines = table.splitlines()
    assert lines[0] == "| # | report | label | probabilities |"
    # One row per example; a `|` inside a value is escaped, long text cut.
    assert len(lines) == 2 + 3
    assert "Fever \\| cough" in lines[2] and "edema\\|effusion" in lines[4]
    assert len(lines[4]) < 200
    ((step, image),) = records[("samples", "images")]
    # An images summary: width, height, then the PNG (an undecodable
    # picture leaves its panel empty instead of failing the epoch).
    assert step == 3 and tf.io.decode_png(image[2]).shape[-1] == 3


def test_confusion_matrix_image_and_file(tmp_path):
    single = tensorboard.Confusion(
        np.array([[3, 1], [0, 4]]), ("cat", "dog"), False, "t"
    )
    path = tensorboard.log_confusion_matrix(str(tmp_path), single)
    assert tf.io.decode_png(open(path, "rb").read()).shape[0] > 100
    multi = tensorboard.Confusion(
        np.array([[[5, 1], [2, 2]]] * 7), tuple("abcdefg"), True
    )
    png = tensorboard.confusion_figure(multi)
    assert tf.io.decode_png(png).shape[0] > 100
    records = summaries(str(tmp_path / tensorboard.CONFUSION_DIR))
    assert [s for s, _ in records[("confusion_matrix", "images")]] == [0]


def test_embeddings_for_the_projector(tmp_path):
    vectors = np.eye(3, 4, dtype=np.float32)
    folder = tensorboard.log_embeddings(
        str(tmp_path),
        vectors,
        {
            "modality": ["image", "text", "text"],
            "text": ["a.png", "a\tcat", ""],
        },
    )
    assert open(f"{folder}/metadata.tsv").read().splitlines() == [
        "modality\ttext",
        "image\ta.png",
        "text\ta cat",  # a tab inside a value would add a column
        "text\t-",
    ]
    config = open(f"{folder}/projector_config.pbtxt").read()
    assert "embeddings/.ATTRIBUTES/VARIABLE_VALUE" in config
    reader = tf.train.load_checkpoint(folder)
    np.testing.assert_array_equal(
        reader.get_tensor("embeddings/.ATTRIBUTES/VARIABLE_VALUE"), vectors
    )
    with pytest.raises(ValueError, match="'text' has 1 values for 3"):
        tensorboard.log_embeddings(str(tmp_path), vectors, {"text": ["x"]})
