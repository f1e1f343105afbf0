"""Image decoding shared by the training pipelines and serving signatures."""

import os

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_END = b"IEND"
_JPEG_END = b"\xff\xd9"


def _is_image(data):
    png = tf.equal(tf.strings.substr(data, 0, 8), _PNG_MAGIC)
    jpeg = tf.equal(tf.strings.substr(data, 0, 3), _JPEG_MAGIC)
    return tf.logical_or(png, jpeg)


def _contains(data, marker):
    return tf.strings.split(data, sep=marker, maxsplit=1).row_lengths() > 1


MAX_IMAGE_PIXELS = 150_000_000
"""Largest PNG (width × height, as its header claims) decoded: 150 M
pixels, e.g. 12000 × 12500, 450 MB as 8-bit RGB. A header claiming more
fails before anything is allocated (TensorFlow's own PNG limit is 2^29
pixels, 1.6 GB)."""


def _png_size(data):
    """Width and height `[B]` (int64) from PNG headers (the IHDR chunk's
    first fields, bytes 16-24, big-endian); 0 where the bytes are short."""
    length = tf.strings.length(data)
    start = tf.minimum(16, length)
    field = tf.strings.substr(data, start, tf.fill(tf.shape(data), 8))
    field = tf.strings.substr(field + b"\0" * 8, 0, 8)
    octets = tf.cast(tf.io.decode_raw(field, tf.uint8), tf.int64)
    weights = tf.constant([1 << 24, 1 << 16, 1 << 8, 1], tf.int64)
    width = tf.reduce_sum(octets[:, :4] * weights, axis=1)
    height = tf.reduce_sum(octets[:, 4:] * weights, axis=1)
    return width, height


def check_image_bytes(data, name="image"):
    """Asserts that each of `data [B]` is a complete JPEG or PNG file.

    `decode_image` rejects bytes that are not JPEG or PNG at all; this
    check catches the common corruption, a truncated upload, with a message
    naming `name` and the row (the decoder's own message names neither): a
    PNG must hold its `IEND` chunk and a JPEG its end-of-image marker
    (anywhere, so data appended after the image, as in motion photos, is
    still accepted). A PNG whose header claims more than
    `MAX_IMAGE_PIXELS` fails before it is decoded.

    Returns:
        `data`, made to depend on the check.
    """
    png = tf.equal(tf.strings.substr(data, 0, 8), _PNG_MAGIC)
    jpeg = tf.equal(tf.strings.substr(data, 0, 3), _JPEG_MAGIC)
    bad = tf.logical_or(
        tf.logical_and(png, tf.logical_not(_contains(data, _PNG_END))),
        tf.logical_and(jpeg, tf.logical_not(_contains(data, _JPEG_END))),
    )
    # The first bad row, or -1 (also for an empty batch).
    first_bad = tf.concat([tf.where(bad)[:, 0], [-1]], axis=0)[0]
    check = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(bad)),
        [
            name,
            ": row",
            first_bad,
            "is a truncated or corrupt JPEG/PNG file (no end marker)",
        ],
    )
    width, height = _png_size(data)
    huge = tf.logical_and(png, width * height > MAX_IMAGE_PIXELS)
    first_huge = tf.concat([tf.where(huge)[:, 0], [-1]], axis=0)[0]
    at = tf.maximum(first_huge, 0)
    size_check = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(huge)),
        [
            name,
            ": row",
            first_huge,
            "is a PNG whose header claims",
            tf.gather(width, at),
            "x",
            tf.gather(height, at),
            f"pixels; at most {MAX_IMAGE_PIXELS} pixels are decoded",
        ],
    )
    with tf.control_dependencies([check, size_check]):
        return tf.identity(data)


def decode_image(data, image_size, name="image"):
    """Decodes one JPEG/PNG image to float32 RGB `[size, size, 3]` in 0..255.

    Grayscale and RGBA inputs become RGB; any input size is resized
    (bilinear, aspect ratio not kept, as in the reference models). Bytes
    that are not JPEG or PNG fail with InvalidArgument naming `name`.

    Args:
        data: scalar string tensor of encoded bytes.
        image_size: int. Output height and width.
        name: str or scalar string tensor (e.g. the file path) named in
            error messages. Defaults to `"image"`.
    """
    check = tf.debugging.Assert(
        _is_image(data), [name, "is not JPEG or PNG bytes"]
    )
    with tf.control_dependencies([check]):
        image = tf.io.decode_image(
            data, channels=3, expand_animations=False, dtype=tf.uint8
        )
    image = tf.ensure_shape(image, [None, None, 3])
    image = tf.image.resize(image, [image_size, image_size])
    return tf.ensure_shape(image, [image_size, image_size, 3])


def decode_images(batch, image_size, name="image"):
    """Decodes a `[B]` batch of encoded images to `[B, size, size, 3]`.

    The batch is checked with `check_image_bytes` first, and the ops are
    scoped under `name`, so every failure, the decoder's own included,
    names the input.
    """
    scope = name if isinstance(name, str) and name.isidentifier() else None
    with tf.name_scope(scope or "decode_images"):
        batch = check_image_bytes(batch, name)
        return tf.map_fn(
            lambda data: decode_image(data, image_size, name),
            batch,
            fn_output_signature=tf.TensorSpec(
                [image_size, image_size, 3], tf.float32
            ),
        )


def read_image_file(path, image_size):
    """Reads and decodes the image file at `path` (a string tensor); a
    missing or unreadable file fails with an error naming it."""
    data = tf.reshape(tf.io.read_file(path), [1])
    return decode_images(data, image_size, name=path)[0]


def validate_files(paths, where, decode, what):
    """Decodes every file once with `decode(path) -> tensor`; raises
    `ValueError` naming the first bad file (and up to three more).

    A corrupt file inside a training `tf.data` pipeline fails with an error
    that does not name it; checking once up front does. The files are
    decoded in parallel; failures are dropped there and the first one is
    decoded again eagerly for its message.

    Args:
        paths: list of str.
        where: str. Dataset name used in the message.
        decode: callable from a scalar string tensor (the path) to a tensor
            that depends on the decoded values.
        what: tuple `(noun, expected)`, e.g. `("image file", "a JPEG or
            PNG image")`, for the message.
    """
    paths = [os.fspath(p) for p in paths]
    if not paths:
        return

    def check(index, path):
        # Depend on the values: a static shape would let tf.data prune the
        # decode (and its error) away.
        return index, tf.reduce_sum(decode(path))

    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.range(len(paths), dtype=tf.int64), paths)
    )
    dataset = dataset.map(
        check, num_parallel_calls=AUTOTUNE, deterministic=False
    ).ignore_errors()
    good = {int(index) for index, _ in dataset.as_numpy_iterator()}
    bad = [i for i in range(len(paths)) if i not in good]
    if not bad:
        return
    path = paths[bad[0]]
    try:
        decode(tf.constant(path))
        reason = "failed to decode"
    except tf.errors.OpError as error:
        reason = error.message.strip().splitlines()[0]
    others = ""
    if len(bad) > 1:
        others = ", also " + ", ".join(paths[i] for i in bad[1:4])
        others += " ..." if len(bad) > 4 else ""
    noun, expected = what
    raise ValueError(
        f"{where}: {noun} {path} cannot be read as {expected} ({reason}); "
        f"{len(bad)} of {len(paths)} {noun}s are bad{others}"
    )


def validate_image_files(paths, where):
    """Decodes every image file once; raises `ValueError` naming bad files
    (`validate_files`): missing, not JPEG or PNG, or not decodable (e.g.
    truncated).

    Args:
        paths: list of str. Image files.
        where: str. Dataset name used in the message.
    """
    validate_files(
        paths,
        where,
        lambda path: read_image_file(path, 8),
        ("image file", "a JPEG or PNG image"),
    )
