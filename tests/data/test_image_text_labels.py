"""Tests for the image-text-labels reader and writer."""

import math
import os

import numpy as np
import pytest
import tensorflow as tf

from mmzoo.data.examples import READERS, read_labeled
from mmzoo.data.image_text_labels import (
    read_image_text_labels,
    write_image_text_labels,
)
from mmzoo.data.images import read_image_file


def _png(path, channels=3, size=(5, 7)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = np.arange(size[0] * size[1] * channels) % 256
    pixels = pixels.reshape(*size, channels).astype(np.uint8)
    with open(path, "wb") as f:
        f.write(tf.io.encode_png(pixels).numpy())
    return path


def _gray_jpeg(path):
    pixels = np.full((9, 6, 1), 120, np.uint8)
    with open(path, "wb") as f:
        f.write(tf.io.encode_jpeg(pixels).numpy())
    return path


def _write(tmp_path, text, images=("a.png", "b.png", "c.png")):
    for name in images:
        _png(str(tmp_path / name))
    (tmp_path / "index.csv").write_text(text, encoding="utf-8")
    return str(tmp_path)


def test_single_label_with_targets_and_missing_text(tmp_path):
    text = (
        "image,text,label,target\n"
        'a.png,"a cat, sitting\non a mat",cat,1.5\n'
        "b.png,,dog,\n"
        "c.png,a bird ,bird,-2\n"
    )
    examples = read_image_text_labels(_write(tmp_path, text))
    assert len(examples) == 3
    assert examples.kinds == {"image": "image", "text": "text"}
    assert examples.columns["image"] == [
        os.path.join(str(tmp_path), n) for n in ("a.png", "b.png", "c.png")
    ]
    assert examples.columns["text"] == [
        "a cat, sitting\non a mat",
        "",
        "a bird ",
    ]
    assert examples.label_names == ("bird", "cat", "dog")
    assert examples.labels.dtype == np.float32
    np.testing.assert_array_equal(
        examples.labels, [[0, 1, 0], [0, 0, 1], [1, 0, 0]]
    )
    assert examples.multi_label is False
    assert examples.splits is None
    assert examples.targets.dtype == np.float32
    assert examples.targets.shape == (3, 1)
    assert examples.targets[0, 0] == 1.5
    assert math.isnan(examples.targets[1, 0])
    assert examples.targets[2, 0] == -2.0


def test_multi_label_without_target(tmp_path):
    text = (
        "label,image,text\n"
        "beach|sunset,a.png,evening\n"
        " dog ,b.png,a dog\n"
        "sunset|sunset,c.png,red sky\n"
    )
    examples = read_image_text_labels(_write(tmp_path, text))
    assert examples.label_names == ("beach", "dog", "sunset")
    np.testing.assert_array_equal(
        examples.labels, [[1, 0, 1], [0, 1, 0], [0, 0, 1]]
    )
    assert examples.multi_label is True
    assert examples.targets is None


def test_split_column_is_kept_and_taken(tmp_path):
    text = (
        "image,text,label,split\n"
        "a.png,x,p,train\n"
        "b.png,y,q|p,Val\n"
        "c.png,z,q, test\n"
    )
    examples = read_image_text_labels(_write(tmp_path, text))
    assert examples.splits == ["train", "val", "test"]
    part = examples.take([2, 0])
    assert part.splits == ["test", "train"]
    assert part.multi_label is True
    assert part.columns["text"] == ["z", "x"]
    np.testing.assert_array_equal(part.labels, [[0, 1], [1, 0]])


def test_registered_reader(tmp_path):
    assert "image-text-labels" in READERS
    data_dir = _write(tmp_path, "image,text,label\na.png,t,x\n")
    examples = read_labeled("image-text-labels", data_dir)
    assert examples.label_names == ("x",)


def test_round_trip_through_the_writer(tmp_path):
    _png(str(tmp_path / "img" / "a.png"))
    absolute = _png(str(tmp_path / "img" / "sub" / "b.png"))
    rows = [
        {
            "image": "img/a.png",
            "text": 'quote " and, comma',
            "label": ["x", "y"],
            "target": 0.1234,
            "split": "train",
        },
        {
            "image": absolute,
            "text": "",
            "label": "y",
            "target": None,
            "split": "test",
        },
    ]
    index = write_image_text_labels(tmp_path, rows)
    assert index == os.path.join(str(tmp_path), "index.csv")
    content = open(index).read()
    assert content.startswith("image,text,label,target,split\n")
    assert "img/sub/b.png" in content and "0.1234" in content
    back = read_image_text_labels(tmp_path)
    assert back.columns["text"] == ['quote " and, comma', ""]
    assert back.columns["image"][1] == absolute
    np.testing.assert_array_equal(back.labels, [[1, 1], [0, 1]])
    assert back.multi_label
    assert back.splits == ["train", "test"]
    assert back.targets[0, 0] == np.float32(0.1234)
    assert math.isnan(back.targets[1, 0])


def test_writer_without_optional_columns(tmp_path):
    _png(str(tmp_path / "a.png"))
    write_image_text_labels(
        tmp_path, [{"image": "a.png", "text": "t", "label": "x"}]
    )
    assert open(tmp_path / "index.csv").readline() == "image,text,label\n"


@pytest.mark.parametrize(
    "row, match",
    [
        ({"label": "a|b"}, "without '|'"),
        ({"label": []}, "one or more"),
        ({"label": ""}, "one or more"),
        ({"split": "dev"}, "split must be one of train, val, test"),
    ],
)
def test_writer_errors(tmp_path, row, match):
    base = {"image": "a.png", "text": "t", "label": "x"}
    with pytest.raises(ValueError, match=match):
        write_image_text_labels(tmp_path, [{**base, **row}])


def test_missing_index(tmp_path):
    with pytest.raises(ValueError, match="index.csv not found") as info:
        read_image_text_labels(tmp_path)
    assert str(tmp_path) in str(info.value)


H = "image,text,label,target,split\n"


@pytest.mark.parametrize(
    "text, match",
    [
        ("", r"index.csv:1: empty file"),
        ("text,label\nt,x\n", r"index.csv:1: missing column 'image'"),
        ("image,label\na.png,x\n", r"index.csv:1: missing column 'text'"),
        ("image,text\na.png,t\n", r"index.csv:1: missing column 'label'"),
        (
            "image,text,label,targets\na.png,t,x,1\n",
            r"index.csv:1: unknown column\(s\) \['targets'\]; valid: image",
        ),
        (
            "image,text,label,label\na.png,t,x,y\n",
            r"index.csv:1: duplicate columns \['label'\]",
        ),
        (
            "\nimage,text,label\n",
            r"index.csv:2: no examples after the header row",
        ),
        (
            H + 'a.png,"two\nlines",x,1,train\nb.png,t,x,1\n',
            r"index.csv:4: expected 5 fields",
        ),
        (H + "a.png,t, ,1,train\n", r"index.csv:2: empty 'label'"),
        (H + "a.png,t,x||y,1,train\n", r"index.csv:2: empty class name"),
        (
            H + "a.png,t,x,1,train\nb.png,t,x,abc,val\n",
            r"index.csv:3: target must be a finite number or empty .*'abc'",
        ),
        (H + "a.png,t,x,inf,train\n", r"index.csv:2: target must be"),
        (
            H + "a.png,t,x,1,dev\n",
            r"index.csv:2: split must be one of train, val, test, got 'dev'",
        ),
        (H + "a.png,t,x,1,\n", r"index.csv:2: split must be one of"),
        (
            H + "a.png,t,x,1,train\nmissing.png,t,x,1,val\n",
            r"index.csv:3: image file 'missing.png' not found",
        ),
        (H + " ,t,x,1,train\n", r"index.csv:2: empty 'image' field"),
    ],
)
def test_errors_name_file_and_line(tmp_path, text, match):
    data_dir = _write(tmp_path, text)
    with pytest.raises(ValueError, match=match) as info:
        read_image_text_labels(data_dir)
    assert os.path.join(str(tmp_path), "index.csv") in str(info.value)


def test_grayscale_jpeg_and_rgba_png_are_accepted(tmp_path):
    _gray_jpeg(str(tmp_path / "gray.jpg"))
    _png(str(tmp_path / "rgba.png"), channels=4)
    (tmp_path / "index.csv").write_text(
        "image,text,label\ngray.jpg,g,x\nrgba.png,r,y\n", encoding="utf-8"
    )
    examples = read_image_text_labels(tmp_path)
    assert [os.path.basename(p) for p in examples.image_paths()] == [
        "gray.jpg",
        "rgba.png",
    ]
    for path in examples.image_paths():
        image = read_image_file(tf.constant(path), 8)
        assert image.shape == (8, 8, 3)
