"""Image decoding shared by the training pipelines and serving signatures."""

import tensorflow as tf


def _is_image(data):
    png = tf.equal(tf.strings.substr(data, 0, 8), b"\x89PNG\r\n\x1a\n")
    jpeg = tf.equal(tf.strings.substr(data, 0, 3), b"\xff\xd8\xff")
    return tf.logical_or(png, jpeg)


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
    """Decodes a `[B]` batch of encoded images to `[B, size, size, 3]`."""
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
    return decode_image(tf.io.read_file(path), image_size, name=path)
