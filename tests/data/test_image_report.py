"""Tests for the image-report reader/writer and image file decoding."""

import os

import numpy as np
import pytest
import tensorflow as tf

from mmzoo.data.image_report import (
    ImageReportData,
    read_image_report,
    write_image_report,
)
from mmzoo.data.images import read_image_file


def _png(path, channels=3, size=(5, 7)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = np.arange(size[0] * size[1] * channels) % 256
    pixels = pixels.reshape(*size, channels).astype(np.uint8)
    with open(path, "wb") as f:
        f.write(tf.io.encode_png(pixels).numpy())
    return path


def _write(tmp_path, text, images=("a.png", "b.png")):
    for name in images:
        _png(str(tmp_path / name))
    (tmp_path / "index.csv").write_text(text, encoding="utf-8")
    return str(tmp_path)


def test_round_trip_keeps_tricky_reports(tmp_path):
    paths = [
        _png(str(tmp_path / "img" / "a.png")),
        _png(str(tmp_path / "img" / "sub" / "b.png")),
    ]
    data = ImageReportData(
        image_paths=paths,
        reports=['Cough, fever; "quoted"', "two\nlines, and a comma"],
        labels=np.array([[1, 0], [0, 1]], np.float32),
        label_names=("x", "y"),
    )
    index = write_image_report(tmp_path, data)
    assert index == os.path.join(str(tmp_path), "index.csv")
    assert "img/sub/b.png" in open(index).read()
    back = read_image_report(tmp_path)
    assert back.image_paths == [os.path.abspath(p) for p in paths]
    assert back.reports == data.reports
    assert back.label_names == ("x", "y")
    assert back.labels.dtype == np.float32
    np.testing.assert_array_equal(back.labels, data.labels)
    assert len(back) == 2


def test_columns_in_any_order_and_blank_lines(tmp_path):
    text = "finding,report,image\n1,ok,a.png\n\n0,fine,b.png\n"
    data = read_image_report(_write(tmp_path, text))
    assert data.label_names == ("finding",)
    np.testing.assert_array_equal(data.labels, [[1.0], [0.0]])
    assert data.reports == ["ok", "fine"]


def test_missing_index(tmp_path):
    with pytest.raises(ValueError, match="index.csv not found"):
        read_image_report(tmp_path)


@pytest.mark.parametrize(
    "text, match",
    [
        ("report,y\nr,1\n", r"index.csv:1: missing column 'image'"),
        ("image,y\na.png,1\n", r"index.csv:1: missing column 'report'"),
        ("image,report\na.png,r\n", r"index.csv:1: no label columns"),
        (
            'image,report,y\na.png,"multi\nline",1\nb.png,r\n',
            r"index.csv:4: expected 3 fields",
        ),
        (
            "image,report,y\na.png,r,1\nb.png,r,2\n",
            r"index.csv:3: label 'y' must be 0 or 1, got '2'",
        ),
        (
            "image,report,y\na.png,r,1\nx.png,r,0\n",
            r"index.csv:3: image file 'x.png' not found",
        ),
        ("image,report,y\n", r"index.csv: no examples"),
        ("", r"index.csv:1: empty file"),
    ],
)
def test_errors_name_file_and_line(tmp_path, text, match):
    data_dir = _write(tmp_path, text)
    with pytest.raises(ValueError, match=match) as info:
        read_image_report(data_dir)
    assert str(tmp_path) in str(info.value)


def test_write_rejects_bad_shapes(tmp_path):
    data = ImageReportData(["a.png"], ["r"], np.zeros((1, 2)), ("y",))
    with pytest.raises(ValueError, match="labels"):
        write_image_report(tmp_path, data)


@pytest.mark.parametrize("channels", [1, 4])
def test_png_grayscale_and_rgba_decode_to_rgb(tmp_path, channels):
    path = _png(str(tmp_path / "x.png"), channels=channels)
    image = read_image_file(tf.constant(path), 16)
    assert image.shape == (16, 16, 3)
    assert image.dtype == tf.float32


def test_jpeg_decodes_to_rgb(tmp_path):
    path = str(tmp_path / "x.jpg")
    pixels = np.full((9, 6, 3), 120, np.uint8)
    with open(path, "wb") as f:
        f.write(tf.io.encode_jpeg(pixels).numpy())
    image = read_image_file(tf.constant(path), 8)
    assert image.shape == (8, 8, 3)
    assert abs(float(tf.reduce_mean(image)) - 120.0) < 3.0


def test_corrupt_and_missing_image_errors_name_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"this is not an image at all")
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        read_image_file(tf.constant(str(corrupt)), 8)
    assert str(corrupt) in str(info.value)
    missing = str(tmp_path / "missing.png")
    with pytest.raises(tf.errors.NotFoundError) as info:
        read_image_file(tf.constant(missing), 8)
    assert missing in str(info.value)
