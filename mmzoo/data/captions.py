"""Readers for the captioning dataset layouts `flickr8k` and
`image-text-pairs`.

`flickr8k` is a folder with `Images/` and one caption file:

- `captions.txt` (Kaggle): CSV with the header `image,caption`, one caption
  a row. Kaggle's file leaves commas inside captions unquoted, so a row is
  split on its first comma only; quoted fields are understood too.
- `Flickr8k.token.txt` (the original release): `name.jpg#k<TAB>caption`.

`image-text-pairs` is a folder tree of images (`.jpg`, `.jpeg`, `.png`),
each with a `.txt` file of the same stem beside it holding one caption per
non-empty line.

The readers only parse and check the files; decoding and batching happen
in the `tf.data` pipelines.
"""

import dataclasses
import logging
import os

from mmzoo.data.textfile import csv_records, open_text

IMAGES_DIR = "Images"
CAPTIONS_CSV = "captions.txt"
TOKEN_FILE = "Flickr8k.token.txt"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# The original Flickr8k.token.txt lists captions of one image that the
# release does not contain (`2258277193_586949ec62.jpg.1`). A caption file
# whose missing images stay under this fraction is read with a warning that
# names them; above it, the folder is taken to be wrong and reading fails.
MAX_MISSING_IMAGE_FRACTION = 0.01


@dataclasses.dataclass
class CaptionData:
    """Images with several reference captions each.

    Attributes:
        image_paths: list of str. Absolute path of each image.
        captions: list of tuple of str. The captions of each image, in file
            order.
    """

    image_paths: list
    captions: list

    def __len__(self):
        return len(self.image_paths)


def _check_dir(path, what):
    if not os.path.isdir(path):
        raise ValueError(f"{what}: folder {path} not found")


class _Grouper:
    """Groups `(image name, caption)` pairs by image, first-seen order."""

    def __init__(self, images_dir, tolerate_missing=False):
        self.images_dir = images_dir
        self.tolerate_missing = tolerate_missing
        self.by_name = {}
        self.missing = {}  # image name -> the lines that name it

    def add(self, source, line, name, caption):
        if name in self.missing:
            self.missing[name].append(line)
            return
        if name not in self.by_name:
            path = os.path.join(self.images_dir, name)
            if not os.path.isfile(path):
                if not self.tolerate_missing:
                    raise ValueError(self._not_found(source, name, [line]))
                self.missing[name] = [line]
                return
            self.by_name[name] = (path, [])
        self.by_name[name][1].append(caption)

    def _not_found(self, source, name, lines):
        """`source:line: image file 'x' not found in ... (also on lines
        ...)`, naming every line whose caption is not read."""
        also = ""
        if len(lines) > 1:
            also = f" (also on line(s) {', '.join(map(str, lines[1:]))})"
        return (
            f"{source}:{lines[0]}: image file '{name}' not found in "
            f"{self.images_dir}{also}"
        )

    def result(self, source):
        if self.missing:
            total = len(self.missing) + len(self.by_name)
            messages = [
                self._not_found(source, name, lines)
                for name, lines in self.missing.items()
            ]
            if len(self.missing) > MAX_MISSING_IMAGE_FRACTION * total:
                raise ValueError(
                    f"{messages[0]} ({len(self.missing)} of {total} images "
                    "missing)"
                )
            logging.getLogger(__name__).warning(
                "skipping %d caption(s) of %d missing image(s): %s",
                sum(len(lines) for lines in self.missing.values()),
                len(self.missing),
                "; ".join(messages),
            )
        if not self.by_name:
            raise ValueError(f"{source}: no captions found")
        paths, captions = zip(*self.by_name.values(), strict=True)
        return CaptionData(
            image_paths=list(paths),
            captions=[tuple(group) for group in captions],
        )


def _read_captions_csv(path, grouper):
    header_seen = False
    for line, fields in csv_records(path):
        if not header_seen:
            header = [field.strip().lower() for field in fields]
            if header != ["image", "caption"]:
                raise ValueError(
                    f"{path}:{line}: expected the header 'image,caption', "
                    f"got {','.join(fields)!r}"
                )
            header_seen = True
            continue
        if len(fields) < 2:
            raise ValueError(
                f"{path}:{line}: malformed line, expected "
                f"'image,caption', got {','.join(fields)!r}"
            )
        # Unquoted commas belong to the caption: rejoining the pieces is
        # the same as splitting the raw line on its first comma.
        name = fields[0].strip()
        caption = ",".join(fields[1:]).strip()
        if not name or not caption:
            raise ValueError(
                f"{path}:{line}: malformed line, empty image name or caption"
            )
        grouper.add(path, line, name, caption)
    if not header_seen:
        raise ValueError(f"{path}:1: empty file; expected 'image,caption'")


def _read_token_file(path, grouper):
    with open_text(path) as f:
        for line, text in enumerate(f, start=1):
            text = text.rstrip("\r\n")
            if not text.strip():
                continue
            key, tab, caption = text.partition("\t")
            name, hash_, _ = key.strip().rpartition("#")
            caption = caption.strip()
            if not tab or not hash_ or not name or not caption:
                raise ValueError(
                    f"{path}:{line}: malformed line, expected "
                    f"'name.jpg#k<TAB>caption', got {text!r}"
                )
            grouper.add(path, line, name, caption)


def read_flickr8k(data_dir):
    """Reads a `flickr8k` folder (see the module docstring).

    `captions.txt` is used when both caption files are present.

    Args:
        data_dir: str or path-like. Folder holding `Images/` and
            `captions.txt` or `Flickr8k.token.txt`.

    Returns:
        A `CaptionData`, images in first-seen order, each with its captions
        in file order.

    Raises:
        ValueError: naming the file and line for a malformed line, bytes
            that are not UTF-8 or an image missing from `Images/` (a few
            missing images, under `MAX_MISSING_IMAGE_FRACTION`, are
            skipped with a warning that names them and every line whose
            caption is skipped, as the original release needs); naming the
            folder when a caption file or `Images/` is missing.

    Example:
    >>> data = read_flickr8k("data/flickr8k")
    >>> data.image_paths[0], data.captions[0][0]
    """
    data_dir = os.path.abspath(os.fspath(data_dir))
    _check_dir(data_dir, "flickr8k")
    images_dir = os.path.join(data_dir, IMAGES_DIR)
    csv_path = os.path.join(data_dir, CAPTIONS_CSV)
    token_path = os.path.join(data_dir, TOKEN_FILE)
    if os.path.isfile(csv_path):
        source, read = csv_path, _read_captions_csv
    elif os.path.isfile(token_path):
        source, read = token_path, _read_token_file
    else:
        raise ValueError(
            f"flickr8k: {data_dir} has neither {CAPTIONS_CSV} nor {TOKEN_FILE}"
        )
    _check_dir(images_dir, "flickr8k")
    grouper = _Grouper(images_dir, tolerate_missing=True)
    read(source, grouper)
    return grouper.result(source)


def read_image_text_pairs(data_dir):
    """Reads an `image-text-pairs` folder tree (see the module docstring).

    The tree is walked recursively in sorted order (a folder's files
    before its subfolders); hidden files and
    folders (names starting with `.`) are skipped, and so is a `.txt` file
    without an image. An image whose stem has several image files (e.g.
    `x.jpg` and `x.png`) shares `x.txt` between them.

    Args:
        data_dir: str or path-like. Root of the tree.

    Returns:
        A `CaptionData` in sorted path order, each image's captions in line
        order.

    Raises:
        ValueError: naming the image for an image without its `.txt` file,
            the `.txt` file when it holds no caption, its file and line
            when it is not UTF-8, and the folder when it is missing or
            holds no image.

    Example:
    >>> data = read_image_text_pairs("data/pairs")  # a/x.jpg + a/x.txt, ...
    """
    data_dir = os.path.abspath(os.fspath(data_dir))
    _check_dir(data_dir, "image-text-pairs")
    image_paths, captions = [], []
    for root, dirs, files in os.walk(data_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if name.startswith(".") or ext.lower() not in IMAGE_EXTENSIONS:
                continue
            path = os.path.join(root, name)
            text_path = os.path.join(root, stem + ".txt")
            if not os.path.isfile(text_path):
                raise ValueError(
                    f"image-text-pairs: image {path} has no caption file "
                    f"{stem}.txt beside it"
                )
            with open_text(text_path) as f:
                lines = tuple(t.strip() for t in f.read().splitlines())
            lines = tuple(t for t in lines if t)
            if not lines:
                raise ValueError(
                    f"image-text-pairs: caption file {text_path} holds no "
                    "caption (one per non-empty line)"
                )
            image_paths.append(path)
            captions.append(lines)
    if not image_paths:
        raise ValueError(
            f"image-text-pairs: no images ({', '.join(IMAGE_EXTENSIONS)}) "
            f"found under {data_dir}"
        )
    return CaptionData(image_paths=image_paths, captions=captions)
