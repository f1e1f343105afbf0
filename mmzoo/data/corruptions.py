"""Corruptions of raw model inputs, for robustness evaluation.

MultiBench's robustness protocol (Liang et al., NeurIPS 2021 Datasets and
Benchmarks): evaluate a trained model while one modality at a time is
corrupted more and more, from level 0 (clean) to 1. The corruptions act on
the raw values a client sends (encoded image bytes, text, WAV bytes,
readings, tabular cells), before the model's preprocessor, so they reach
every model through the same three entry points its task uses:
`preprocessor(raw)`, `preprocessor.processors[name](values)` and
`preprocessor.images(values)`; `CorruptedInputs` wraps a preprocessor and
corrupts the named inputs on each of them.

Corruptions by kind (`CORRUPTIONS`), each a function
`f(values, level, seed=0, keys=None)`:

- image, and every frame of a video: `gaussian_noise` (σ = level·128 on
  0..255 pixels), `blur` (Gaussian, σ = level·S/8 pixels, S the image's
  shorter side), `occlusion` (a 128-gray rectangle of the image's aspect
  ratio, a square on square images, covering `level` of its area).
- text: `word_dropout` (each word dropped with probability `level`),
  `typos` (each letter replaced by a random lowercase letter with
  probability `level / 2`).
- audio (`noise`, `audio_noise`): white noise of standard deviation
  level·2·RMS of the clip (the signal-to-noise ratio falls to -6 dB at 1).
- sensor, numeric, categorical and multi-valued cells: `missing` (each
  value NaN, or `""` for strings, with probability `level`).
- `removed`: every value of the input replaced by its missing value
  (`""`, NaN, a clip of padding frames only). Images have none.

Randomness is stateless (`tf.random.stateless_*`; `missing`, which draws
once per table cell, uses a fingerprint of the same seeds, vectorized):
an element's draws depend only on `seed` and its key, the content hash of
its row (`row_keys`: every raw input of the row when the whole dict is
corrupted, else the value itself) and its position in the row, never on
batching. Level 0 returns the values unchanged; `""` (a missing image,
frame, text or audio) stays `""`.
"""

import dataclasses
import functools

import numpy as np
import tensorflow as tf

from mmzoo.data.audio import decode_wav

HASH_BUCKETS = 2**31 - 1
GRAY = 128.0
LOWERCASE = "abcdefghijklmnopqrstuvwxyz"
REMOVED = "removed"
"""Name of the whole-modality removal, reported at level 1."""
_MIX = 1_000_003


def content_keys(values):
    """The content hash of every element of `values` (int64 in
    0..2^31-2); numbers are hashed through their decimal text."""
    values = tf.convert_to_tensor(values)
    if values.dtype != tf.string:
        values = tf.strings.as_string(values)
    return tf.strings.to_hash_bucket_fast(values, HASH_BUCKETS)


def row_keys(raw, inner_ranks):
    """One content key per row of a dict of raw inputs.

    Args:
        raw: dict of input name to raw values `[*batch, *inner]`.
        inner_ranks: dict of input name to the rank of one row's value (0
            for an image, a text or an audio; 1 for a video's frames or a
            sensor's readings). Inputs not named here are left out.

    Returns:
        int64 `[*batch]`: the hash of every named input's row, or None when
        none of them is in `raw`.
    """
    parts = []
    for name in sorted(inner_ranks):
        if name not in raw:
            continue
        hashed = tf.strings.as_string(content_keys(raw[name]))
        rank, inner = hashed.shape.rank, int(inner_ranks[name])
        if rank is None or rank < inner:
            continue
        if inner:
            hashed = tf.strings.reduce_join(
                hashed, axis=list(range(rank - inner, rank)), separator=","
            )
        parts.append(hashed)
    if not parts:
        return None
    joined = parts[0] if len(parts) == 1 else tf.strings.join(parts, "|")
    return tf.strings.to_hash_bucket_fast(joined, HASH_BUCKETS)


def _element_seeds(values, keys, seed, by_position=True):
    """Stateless seeds `[N, 2]` of the N elements of `values` (flattened):
    `(seed, mix of the row key and the element's position in its row)`."""
    if keys is None:
        keys = content_keys(values)
    keys = tf.cast(keys, tf.int64)
    shape = tf.shape(values, out_type=tf.int64)
    batch_rank = keys.shape.rank
    inner = shape[batch_rank:]
    keys = tf.reshape(
        keys, tf.concat([tf.shape(keys, out_type=tf.int64), inner * 0 + 1], 0)
    )
    keys = tf.broadcast_to(keys, shape)
    if by_position:
        positions = tf.reshape(
            tf.range(tf.reduce_prod(inner), dtype=tf.int64), inner
        )
        keys = (keys * _MIX + tf.broadcast_to(positions, shape)) % HASH_BUCKETS
    keys = tf.reshape(keys, [-1])
    first = tf.fill(tf.shape(keys), tf.constant(int(seed), tf.int64))
    return tf.stack([first, keys], axis=1)


def _map_elements(fn, values, seeds, dtype):
    """`fn(element, seed)` on every element of `values`, shape kept."""
    flat = tf.reshape(values, [-1])
    out = tf.map_fn(
        lambda args: fn(args[0], args[1]),
        (flat, seeds),
        fn_output_signature=dtype,
    )
    return tf.ensure_shape(tf.reshape(out, tf.shape(values)), values.shape)


def _check_level(level, name):
    level = float(level)
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"{name}: level must be within 0..1, got {level}")
    return level


# --------------------------------------------------------------- images --


def _decode_pixels(data):
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    return tf.cast(tf.ensure_shape(image, [None, None, 3]), tf.float32)


def _encode_pixels(image):
    image = tf.clip_by_value(tf.round(image), 0.0, 255.0)
    return tf.io.encode_png(tf.cast(image, tf.uint8))


def _per_image(values, keys, seed, corrupt, by_position=True):
    """`corrupt(pixels float [H, W, 3], seed) -> pixels` on every encoded
    image of `values` (any shape, `""` kept), re-encoded as PNG."""
    values = tf.convert_to_tensor(values, tf.string)
    seeds = _element_seeds(values, keys, seed, by_position)

    def one(data, element_seed):
        return tf.cond(
            tf.strings.length(data) > 0,
            lambda: _encode_pixels(corrupt(_decode_pixels(data), element_seed)),
            lambda: data,
        )

    return _map_elements(one, values, seeds, tf.string)


def gaussian_noise(values, level, seed=0, keys=None):
    """Adds Gaussian pixel noise of σ = level·128 to encoded images.

    Args:
        values: string tensor of JPEG/PNG bytes, any shape (`""` kept).
        level: float in 0..1. 0 returns `values` unchanged.
        seed: int. The draws' seed.
        keys: optional int64 row keys (`row_keys`) of the leading
            dimensions of `values`; defaults to each image's content hash.

    Returns:
        A string tensor of PNG bytes, the shape of `values`.

    Example:
    >>> noisy = gaussian_noise(tf.constant([png]), 0.5, seed=1)
    """
    level = _check_level(level, "gaussian_noise")
    if level == 0:
        return values

    def corrupt(image, element_seed):
        noise = tf.random.stateless_normal(tf.shape(image), element_seed)
        return image + noise * (level * 128.0)

    return _per_image(values, keys, seed, corrupt)


def _gaussian_kernel(sigma, radius):
    x = tf.cast(tf.range(-radius, radius + 1), tf.float32)
    kernel = tf.exp(-0.5 * tf.square(x / sigma))
    return kernel / tf.reduce_sum(kernel)


def blur(values, level, seed=0, keys=None):
    """Gaussian blur of σ = level·S/8 pixels (S = the shorter side) of
    encoded images (separable, reflected edges, radius 3σ). No randomness:
    `seed` and `keys` are accepted for a uniform signature.

    Args:
        values: string tensor of JPEG/PNG bytes, any shape (`""` kept).
        level: float in 0..1. 0 returns `values` unchanged.
        seed: int. Unused.
        keys: Unused.

    Returns:
        A string tensor of PNG bytes, the shape of `values`.
    """
    level = _check_level(level, "blur")
    if level == 0:
        return values

    def corrupt(image, element_seed):
        del element_seed
        shape = tf.shape(image)
        side = tf.minimum(shape[0], shape[1])
        sigma = tf.maximum(level * tf.cast(side, tf.float32) / 8.0, 1e-3)
        radius = tf.minimum(
            tf.cast(tf.math.ceil(3.0 * sigma), tf.int32), side - 1
        )
        kernel = _gaussian_kernel(sigma, radius)
        padded = tf.pad(
            image[None],
            [[0, 0], [radius, radius], [radius, radius], [0, 0]],
            mode="REFLECT",
        )
        rows = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, 3, 1])
        columns = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, 3, 1])
        out = tf.nn.depthwise_conv2d(padded, rows, [1, 1, 1, 1], "VALID")
        out = tf.nn.depthwise_conv2d(out, columns, [1, 1, 1, 1], "VALID")
        return out[0]

    return _per_image(values, keys, seed, corrupt)


def occlusion_box(height, width, level, element_seed):
    """The occluding rectangle of `occlusion`: `(top, left, box height,
    box width)`, int32 scalars; sides `round(sqrt(level) · side)`, placed
    uniformly by `element_seed`."""
    scale = float(np.sqrt(level))
    box_h = tf.cast(tf.round(scale * tf.cast(height, tf.float32)), tf.int32)
    box_w = tf.cast(tf.round(scale * tf.cast(width, tf.float32)), tf.int32)
    u = tf.random.stateless_uniform([2], element_seed)
    top = tf.cast(
        tf.floor(u[0] * tf.cast(height - box_h + 1, tf.float32)), tf.int32
    )
    left = tf.cast(
        tf.floor(u[1] * tf.cast(width - box_w + 1, tf.float32)), tf.int32
    )
    return (
        tf.minimum(top, height - box_h),
        tf.minimum(left, width - box_w),
        box_h,
        box_w,
    )


def occlusion(values, level, seed=0, keys=None):
    """Covers `level` of each encoded image's area with 128 gray.

    The rectangle has the image's aspect ratio (a square on square images)
    and a position drawn from `seed` and the row key (the image's content
    hash by default), so every frame of a video row is covered at the same
    place.

    Args:
        values: string tensor of JPEG/PNG bytes, any shape (`""` kept).
        level: float in 0..1. 0 returns `values` unchanged.
        seed: int. The position's seed.
        keys: optional int64 row keys of the leading dimensions of
            `values`.

    Returns:
        A string tensor of PNG bytes, the shape of `values`.
    """
    level = _check_level(level, "occlusion")
    if level == 0:
        return values

    def corrupt(image, element_seed):
        shape = tf.shape(image)
        top, left, box_h, box_w = occlusion_box(
            shape[0], shape[1], level, element_seed
        )
        rows = tf.range(shape[0])[:, None]
        columns = tf.range(shape[1])[None, :]
        inside = (
            (rows >= top)
            & (rows < top + box_h)
            & (columns >= left)
            & (columns < left + box_w)
        )
        return tf.where(inside[:, :, None], GRAY, image)

    return _per_image(values, keys, seed, corrupt, by_position=False)


# ----------------------------------------------------------------- text --


def word_dropout(values, level, seed=0, keys=None):
    """Drops each whitespace-separated word with probability `level` (the
    kept words are joined by single spaces; level 1 gives `""`).

    Args:
        values: string tensor of texts, any shape.
        level: float in 0..1. 0 returns `values` unchanged.
        seed: int. The draws' seed.
        keys: optional int64 row keys of the leading dimensions of
            `values`; defaults to each text's content hash.

    Returns:
        A string tensor, the shape of `values`.
    """
    level = _check_level(level, "word_dropout")
    if level == 0:
        return values
    values = tf.convert_to_tensor(values, tf.string)

    def one(text, element_seed):
        words = tf.strings.split(text)
        keep = tf.random.stateless_uniform(tf.shape(words), element_seed)
        kept = tf.boolean_mask(words, keep >= level)
        return tf.strings.reduce_join(kept, separator=" ")

    seeds = _element_seeds(values, keys, seed)
    return _map_elements(one, values, seeds, tf.string)


def typos(values, level, seed=0, keys=None):
    """Replaces each letter (any script) by a random lowercase ASCII letter
    with probability `level / 2`; the length in characters is kept.
    Invalid UTF-8 is replaced by U+FFFD first.

    Args:
        values: string tensor of texts, any shape.
        level: float in 0..1. 0 returns `values` unchanged.
        seed: int. The draws' seed.
        keys: optional int64 row keys of the leading dimensions of
            `values`; defaults to each text's content hash.

    Returns:
        A string tensor, the shape of `values`.
    """
    level = _check_level(level, "typos")
    if level == 0:
        return values
    values = tf.convert_to_tensor(values, tf.string)
    letters = tf.constant(list(LOWERCASE))

    def one(text, element_seed):
        characters = tf.strings.unicode_split(text, "UTF-8", errors="replace")
        is_letter = tf.strings.regex_full_match(characters, r"\pL")
        draws = tf.random.stateless_uniform(
            tf.stack([tf.size(characters), 2]), element_seed
        )
        replace = is_letter & (draws[:, 0] < level / 2)
        index = tf.minimum(
            tf.cast(draws[:, 1] * len(LOWERCASE), tf.int32), len(LOWERCASE) - 1
        )
        characters = tf.where(replace, tf.gather(letters, index), characters)
        return tf.strings.reduce_join(characters)

    seeds = _element_seeds(values, keys, seed)
    return _map_elements(one, values, seeds, tf.string)


# ---------------------------------------------------------------- audio --


def audio_noise(
    values, level, seed=0, keys=None, sample_rate=16000, num_samples=16000
):
    """Adds white noise of standard deviation level·2·RMS to WAV clips.

    Each WAV is decoded as the model reads it (`decode_wav`: mono,
    `sample_rate`, cropped or padded to `num_samples`), noised, clipped to
    -1..1 and re-encoded as 16-bit WAV at `sample_rate`. The SNR is
    -20·log10(2·level) dB: -6 dB at level 1. `""` (missing) stays `""`.

    Args:
        values: string tensor of WAV bytes, any shape.
        level: float in 0..1. 0 returns `values` unchanged.
        seed: int. The draws' seed.
        keys: optional int64 row keys of the leading dimensions of
            `values`; defaults to each clip's content hash.
        sample_rate: int. The audio spec's sample rate.
        num_samples: int. The audio spec's samples per clip.

    Returns:
        A string tensor of WAV bytes, the shape of `values`.
    """
    level = _check_level(level, "noise")
    if level == 0:
        return values
    values = tf.convert_to_tensor(values, tf.string)
    sample_rate, num_samples = int(sample_rate), int(num_samples)

    def one(data, element_seed):
        def noisy():
            samples = decode_wav(data, sample_rate, num_samples)
            rms = tf.sqrt(tf.reduce_mean(tf.square(samples)))
            noise = tf.random.stateless_normal([num_samples], element_seed)
            samples = tf.clip_by_value(
                samples + noise * (2.0 * level * rms), -1.0, 1.0
            )
            return tf.audio.encode_wav(samples[:, None], sample_rate)

        return tf.cond(tf.strings.length(data) > 0, noisy, lambda: data)

    seeds = _element_seeds(values, keys, seed)
    return _map_elements(one, values, seeds, tf.string)


# -------------------------------------------------------------- missing --


def _as_missable(values):
    """`values` as floats (NaN = missing) or strings (`""` = missing):
    integer cells become their decimal text."""
    values = tf.convert_to_tensor(values)
    if values.dtype.is_floating or values.dtype == tf.string:
        return values
    return tf.strings.as_string(values)


def _missing_like(values):
    if values.dtype == tf.string:
        return tf.fill(tf.shape(values), tf.constant("", tf.string))
    return tf.fill(tf.shape(values), tf.constant(np.nan, values.dtype))


def missing(values, level, seed=0, keys=None):
    """Makes each value missing with probability `level`: NaN for numbers
    (readings, numeric cells), `""` for strings (categorical and
    multi-valued cells); integers become strings first.

    Args:
        values: tensor of raw values, any shape.
        level: float in 0..1. 0 returns `values` unchanged, 1 all missing.
        seed: int. The draws' seed.
        keys: optional int64 row keys of the leading dimensions of
            `values` (each reading of a row gets its own draw); defaults
            to each value's content hash.

    Returns:
        A tensor the shape of `values`.
    """
    level = _check_level(level, "missing")
    if level == 0:
        return values
    values = _as_missable(values)
    draws = hashed_uniform(_element_seeds(values, keys, seed))
    draws = tf.reshape(draws, tf.shape(values))
    return tf.where(draws < level, _missing_like(values), values)


def hashed_uniform(seeds):
    """One uniform draw in [0, 1) per seed pair `[N, 2]`, vectorized: the
    FarmHash fingerprint (`tf.fingerprint`) of each pair, 24 bits of it.

    `missing` draws one number per table cell; a stateless random op per
    cell (`tf.map_fn`) would cost more than the evaluation on a large
    table, and these draws depend on the same seeds, batching aside.
    """
    octets = tf.cast(tf.fingerprint(tf.cast(seeds, tf.int64))[:, :3], tf.int32)
    bits = octets[:, 0] + octets[:, 1] * 256 + octets[:, 2] * 65536
    return tf.cast(bits, tf.float32) / float(1 << 24)


def removed(values, level=1.0, seed=0, keys=None):
    """Every value missing: `""` for strings (texts, WAVs, cells, every
    frame of a clip), NaN for numbers. `level`, `seed` and `keys` are
    ignored (a uniform signature)."""
    del level, seed, keys
    return _missing_like(_as_missable(values))


CORRUPTIONS = {
    "image": ("gaussian_noise", "blur", "occlusion"),
    "video": ("gaussian_noise", "blur", "occlusion"),
    "text": ("word_dropout", "typos"),
    "audio": ("noise",),
    "sensor": ("missing",),
    "numeric": ("missing",),
    "categorical": ("missing",),
}
"""Corruption names of each modality kind (the rows of a robustness
report, besides `removed`)."""

REMOVABLE_KINDS = ("video", "text", "audio", "sensor", "numeric", "categorical")
"""Kinds with a missing value, which `removed` can take away (an image
input has none in these models)."""

_FUNCTIONS = {
    "gaussian_noise": gaussian_noise,
    "blur": blur,
    "occlusion": occlusion,
    "word_dropout": word_dropout,
    "typos": typos,
    "noise": audio_noise,
    "missing": missing,
    REMOVED: removed,
}


def make_corruption(name, level, seed=0, spec=None):
    """The corruption `name` at `level` as `fn(values, keys=None)`.

    Args:
        name: str. A name of `CORRUPTIONS` or `removed`.
        level: float in 0..1.
        seed: int. The draws' seed.
        spec: the input's spec: an `AudioSpec` gives `noise` its sample
            rate and length.

    Returns:
        A callable `fn(values, keys=None) -> values`.

    Example:
    >>> fn = make_corruption("word_dropout", 0.5, seed=3)
    >>> fn(tf.constant(["no fever today"]))
    """
    if name not in _FUNCTIONS:
        raise ValueError(
            f"unknown corruption {name!r}; valid: {', '.join(_FUNCTIONS)}"
        )
    level = _check_level(level, name)
    extra = {}
    if name == "noise" and spec is not None:
        extra = {
            "sample_rate": int(spec.sample_rate),
            "num_samples": int(spec.num_samples),
        }
    return functools.partial(
        _FUNCTIONS[name], level=level, seed=int(seed), **extra
    )


# ------------------------------------------------------------ modalities --


@dataclasses.dataclass(frozen=True)
class Modality:
    """One row group of a robustness report: raw inputs corrupted together.

    Attributes:
        name: str. The input's name; for tabular models `numeric`,
            `categorical` (categorical and multi-valued columns) or a text
            column's name.
        kind: str. `image`, `video`, `text`, `audio`, `sensor`, `numeric`,
            `categorical` or `vector` (a precomputed embedding: none).
        inputs: tuple of str. Its raw input names.
        specs: tuple. The spec of each input (`mmzoo.specs`).
    """

    name: str
    kind: str
    inputs: tuple
    specs: tuple = ()

    @property
    def corruptions(self):
        """The corruption names of this kind (`CORRUPTIONS`)."""
        return CORRUPTIONS.get(self.kind, ())

    @property
    def has_missing_value(self):
        return self.kind in REMOVABLE_KINDS


_TABULAR_GROUPS = {
    "numeric": "numeric",
    "categorical": "categorical",
    "multi_value": "categorical",
    "vector": "vector",
}


def input_modalities(preprocessor):
    """The modalities of a preprocessor's raw inputs, in input order.

    A `Preprocessor` (`specs`) gives one per spec; a
    `TabularPreprocessor` (`features`) groups numeric columns as
    `numeric`, categorical and multi-valued ones as `categorical`, vector
    ones as `vector`, and gives each text column its own; a
    `CaptionPreprocessor` (`images`) has one `image` input.

    Raises:
        ValueError: a preprocessor of none of these kinds.
    """
    if hasattr(preprocessor, "features"):
        groups = {}
        for feature in preprocessor.features:
            group = _TABULAR_GROUPS.get(feature.kind)
            name = group or feature.name
            kind = group or feature.kind
            names, specs = groups.setdefault(name, (kind, [], []))[1:]
            names.append(feature.name)
            specs.append(feature)
        return tuple(
            Modality(name, kind, tuple(names), tuple(specs))
            for name, (kind, names, specs) in groups.items()
        )
    if hasattr(preprocessor, "specs"):
        return tuple(
            Modality(spec.name, spec.kind, (spec.name,), (spec,))
            for spec in preprocessor.specs
        )
    if hasattr(preprocessor, "images"):
        return (Modality("image", "image", ("image",)),)
    raise ValueError(
        f"{type(preprocessor).__name__}: not a preprocessor with specs, "
        "features or images; cannot tell its raw inputs"
    )


def inner_ranks(preprocessor):
    """Dict of raw input name to the rank of one row's value (the length
    of its spec's `serving_shape`; 0 for a captioner's image)."""
    ranks = {}
    for modality in input_modalities(preprocessor):
        for name, spec in zip(modality.inputs, modality.specs or (None,)):
            shape = getattr(spec, "serving_shape", ())
            ranks[name] = len(shape)
    return ranks


# --------------------------------------------------------------- wrapper --


class _CorruptedProcessor:
    """A processor whose input is corrupted first."""

    def __init__(self, processor, corrupt, inner_rank):
        self._processor = processor
        self._corrupt = corrupt
        self._inner_rank = inner_rank

    def __call__(self, values, *args, **kwargs):
        values = tf.convert_to_tensor(values)
        keys = row_keys({"x": values}, {"x": self._inner_rank})
        values = self._corrupt(values, keys=keys)
        return self._processor(values, *args, **kwargs)

    def __getattr__(self, name):
        processor = self.__dict__.get("_processor")
        if processor is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(processor, name)


class CorruptedInputs:
    """A preprocessor whose named raw inputs are corrupted before it runs.

    Covers the three entry points tasks feed raw values through:
    `wrapped(raw)` corrupts the named entries of the dict, then calls the
    preprocessor; `wrapped.processors[name](values)` and
    `wrapped.images(values)` (a captioner's `image`) corrupt their values
    first. Everything else (specs, serving options, detokenize, ...) is
    the wrapped preprocessor's.

    Row keys (`row_keys`) seed the draws: in `wrapped(raw)` the hash of
    every raw input of the row, so two rows sharing one value (a
    categorical cell, a templated text) draw independently; on the other
    two entry points the value's own content hash.

    Args:
        inner: the preprocessor (`Preprocessor`, `TabularPreprocessor` or
            `CaptionPreprocessor`).
        corruptions: dict of raw input name to `fn(values, keys=None)`
            (`make_corruption`).

    Example:
    >>> wrapped = CorruptedInputs(
    ...     prepared.preprocessor,
    ...     {"report": make_corruption("word_dropout", 0.5, seed=0)})
    >>> task.evaluate(model, dataclasses.replace(
    ...     prepared, preprocessor=wrapped), "test", 32)
    """

    def __init__(self, inner, corruptions):
        self._inner = inner
        self._corruptions = dict(corruptions)
        self._ranks = inner_ranks(inner)
        unknown = sorted(set(self._corruptions) - set(self._ranks))
        if unknown:
            raise ValueError(
                f"CorruptedInputs: unknown input(s) {', '.join(unknown)}; "
                f"valid: {', '.join(self._ranks)}"
            )

    @property
    def inner(self):
        """The wrapped preprocessor."""
        return self._inner

    @property
    def corruptions(self):
        """Dict of input name to its corruption."""
        return dict(self._corruptions)

    def __call__(self, raw, *args, **kwargs):
        raw = dict(raw)
        present = [name for name in self._corruptions if name in raw]
        if present:
            keys = row_keys(raw, self._ranks)
            for name in present:
                values = tf.convert_to_tensor(raw[name])
                raw[name] = self._corruptions[name](values, keys=keys)
        return self._inner(raw, *args, **kwargs)

    @property
    def processors(self):
        """The wrapped preprocessor's processors, corrupted ones wrapped."""
        return {
            name: (
                _CorruptedProcessor(
                    processor, self._corruptions[name], self._ranks[name]
                )
                if name in self._corruptions
                else processor
            )
            for name, processor in self._inner.processors.items()
        }

    def images(self, values, *args, **kwargs):
        """The captioner's image decoding, `image` corrupted first."""
        if "image" in self._corruptions:
            values = tf.convert_to_tensor(values)
            keys = row_keys({"image": values}, {"image": 0})
            values = self._corruptions["image"](values, keys=keys)
        return self._inner.images(values, *args, **kwargs)

    def __getattr__(self, name):
        inner = self.__dict__.get("_inner")
        if inner is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(inner, name)
