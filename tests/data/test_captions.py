"""Tests for the flickr8k and image-text-pairs readers."""

import os

import pytest

from mmzoo.data.captions import read_flickr8k, read_image_text_pairs


def _touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")  # the readers never decode
    return path


def _flickr(tmp_path, name, text, images=("1.jpg", "2.jpg")):
    for image in images:
        _touch(str(tmp_path / "Images" / image))
    (tmp_path / name).write_text(text, encoding="utf-8")
    return str(tmp_path)


def test_kaggle_csv_groups_and_keeps_commas(tmp_path):
    text = (
        "image,caption\n"
        "2.jpg,A dog runs .\n"
        '1.jpg,"A man, a plan, a canal ."\n'
        "2.jpg,A dog, brown, runs on grass .\n"
        "\n"
        '1.jpg,Someone says "hi" .\n'
    )
    data = read_flickr8k(_flickr(tmp_path, "captions.txt", text))
    assert data.image_paths == [
        str(tmp_path / "Images" / "2.jpg"),
        str(tmp_path / "Images" / "1.jpg"),
    ]
    assert data.captions == [
        ("A dog runs .", "A dog, brown, runs on grass ."),
        ("A man, a plan, a canal .", 'Someone says "hi" .'),
    ]
    assert len(data) == 2


def test_token_file_layout(tmp_path):
    text = (
        "1.jpg#0\tA child climbs stairs .\n"
        "1.jpg#1\tA girl, in pink, climbs .\n"
        "2.jpg#0\tTwo dogs play .\n"
    )
    data = read_flickr8k(_flickr(tmp_path, "Flickr8k.token.txt", text))
    assert [os.path.basename(p) for p in data.image_paths] == ["1.jpg", "2.jpg"]
    assert data.captions[0] == (
        "A child climbs stairs .",
        "A girl, in pink, climbs .",
    )
    assert data.captions[1] == ("Two dogs play .",)


def test_csv_preferred_over_token_file(tmp_path):
    _flickr(tmp_path, "Flickr8k.token.txt", "garbage\n")
    data = read_flickr8k(
        _flickr(tmp_path, "captions.txt", "image,caption\n1.jpg,x\n")
    )
    assert data.captions == [("x",)]


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("captions.txt", "img,cap\n1.jpg,x\n", r"captions.txt:1: expected"),
        (
            "captions.txt",
            "image,caption\n1.jpg,x\nno comma here\n",
            r"captions.txt:3: malformed line",
        ),
        (
            "captions.txt",
            "image,caption\n1.jpg,x\n\n3.jpg,y\n",
            r"captions.txt:4: image file '3.jpg' not found",
        ),
        (
            "Flickr8k.token.txt",
            "1.jpg#0\tok\n2.jpg#0 no tab\n",
            r"Flickr8k.token.txt:2: malformed line",
        ),
        (
            "Flickr8k.token.txt",
            "1.jpg#0\tok\n9.jpg#0\tmissing\n",
            r"Flickr8k.token.txt:2: image file '9.jpg' not found",
        ),
        ("captions.txt", "image,caption\n", r"captions.txt: no captions"),
    ],
)
def test_flickr_errors_name_file_and_line(tmp_path, name, text, match):
    data_dir = _flickr(tmp_path, name, text)
    with pytest.raises(ValueError, match=match) as info:
        read_flickr8k(data_dir)
    assert str(tmp_path) in str(info.value)


def test_flickr_missing_files(tmp_path):
    with pytest.raises(ValueError, match="neither captions.txt"):
        read_flickr8k(tmp_path)
    (tmp_path / "captions.txt").write_text("image,caption\n")
    with pytest.raises(ValueError, match="Images not found"):
        read_flickr8k(tmp_path)


def test_image_text_pairs_nested_sorted(tmp_path):
    for rel in ("b/z.png", "a/deep/y.JPG", "a/x.jpeg", "top.jpg"):
        _touch(str(tmp_path / rel))
    (tmp_path / "b" / "z.txt").write_text("one\n\n  two  \n")
    (tmp_path / "a" / "deep" / "y.txt").write_text("why\n")
    (tmp_path / "a" / "x.txt").write_text("ex")
    (tmp_path / "top.txt").write_text("top\n")
    (tmp_path / "stray.txt").write_text("no image\n")
    _touch(str(tmp_path / ".hidden" / "h.png"))  # skipped, has no .txt
    data = read_image_text_pairs(tmp_path)
    rel = [os.path.relpath(p, tmp_path) for p in data.image_paths]
    assert rel == [
        "top.jpg",
        os.path.join("a", "x.jpeg"),
        os.path.join("a", "deep", "y.JPG"),
        os.path.join("b", "z.png"),
    ]
    assert data.captions == [("top",), ("ex",), ("why",), ("one", "two")]


def test_image_text_pairs_errors(tmp_path):
    with pytest.raises(ValueError, match="no images") as info:
        read_image_text_pairs(tmp_path)
    assert str(tmp_path) in str(info.value)
    image = _touch(str(tmp_path / "sub" / "x.png"))
    with pytest.raises(ValueError, match="has no caption file x.txt") as info:
        read_image_text_pairs(tmp_path)
    assert image in str(info.value)
    (tmp_path / "sub" / "x.txt").write_text("\n  \n")
    with pytest.raises(ValueError, match="holds no caption") as info:
        read_image_text_pairs(tmp_path)
    assert str(tmp_path / "sub" / "x.txt") in str(info.value)
    with pytest.raises(ValueError, match="not found"):
        read_image_text_pairs(tmp_path / "nope")


def test_token_file_with_one_missing_image_among_many_warns(tmp_path, caplog):
    # The original Flickr8k.token.txt names `2258277193_586949ec62.jpg.1`,
    # which the release lacks; reading the real file must still work.
    images = [f"{i}.jpg" for i in range(150)]
    lines = [f"{name}#0\tA dog runs." for name in images]
    lines.insert(7, "2258277193_586949ec62.jpg.1#0\tA ghost caption.")
    _flickr(tmp_path, "Flickr8k.token.txt", "\n".join(lines) + "\n", images)
    with caplog.at_level("WARNING"):
        data = read_flickr8k(tmp_path)
    assert len(data) == 150
    assert "2258277193_586949ec62.jpg.1" in caplog.text
    assert "Flickr8k.token.txt:8" in caplog.text
