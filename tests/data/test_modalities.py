"""Tests for the spec-driven preprocessor (`mmzoo.data.modalities`)."""

import json
import os
import pickle
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmzoo.data import modalities
from mmzoo.data.modalities import (
    Preprocessor,
    fit_preprocessor,
    fit_spec,
    load_preprocessor,
)
from mmzoo.specs import FeatureSpec, ImageSpec, TextSpec, dummy_raw_inputs

TRAIN = [
    "Fever and cough.",
    "fever, mild cough",
    "Fever",
    "left upper lobe opacity",
    "",
    "   ",
]
CLS, SEP, UNK = 2, 3, 1
BERT_VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BERT_VOCABULARY += ["fever", "cough", "##s", "mild"]


def _ids(processor, texts):
    return processor(tf.constant(texts, tf.string)).numpy()


def _lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Image + word + wordpiece + preset inputs fitted once."""
    directory = str(tmp_path_factory.mktemp("prep"))
    preset = _save_bert_tokenizer(
        tmp_path_factory.mktemp("preset"), BERT_VOCABULARY
    )
    specs = (
        ImageSpec("scan", size=8),
        TextSpec("report", max_length=16, min_count=1),
        TextSpec("note", max_length=40, tokenizer="wordpiece"),
        TextSpec("title", preset=preset),
    )
    raw = dummy_raw_inputs(specs, 3)
    for name in ("report", "note", "title"):
        raw[name] = TRAIN
    specs, preprocessor = fit_preprocessor(specs, raw, directory)
    return directory, {s.name: s for s in specs}, preprocessor


def test_word_ids(fitted):
    directory, specs, preprocessor = fitted
    spec = specs["report"]
    vocabulary = _lines(os.path.join(directory, "report_vocabulary.txt"))
    # [PAD], [OOV], then by descending count (ties alphabetical).
    assert vocabulary[:4] == ["[PAD]", "[OOV]", "fever", "cough"]
    assert spec.vocabulary_size == len(vocabulary) == 10
    assert spec.max_length == 4  # the longest training text
    word = {token: i for i, token in enumerate(vocabulary)}
    ids = _ids(
        preprocessor.processors["report"],
        ["FEVER and cough!", "", "unseen fever", "a b c d e f"],
    )
    np.testing.assert_array_equal(
        ids,
        [
            [word["fever"], word["and"], word["cough"], 0],
            [0, 0, 0, 0],
            [UNK, word["fever"], 0, 0],
            [UNK, UNK, UNK, UNK],
        ],
    )


def test_word_min_count_and_cap(tmp_path):
    spec = fit_spec(
        TextSpec("t", vocabulary_size=3, min_count=2), TRAIN, str(tmp_path)
    )
    # Only "fever" (3) and "cough" (2) reach min_count; the cap keeps one.
    assert _lines(tmp_path / "t_vocabulary.txt") == ["[PAD]", "[OOV]", "fever"]
    assert spec.vocabulary_size == 3


def test_wordpiece_ids(fitted):
    directory, specs, preprocessor = fitted
    spec = specs["note"]
    vocabulary = _lines(os.path.join(directory, "note_vocabulary.txt"))
    assert vocabulary[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert spec.vocabulary_size == len(vocabulary)
    processor = preprocessor.processors["note"]
    ids = _ids(processor, ["Fever", "", "  \t ", "qqq fever", "fever " * 30])
    assert ids.shape == (5, spec.max_length)
    pieces = [vocabulary[i] for i in ids[0] if i > SEP]
    assert "".join(p.removeprefix("##") for p in pieces) == "fever"
    n = len(pieces)
    assert ids[0, 0] == CLS and ids[0, n + 1] == SEP
    assert not ids[0, n + 2 :].any()  # padding
    assert not ids[1].any() and not ids[2].any()  # missing texts
    assert list(ids[3, :2]) == [CLS, UNK]  # "q" is not in the vocabulary
    assert ids[4, 0] == CLS and ids[4, -1] == SEP  # cut, [SEP] kept last
    assert (ids[4] > 0).all()


def test_wordpiece_max_length_is_longest_plus_markers(tmp_path):
    spec = fit_spec(
        TextSpec("t", tokenizer="wordpiece"), ["ab ab", "ab"], str(tmp_path)
    )
    processor = modalities.TextProcessor(spec, str(tmp_path))
    longest = processor.pieces(tf.constant(["ab ab"])).row_lengths()[0]
    assert spec.max_length == int(longest) + 2


@pytest.mark.parametrize("name", ["report", "note"])
def test_invalid_utf8_and_long_text(fitted, name):
    _, specs, preprocessor = fitted
    processor = preprocessor.processors[name]
    ids = _ids(processor, [b"\xff\xfe fever \xc3", b"fever", "fever " * 20000])
    assert len("fever " * 20000) > 100_000
    np.testing.assert_array_equal(ids[0], ids[1])
    assert ids[2].shape == (specs[name].max_length,)
    assert (ids[2] > 0).all()


def _save_bert_tokenizer(directory, vocabulary):
    import keras_hub

    keras_hub.models.BertTokenizer(vocabulary=vocabulary).save_to_preset(
        str(directory)
    )
    return str(directory)


def test_preset_tokenizer(tmp_path):
    vocabulary = BERT_VOCABULARY
    preset = _save_bert_tokenizer(tmp_path / "preset", vocabulary)
    directory = str(tmp_path / "prep")
    spec = fit_spec(
        TextSpec("report", preset=preset), ["fever coughs", "mild"], directory
    )
    assert spec.vocabulary_size == len(vocabulary)
    assert spec.max_length == 5  # fever cough ##s, [CLS], [SEP]
    assert _lines(os.path.join(directory, "report_vocabulary.txt")) == (
        vocabulary
    )
    processor = modalities.TextProcessor(spec, directory)
    ids = _ids(processor, ["fever coughs", "mild zzz", ""])
    np.testing.assert_array_equal(
        ids, [[2, 5, 6, 7, 3], [2, 8, 1, 3, 0], [0, 0, 0, 0, 0]]
    )
    # The fitted folder holds a copy: the preset is no longer needed.
    os.rename(preset, preset + "_moved")
    again = modalities.TextProcessor(spec, directory)
    np.testing.assert_array_equal(_ids(again, ["fever coughs"]), ids[:1])


def test_preset_padding_id_must_be_zero(tmp_path):
    vocabulary = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]", "fever"]
    preset = _save_bert_tokenizer(tmp_path / "preset", vocabulary)
    with pytest.raises(ValueError, match="padding id 1") as error:
        fit_spec(TextSpec("t", preset=preset), ["fever"], str(tmp_path))
    assert preset in str(error.value)


def test_load_preprocessor_and_tf_data(fitted):
    directory, specs, preprocessor = fitted
    with open(os.path.join(directory, "preprocessing.json")) as f:
        saved = json.load(f)["specs"]
    assert [s["kind"] for s in saved] == ["image", "text", "text", "text"]
    loaded = load_preprocessor(directory)
    assert loaded.specs == tuple(specs.values())
    raw = dummy_raw_inputs(loaded.specs, 4, seed=1)
    expected = preprocessor(raw)
    for name, value in loaded(raw).items():
        np.testing.assert_array_equal(value, expected[name])
    # The same module inside a tf.data graph.
    dataset = tf.data.Dataset.from_tensor_slices(
        {k: tf.constant(v) for k, v in raw.items()}
    )
    batch = next(iter(dataset.batch(4).map(loaded)))
    for name, value in batch.items():
        np.testing.assert_array_equal(value, expected[name])
    signature = loaded.serving_signature()
    assert signature["scan"] == tf.TensorSpec([None], tf.string, name="scan")
    assert expected["scan"].shape == (4, 8, 8, 3)
    assert expected["scan"].dtype == tf.float32


_SERVE = textwrap.dedent(
    """
    import pickle, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (TF Serving links TF Text ops)

    path, inputs, outputs = sys.argv[1:]
    with open(inputs, "rb") as f:
        raw = pickle.load(f)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    result = serve(**{k: tf.constant(v, tf.string) for k, v in raw.items()})
    assert "keras_hub" not in sys.modules
    np.savez(outputs, **{k: v.numpy() for k, v in result.items()})
    """
)


def test_export_reload_in_fresh_process(fitted, tmp_path):
    directory, _, preprocessor = fitted
    module = tf.Module()
    module.preprocessor = preprocessor
    module.serve = tf.function(
        lambda raw: module.preprocessor(raw),
        input_signature=[preprocessor.serving_signature()],
    )
    path = str(tmp_path / "saved")
    tf.saved_model.save(
        module,
        path,
        signatures={"serving_default": module.serve.get_concrete_function()},
    )
    assets = os.listdir(os.path.join(path, "assets"))
    vocabularies = {f"{n}_vocabulary.txt" for n in ("report", "note", "title")}
    assert vocabularies <= set(assets)
    # keras ExportArchive (mmzoo.export) keeps the vocabulary files too.
    archive = keras.export.ExportArchive()
    archive.track(preprocessor)
    archive.add_endpoint(
        "serve",
        preprocessor,
        input_signature=[preprocessor.serving_signature()],
    )
    archive.write_out(str(tmp_path / "archive"), verbose=False)
    assert vocabularies <= set(os.listdir(tmp_path / "archive" / "assets"))
    raw = dummy_raw_inputs(preprocessor.specs, 3, seed=2)
    raw["report"] = np.array(["Fever and qqq", b"\xff cough", ""], object)
    raw["note"] = np.array(["Mild fever.", "qqq", "   "], object)
    raw["title"] = np.array(["coughs", "", "mild fever x"], object)
    expected = preprocessor(raw)
    with open(tmp_path / "raw.pkl", "wb") as f:
        pickle.dump({k: list(v) for k, v in raw.items()}, f)
    script = tmp_path / "serve.py"
    script.write_text(_SERVE)
    out = str(tmp_path / "out.npz")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run(
        [sys.executable, str(script), path, str(tmp_path / "raw.pkl"), out],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    served = np.load(out)
    assert set(served.files) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(served[name], value.numpy(), atol=1e-4)


def test_missing_raw_input_names_it(fitted):
    _, _, preprocessor = fitted
    raw = dummy_raw_inputs(preprocessor.specs, 2)
    del raw["note"]
    with pytest.raises(ValueError, match="missing raw input 'note'"):
        preprocessor(raw)
    with pytest.raises(ValueError, match="'report'"):
        fit_preprocessor((TextSpec("report"),), {"text": ["a"]}, "unused")


def test_corrupt_image_names_the_input(fitted):
    _, _, preprocessor = fitted
    raw = dummy_raw_inputs(preprocessor.specs, 2)
    raw["scan"] = np.array([raw["scan"][0], raw["scan"][1][:40]], object)
    with pytest.raises(tf.errors.InvalidArgumentError, match="scan"):
        preprocessor(raw)


def test_errors_name_the_spec(tmp_path):
    with pytest.raises(ValueError, match="kind 'categorical'.*image, text"):
        fit_spec(FeatureSpec("color", "categorical", 5), ["red"], "unused")
    with pytest.raises(FileNotFoundError, match="report"):
        Preprocessor((TextSpec("report"),), str(tmp_path))
    with pytest.raises(ValueError, match="unique.*image"):
        Preprocessor((ImageSpec(), ImageSpec()), str(tmp_path))
