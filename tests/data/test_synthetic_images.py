"""Tests for the synthetic diagnosis, captioning and reference generators."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf

from mmzoo.data.captions import read_flickr8k
from mmzoo.data.examples import SYNTHETIC, write_synthetic
from mmzoo.data.image_report import read_image_report
from mmzoo.data.image_text_labels import read_image_text_labels
from mmzoo.data.images import read_image_file
from mmzoo.data.synthetic_images import (
    COLOURS,
    REFERENCE_COLOURS,
    REFERENCE_SHAPES,
    REFERENCE_SIZE_RANGE,
    diagnosis_label_names,
    synthetic_diagnosis_facts,
    synthetic_reference_facts,
    write_synthetic_captions,
    write_synthetic_diagnosis,
    write_synthetic_shapes_reference,
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


# --------------------------------------------------------------------------
# Shapes reference.
# --------------------------------------------------------------------------

REF_SIZE = 64
_KIND_WORDS = {
    **{name: i for i, name in enumerate(REFERENCE_SHAPES)},
    "disk": 0,
    "box": 1,
}
_COLOUR_WORDS = {
    *REFERENCE_COLOURS,
    *COLOURS,
    "orange",
    "purple",
    "pink",
    "black",
    "white",
    "grey",
    "gray",
    "brown",
    "cyan",
    "magenta",
}


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    folder = write_synthetic_shapes_reference(out, 150, seed=3)
    assert folder == os.fspath(out)
    return out


@pytest.fixture(scope="module")
def reference_facts():
    return synthetic_reference_facts(N_FACTS, seed=0)


def _read_shapes(path):
    """(kind, colour, size in 0..1) of the left and right shape, measured
    from the pixels."""
    pixels = tf.io.decode_png(open(path, "rb").read()).numpy()
    pixels = pixels.astype(np.float32)
    rgb = np.array([(220, 40, 40), (40, 170, 60), (40, 80, 220)])
    half = pixels.shape[1] // 2
    shapes = []
    for part in (pixels[:, :half], pixels[:, half:]):
        mask = part.max(axis=-1) - part.min(axis=-1) > 80
        rows = np.flatnonzero(mask.any(axis=1))
        widths = mask[rows].sum(axis=1)
        if widths[0] >= 0.8 * widths.max():
            kind = 1  # square: flat top
        elif widths[-1] >= 0.8 * widths.max():
            kind = 2  # triangle: widest at the base
        else:
            kind = 0
        mean = part[mask].mean(axis=0)
        colour = int(np.abs(rgb - mean).sum(axis=1).argmin())
        lo, hi = REFERENCE_SIZE_RANGE
        radius = len(rows) / 2 / pixels.shape[0]
        shapes.append((kind, colour, (radius - lo) / (hi - lo)))
    return shapes


def _referred_slot(text, kinds):
    words = tokenize_py(text)
    for side, word in enumerate(("left", "right")):
        if word in words:
            return side
    (kind,) = [_KIND_WORDS[w] for w in words if w in _KIND_WORDS]
    return kinds.index(kind)


def test_reference_registered_and_read_back(tmp_path):
    assert SYNTHETIC["shapes_reference"][0] == "image-text-labels"
    examples = write_synthetic("shapes_reference", tmp_path, 30, 1, 32)
    facts = synthetic_reference_facts(30, seed=1)
    assert examples.label_names == ("blue", "green", "red")
    assert examples.kinds == {"image": "image", "text": "text"}
    assert examples.multi_label is False and examples.splits is None
    assert examples.labels.shape == (30, 3)
    assert (examples.labels.sum(axis=1) == 1).all()
    names = [examples.label_names[i] for i in examples.labels.argmax(1)]
    assert names == facts["labels"]
    assert examples.columns["text"] == facts["texts"]
    assert examples.targets.shape == (30, 1)
    np.testing.assert_allclose(
        examples.targets[:, 0], facts["targets"], atol=1e-6
    )
    image = read_image_file(tf.constant(examples.columns["image"][0]), 32)
    assert image.shape == (32, 32, 3)


def test_reference_needs_text_and_image_together(reference_dir):
    """Reading the text for which shape, and the pixels for its colour and
    size, gives every label and target."""
    examples = read_image_text_labels(reference_dir)
    names = [examples.label_names[i] for i in examples.labels.argmax(1)]
    sizes = []
    for path, text, name, target in zip(
        examples.columns["image"],
        examples.columns["text"],
        names,
        examples.targets[:, 0],
        strict=True,
    ):
        shapes = _read_shapes(path)
        slot = _referred_slot(text, [kind for kind, _, _ in shapes])
        assert REFERENCE_COLOURS[shapes[slot][1]] == name, (path, text)
        sizes.append((shapes[slot][2], target))
    measured, target = np.array(sizes).T
    assert np.corrcoef(measured, target)[0, 1] > 0.97
    assert np.abs(measured - target).max() < 0.2


def test_reference_determinism(tmp_path, reference_dir):
    same = write_synthetic_shapes_reference(tmp_path / "same", 150, seed=3)
    other = write_synthetic_shapes_reference(tmp_path / "other", 150, seed=4)

    def read(root, name):
        with open(os.path.join(root, name), "rb") as f:
            return f.read()

    assert read(same, "index.csv") == read(reference_dir, "index.csv")
    for name in ("images/00000.png", "images/00149.png"):
        assert read(same, name) == read(reference_dir, name)
        assert read(other, name) != read(reference_dir, name)
    assert read(other, "index.csv") != read(reference_dir, "index.csv")


def test_reference_texts_never_name_a_colour(reference_facts):
    texts = reference_facts["texts"]
    for text in texts:
        assert not _COLOUR_WORDS & set(tokenize_py(text)), text
    assert len(set(texts)) > 100  # paraphrases and fillers
    by_kind = reference_facts["by_kind"]
    assert 0.4 < by_kind.mean() < 0.6
    assert 0.4 < reference_facts["referred"].mean() < 0.6


def test_reference_label_follows_the_text(reference_facts):
    colour = reference_facts["colour"]
    referred = reference_facts["referred"]
    rows = np.arange(len(referred))
    labels = np.array(reference_facts["labels"])
    assert (labels == np.array(REFERENCE_COLOURS)[colour[rows, referred]]).all()
    other = np.array(REFERENCE_COLOURS)[colour[rows, 1 - referred]]
    differ = colour[:, 0] != colour[:, 1]
    # Referring to the other shape of the same image changes the label
    # exactly when the two colours differ.
    np.testing.assert_array_equal(other != labels, differ)
    assert 0.6 < differ.mean() < 0.73
    kind = reference_facts["kind"]
    assert (kind[:, 0] != kind[:, 1]).all()
    targets = reference_facts["targets"]
    np.testing.assert_array_equal(
        targets, reference_facts["size"][rows, referred]
    )
    assert targets.min() >= 0 and targets.max() <= 1
    assert np.array_equal(np.round(targets, 4), targets)


def _majority_accuracy(keys, labels):
    correct = 0
    for key in set(keys):
        group = [y for k, y in zip(keys, labels, strict=True) if k == key]
        correct += max(group.count(y) for y in set(group))
    return correct / len(labels)


def test_each_modality_alone_is_far_from_the_label(reference_facts):
    facts = reference_facts
    labels = facts["labels"]
    rows = np.arange(len(labels))
    colours = np.array(REFERENCE_COLOURS)
    # Text only: the majority label of each referring phrase (in sample).
    phrases = [
        next(w for w in tokenize_py(t) if w in (*_KIND_WORDS, "left", "right"))
        for t in facts["texts"]
    ]
    assert _majority_accuracy(phrases, labels) < 0.45
    # Text only, held out: the majority label of each exact text seen in
    # the first half (else the overall majority) on the second half.
    half = len(labels) // 2
    seen = {}
    for text, label in zip(facts["texts"][:half], labels[:half], strict=True):
        seen.setdefault(text, []).append(label)
    overall = max(set(labels[:half]), key=labels[:half].count)
    guess = [
        max(set(seen[t]), key=seen[t].count) if t in seen else overall
        for t in facts["texts"][half:]
    ]
    assert np.mean(np.array(guess) == np.array(labels[half:])) < 0.45
    # Image only: the colour of the left shape, or of the larger one.
    left = colours[facts["colour"][:, 0]]
    larger = colours[facts["colour"][rows, facts["size"].argmax(axis=1)]]
    differ = facts["colour"][:, 0] != facts["colour"][:, 1]
    for guess in (left, larger):
        hit = guess == np.array(labels)
        assert hit.mean() < 0.7
        assert hit[differ].mean() < 0.56
    # Both: the true rule.
    truth = colours[facts["colour"][rows, facts["referred"]]]
    assert (truth == np.array(labels)).all()


def test_reference_bad_arguments():
    with pytest.raises(ValueError, match="num_examples must be an integer"):
        synthetic_reference_facts(0)
    with pytest.raises(ValueError, match="image_size"):
        write_synthetic_shapes_reference("/nonexistent", 4, image_size=8)
