"""Frame sampling and decoding shared by the training pipelines and serving.

A clip is a row of encoded frames (JPEG/PNG bytes), `""` = padding:

```
frames string [B, F] ─► drop padding ─► T frames taken uniformly ─►
decode + resize each (as images) ─► float32 [B, T, S, S, 3], NaN = padding
```

A clip of more than T frames gives T spread evenly over it (frame
`floor((i + 0.5) * n / T)` for i < T, the centre of each of T equal parts);
a shorter one keeps all its frames and is padded with NaN frames. A clip of
padding only is all NaN: a missing video, masked by the model. Frames of
different sizes are each resized. Bytes that are not JPEG/PNG, or a
truncated file, fail the request with InvalidArgument naming the input.
"""

import numpy as np
import tensorflow as tf

from mmzoo.data.images import check_image_bytes, decode_image


def frame_indices(count, num_frames):
    """Indices of the frames kept from a clip of `count` frames: all of
    them when `count <= num_frames`, else `num_frames` spread evenly
    (NumPy twin of the graph's rule, for readers that pick files)."""
    if count <= num_frames:
        return list(range(count))
    return [int((i + 0.5) * count / num_frames) for i in range(num_frames)]


def sample_frames(row, num_frames):
    """One clip's frames `string [F]` → `string [num_frames]`: the non-empty
    frames, `num_frames` taken uniformly when there are more, `""` padding
    at the end when fewer."""
    present = tf.boolean_mask(row, tf.strings.length(row) > 0)
    count = tf.shape(present, out_type=tf.int64)[0]
    steps = tf.range(num_frames, dtype=tf.float64) + 0.5
    spread = tf.cast(
        tf.floor(steps * tf.cast(count, tf.float64) / num_frames), tf.int64
    )
    index = tf.where(
        count > num_frames, spread, tf.range(num_frames, dtype=tf.int64)
    )
    valid = index < count
    # An empty clip has nothing to gather from.
    taken = tf.cond(
        count > 0,
        lambda: tf.gather(present, tf.minimum(index, count - 1)),
        lambda: tf.fill([num_frames], tf.constant("", tf.string)),
    )
    return tf.where(valid, taken, tf.constant("", tf.string))


def decode_clips(batch, num_frames, size, name="frames"):
    """Encoded frames `string [B, F]` → float32 `[B, T, S, S, 3]` pixels in
    0..255, NaN frames for padding (see the module docstring). Failures
    name `name` (the ops are scoped under it)."""
    scope = name if isinstance(name, str) and name.isidentifier() else None
    nan_frame = tf.fill([size, size, 3], tf.constant(np.nan, tf.float32))

    def decode_row(args):
        index, row = args
        # Messages name the input and the clip (its row in the request);
        # `check_image_bytes` adds the position among the sampled frames.
        where = tf.strings.join([name, ", clip ", tf.strings.as_string(index)])
        chosen = check_image_bytes(sample_frames(row, num_frames), where)

        def decode_frame(data):
            return tf.cond(
                tf.strings.length(data) > 0,
                lambda: decode_image(data, size, where),
                lambda: nan_frame,
            )

        return tf.map_fn(
            decode_frame,
            chosen,
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
        )

    with tf.name_scope(scope or "decode_clips"):
        batch = tf.convert_to_tensor(batch, tf.string)
        rows = tf.range(tf.shape(batch, out_type=tf.int64)[0])
        return tf.map_fn(
            decode_row,
            (rows, batch),
            fn_output_signature=tf.TensorSpec(
                [num_frames, size, size, 3], tf.float32
            ),
        )
