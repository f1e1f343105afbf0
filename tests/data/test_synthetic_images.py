"""Tests for the synthetic diagnosis and captioning generators."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf

from mmzoo.data.captions import read_flickr8k
from mmzoo.data.image_report import read_image_report
from mmzoo.data.images import read_image_file
from mmzoo.data.synthetic_images import (
    COLOURS,
    diagnosis_label_names,
    synthetic_diagnosis_facts,
    write_synthetic_captions,
    write_synthetic_diagnosis,
)
from mmzoo.data.text import standardize_py, tokenize_py

# Label names and direct synonyms that a report must never contain.
LEAKS = {
    "pneumonia": (
        "pneumonia",
        "pneumonic",
        "pneumonitis",
        "infection",
        "infective",
        "consolidation",
        "infiltrate",
        "bronchopneumonia",
    ),
    "malignancy": (
        "malignancy",
        "malignant",
        "cancer",
        "tumor",
        "tumour",
        "carcinoma",
        "neoplasm",
        "mass",
        "nodule",
        "lesion",
        "metastasis",
        "metastatic",
        "oncology",
    ),
    "effusion": (
        "effusion",
        "pleural",
        "fluid",
        "hydrothorax",
        "blunting",
        "blunted",
        "meniscus",
    ),
}

N_FACTS = 3000


@pytest.fixture(scope="module")
def facts():
    return synthetic_diagnosis_facts(N_FACTS, seed=0)


@pytest.fixture(scope="module")
def diagnosis_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("dx")
    assert write_synthetic_diagnosis(out, 120, seed=3) == os.fspath(out)
    return out


@pytest.fixture(scope="module")
def captions_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cap")
    assert write_synthetic_captions(out, 80, seed=3) == os.fspath(out)
    return out


def _image_facts(facts):
    region = facts["opacity_region"]
    return {
        "pneumonia": np.isin(region, (2, 3)),
        "malignancy": np.isin(region, (0, 1)),
        "effusion": facts["blunted_angle"],
    }


def _report_facts(facts):
    return {
        "pneumonia": facts["infection_history"],
        "malignancy": facts["smoking_history"],
        "effusion": facts["cardiac_history"],
    }


def test_diagnosis_round_trip(diagnosis_dir):
    data = read_image_report(diagnosis_dir)
    facts = synthetic_diagnosis_facts(120, seed=3)
    assert len(data) == 120
    assert data.label_names == diagnosis_label_names()
    assert data.labels.shape == (120, 3)
    np.testing.assert_array_equal(data.labels, facts["labels"])
    assert data.reports == facts["reports"]
    assert all(os.path.isabs(p) for p in data.image_paths)
    image = read_image_file(tf.constant(data.image_paths[0]), 64)
    assert image.shape == (64, 64, 3)


def test_diagnosis_images_show_the_image_facts(diagnosis_dir):
    data = read_image_report(diagnosis_dir)
    facts = synthetic_diagnosis_facts(120, seed=3)
    pixels = np.stack(
        [
            tf.io.decode_png(open(p, "rb").read()).numpy()
            for p in data.image_paths
        ]
    )[..., 0].astype(np.float32)
    region = facts["opacity_region"]
    # Upper-left lung window: brighter with an opacity there than without.
    window = pixels[:, 20:29, 16:25].mean(axis=(1, 2))
    assert window[region == 0].mean() > window[region == -1].mean() + 15
    # Lung bases, lateral corners: brighter when the angle is blunted.
    bases = pixels[:, 48:52, 12:17].mean(axis=(1, 2)) + pixels[
        :, 48:52, 47:52
    ].mean(axis=(1, 2))
    blunted = facts["blunted_angle"]
    assert bases[blunted].mean() > bases[~blunted].mean() + 10


def test_diagnosis_determinism(tmp_path, diagnosis_dir):
    same = write_synthetic_diagnosis(tmp_path / "same", 120, seed=3)
    other = write_synthetic_diagnosis(tmp_path / "other", 120, seed=4)

    def read(root, name):
        with open(os.path.join(root, name), "rb") as f:
            return f.read()

    assert read(same, "index.csv") == read(diagnosis_dir, "index.csv")
    for name in ("images/00000.png", "images/00119.png"):
        assert read(same, name) == read(diagnosis_dir, name)
        assert read(other, name) != read(diagnosis_dir, name)
    assert read(other, "index.csv") != read(diagnosis_dir, "index.csv")


def test_diagnosis_prevalence_and_noise(facts):
    prevalence = facts["labels"].mean(axis=0)
    assert np.all((prevalence > 0.18) & (prevalence < 0.40)), prevalence
    noise = (facts["labels"] != facts["clean_labels"]).mean()
    assert 0.015 < noise < 0.05


def test_reports_never_name_a_label(facts):
    for report in facts["reports"]:
        tokens = set(tokenize_py(report))
        text = f" {standardize_py(report)} "
        for label, words in LEAKS.items():
            for word in (label, *words):
                assert word not in tokens, (word, report)
                if " " in word:
                    assert f" {word} " not in text, (word, report)
        assert not re.search(r"\b(chest|lung) infection\b", text)


def test_labels_need_both_modalities(facts):
    labels = dict(zip(diagnosis_label_names(), facts["labels"].T, strict=True))
    image, report = _image_facts(facts), _report_facts(facts)
    for name, y in labels.items():
        img, rep = image[name], report[name]
        # Either fact alone leaves the label uncertain ...
        assert 0.25 < y[img].mean() < 0.75, name
        assert 0.25 < y[rep].mean() < 0.75, name
        # ... both together determine it (up to the 3% label noise).
        assert y[img & rep].mean() > 0.93, name
        assert y[~(img & rep)].mean() < 0.07, name


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_examples must be an integer"):
        synthetic_diagnosis_facts(0)
    with pytest.raises(ValueError, match="image_size"):
        write_synthetic_captions("/nonexistent", 4, image_size=8)


def test_captions_round_trip(captions_dir):
    data = read_flickr8k(captions_dir)
    assert len(data) == 80
    counts = [len(c) for c in data.captions]
    assert min(counts) >= 3 and max(counts) <= 5
    assert all(len(set(c)) == len(c) for c in data.captions)
    words = [tokenize_py(c) for group in data.captions for c in group]
    assert max(len(w) for w in words) <= 14
    assert len({t for w in words for t in w}) < 60
    # Captions with commas survive the CSV round trip.
    assert any("," in c for group in data.captions for c in group)
    image = read_image_file(tf.constant(data.image_paths[0]), 32)
    assert image.shape == (32, 32, 3)


def test_captions_describe_the_image(captions_dir):
    data = read_flickr8k(captions_dir)
    rgb = {
        "red": (220, 40, 40),
        "green": (40, 170, 60),
        "blue": (40, 80, 220),
        "yellow": (235, 205, 40),
    }
    assert set(rgb) == set(COLOURS)
    for path, captions in zip(data.image_paths, data.captions, strict=True):
        pixels = tf.io.decode_png(open(path, "rb").read()).numpy()
        pixels = pixels.astype(np.float32)
        for colour, value in rgb.items():
            near = np.abs(pixels - value).max(axis=-1) < 30
            named = [colour in tokenize_py(c) for c in captions]
            # Every caption names the colours that are in the picture.
            assert all(named) == (near.sum() > 20), (path, colour)
            assert any(named) == all(named), (path, colour)


def test_captions_determinism(tmp_path, captions_dir):
    same = write_synthetic_captions(tmp_path / "same", 80, seed=3)
    other = write_synthetic_captions(tmp_path / "other", 80, seed=4)

    def read(root, name):
        with open(os.path.join(root, name), "rb") as f:
            return f.read()

    assert read(same, "captions.txt") == read(captions_dir, "captions.txt")
    assert read(same, "Images/00042.png") == read(
        captions_dir, "Images/00042.png"
    )
    assert read(other, "captions.txt") != read(captions_dir, "captions.txt")
