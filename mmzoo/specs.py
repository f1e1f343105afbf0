"""Modality specs: the single description of every model input.

A spec names one input and says what a client sends for it (its raw
serving dtype and shape), what the model receives after preprocessing (its
model dtype and shape), what a missing value is, and how to make dummy
values of both for tests. Specs are plain frozen dataclasses so that model
files (backend-agnostic, no TensorFlow) can build `keras.Input`s from them;
their TensorFlow half (fitting on the train split and the in-graph
preprocessing shared by `tf.data` and serving) is
`mmzoo.data.modalities`, looked up by the spec's `kind`.

Kinds:

- `ImageSpec`: encoded JPEG/PNG bytes, `string []` per row → float32
  `[size, size, 3]` pixels in 0..255. Every row must hold an image.
- `TextSpec`: text, `string []` per row → int32 `[max_length]` token ids,
  0 = padding. `""` is a missing text (all ids 0: a masked modality).
- `AudioSpec`: 16-bit PCM WAV bytes, `string []` per row → float32
  `[num_samples]` mono samples in -1..1 at the spec's sample rate
  (resampled, mixed down, cropped or zero-padded). `""` is a missing
  audio: a row of NaN (a masked modality).
- `VideoSpec`: a clip's encoded frames (JPEG/PNG), `string [F]` per row
  for any F (`""` = padding) → float32 `[num_frames, size, size, 3]`
  pixels; `num_frames` are taken uniformly from a longer clip, and
  padding frames are NaN (a clip of padding only is a masked modality).
- `SensorSpec`: a vector of readings (sensors, metadata), `float32 [D]`
  per row, passed through; NaN (or ±inf) is a missing reading, a row of
  them a missing modality. Fitting records each reading's train-split
  mean and standard deviation, which the model standardizes with.
- `FeatureSpec`: one tabular column (categorical, numeric, multi-valued,
  text or a precomputed vector) as DeepFM and the CTR readers use it.

Float model inputs mark what is missing with NaN (numeric features, audio
rows, video frames); the model layers turn NaN into a mask and zeros.

Token ids are the same for every vocabulary in mmzoo: 0 = padding /
missing, 1 = out-of-vocabulary, then the kept tokens.
"""

import dataclasses
import struct
import zlib

import numpy as np

PAD_ID = 0
OOV_ID = 1

TEXT_TOKENIZERS = ("word", "wordpiece")
FEATURE_KINDS = ("categorical", "numeric", "multi_value", "text", "vector")

_DUMMY_WORDS = (
    "left upper lobe opacity fever cough smoker chest pain mild severe "
    "a red circle above the blue square small large green triangle"
).split()


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """An image input: encoded bytes in, resized RGB pixels out.

    Attributes:
        name: str. Input name (model input, `tf.data` key, serving key).
            Defaults to `"image"`.
        size: int. Height and width of the model input. Defaults to 224.
    """

    name: str = "image"
    size: int = 224
    kind: str = "image"

    def __post_init__(self):
        _check_kind(self, "image")
        if int(self.size) < 1:
            raise ValueError(
                f"image spec '{self.name}': size must be >= 1, got {self.size}"
            )

    @property
    def serving_dtype(self):
        return "string"

    @property
    def serving_shape(self):
        """Shape of one row of the raw serving input (batch excluded)."""
        return ()

    @property
    def input_shape(self):
        """Shape of one row of the model input (batch excluded)."""
        return (self.size, self.size, 3)

    @property
    def input_dtype(self):
        return "float32"

    def dummy_input(self, batch_size, seed=0):
        """Random model input: float32 pixels in 0..255."""
        rng = np.random.default_rng(seed)
        shape = (batch_size, *self.input_shape)
        return rng.uniform(0, 255, shape).astype("float32")

    def dummy_raw(self, batch_size, seed=0):
        """Random raw input: PNG bytes of random pictures (an `object`
        array, as a client sends them)."""
        rng = np.random.default_rng(seed)
        side = max(8, min(self.size, 64))
        pictures = rng.integers(0, 256, (batch_size, side, side, 3), "uint8")
        return np.array([encode_png(p) for p in pictures], dtype=object)


@dataclasses.dataclass(frozen=True)
class TextSpec:
    """A text input: strings in, padded token ids out.

    Attributes:
        name: str. Input name. Defaults to `"text"`.
        max_length: int. Token ids per row (`[CLS]`/`[SEP]` included for
            WordPiece); longer texts are cut. Defaults to 128.
        vocabulary_size: int. Token ids, padding (0) and OOV (1) included:
            the cap when fitted on training texts, then the fitted size.
            Defaults to 20000.
        tokenizer: str. `word` (lowercased words split on anything but
            letters and digits, looked up in a vocabulary of the training
            texts) or `wordpiece` (BERT-style WordPiece with `[CLS]` and
            `[SEP]`; the vocabulary is computed from the training texts,
            or is the preset's). Defaults to `word`.
        min_count: int. Training words seen fewer times map to OOV, so the
            OOV embedding is trained. Defaults to 2.
        preset: str. A keras-hub preset (Kaggle handle or local folder)
            whose tokenizer is used instead of a fitted vocabulary; implies
            `wordpiece`. Defaults to `""` (none).
    """

    name: str = "text"
    max_length: int = 128
    vocabulary_size: int = 20000
    tokenizer: str = "word"
    min_count: int = 2
    preset: str = ""
    kind: str = "text"

    def __post_init__(self):
        _check_kind(self, "text")
        if self.tokenizer not in TEXT_TOKENIZERS:
            raise ValueError(
                f"text spec '{self.name}': unknown tokenizer "
                f"{self.tokenizer!r}; valid: {', '.join(TEXT_TOKENIZERS)}"
            )
        if int(self.max_length) < 1:
            raise ValueError(
                f"text spec '{self.name}': max_length must be >= 1, got "
                f"{self.max_length}"
            )
        if int(self.vocabulary_size) < 2:
            raise ValueError(
                f"text spec '{self.name}': vocabulary_size must be >= 2 "
                f"(padding + OOV), got {self.vocabulary_size}"
            )

    @property
    def serving_dtype(self):
        return "string"

    @property
    def serving_shape(self):
        return ()

    @property
    def input_shape(self):
        return (self.max_length,)

    @property
    def input_dtype(self):
        return "int32"

    def dummy_input(self, batch_size, seed=0):
        """Random token ids, the last row all padding (a missing text)."""
        rng = np.random.default_rng(seed)
        ids = rng.integers(
            1, self.vocabulary_size, (batch_size, *self.input_shape)
        )
        lengths = rng.integers(1, self.max_length + 1, batch_size)
        ids[np.arange(self.max_length)[None, :] >= lengths[:, None]] = PAD_ID
        if batch_size > 1:
            ids[-1] = PAD_ID
        return ids.astype("int32")

    def dummy_raw(self, batch_size, seed=0):
        """Random sentences of a small word list, the last one empty."""
        rng = np.random.default_rng(seed)
        texts = [
            " ".join(rng.choice(_DUMMY_WORDS, rng.integers(1, 12)))
            for _ in range(batch_size)
        ]
        if batch_size > 1:
            texts[-1] = ""
        return np.array(texts, dtype=object)


@dataclasses.dataclass(frozen=True)
class AudioSpec:
    """An audio input: WAV bytes in, a fixed-length mono waveform out.

    Attributes:
        name: str. Input name. Defaults to `"audio"`.
        sample_rate: int. Samples per second of the model input; a WAV at
            another rate is resampled (in `tf.data` and in serving alike).
            Defaults to 16000.
        seconds: float. Clip length: longer audio is cropped to its first
            `seconds`, shorter audio padded with silence. Defaults to 1.0.
    """

    name: str = "audio"
    sample_rate: int = 16000
    seconds: float = 1.0
    kind: str = "audio"

    def __post_init__(self):
        _check_kind(self, "audio")
        if not 1000 <= int(self.sample_rate) <= MAX_SAMPLE_RATE:
            raise ValueError(
                f"audio spec '{self.name}': sample_rate must be within "
                f"1000..{MAX_SAMPLE_RATE}, got {self.sample_rate}"
            )
        if not 0 < float(self.seconds) <= 600:
            raise ValueError(
                f"audio spec '{self.name}': seconds must be within 0..600, "
                f"got {self.seconds}"
            )

    @property
    def num_samples(self):
        """Samples per row of the model input."""
        return max(1, round(float(self.seconds) * int(self.sample_rate)))

    @property
    def serving_dtype(self):
        return "string"

    @property
    def serving_shape(self):
        return ()

    @property
    def input_shape(self):
        return (self.num_samples,)

    @property
    def input_dtype(self):
        return "float32"

    def dummy_input(self, batch_size, seed=0):
        """Random noise and tones in -1..1; row 1 is missing (NaN) when
        there are 3 rows or more."""
        rng = np.random.default_rng(seed)
        samples = _dummy_waveforms(rng, batch_size, self.num_samples, self)
        if batch_size > 2:
            samples[1] = np.nan
        return samples

    def dummy_raw(self, batch_size, seed=0):
        """WAV bytes of random noise and tones at the spec's rate; row 1 is
        `""` (missing) when there are 3 rows or more."""
        rng = np.random.default_rng(seed)
        samples = _dummy_waveforms(rng, batch_size, self.num_samples, self)
        values = [encode_wav(row, self.sample_rate) for row in samples]
        if batch_size > 2:
            values[1] = b""
        return np.array(values, dtype=object)


def _dummy_waveforms(rng, batch_size, num_samples, spec):
    time = np.arange(num_samples) / float(spec.sample_rate)
    pitch = rng.uniform(100, spec.sample_rate / 4, (batch_size, 1))
    tone = 0.3 * np.sin(2 * np.pi * pitch * time[None, :])
    noise = rng.normal(0, 0.05, (batch_size, num_samples))
    return np.clip(tone + noise, -1, 1).astype("float32")


@dataclasses.dataclass(frozen=True)
class VideoSpec:
    """A video input: a clip's encoded frames in, sampled pixels out.

    Attributes:
        name: str. Input name. Defaults to `"frames"`.
        num_frames: int. Frames per clip of the model input (T): a clip
            with more frames gives T taken uniformly over it, one with
            fewer is padded. Defaults to 8.
        size: int. Height and width of each frame. Defaults to 112.
    """

    name: str = "frames"
    num_frames: int = 8
    size: int = 112
    kind: str = "video"

    def __post_init__(self):
        _check_kind(self, "video")
        if int(self.num_frames) < 1 or int(self.size) < 1:
            raise ValueError(
                f"video spec '{self.name}': num_frames and size must be "
                f">= 1, got {self.num_frames} and {self.size}"
            )

    @property
    def serving_dtype(self):
        return "string"

    @property
    def serving_shape(self):
        """Any number of frames per row (`""` = padding)."""
        return (None,)

    @property
    def input_shape(self):
        return (self.num_frames, self.size, self.size, 3)

    @property
    def input_dtype(self):
        return "float32"

    def dummy_input(self, batch_size, seed=0):
        """Random pixels; the first row's last frame is padding (NaN) and
        the last row is all padding (a missing video)."""
        rng = np.random.default_rng(seed)
        shape = (batch_size, *self.input_shape)
        frames = rng.uniform(0, 255, shape).astype("float32")
        if self.num_frames > 1:
            frames[0, -1] = np.nan
        if batch_size > 1:
            frames[-1] = np.nan
        return frames

    def dummy_raw(self, batch_size, seed=0):
        """PNG frames of random sizes, `num_frames + 2` columns: row 0 has
        more frames than T, row 1 (when there are 3 rows or more) fewer
        (padded with `""`), and the last row is all padding."""
        rng = np.random.default_rng(seed)
        width = int(self.num_frames) + 2
        rows = []
        for row in range(batch_size):
            count = width
            if row == 1 and batch_size > 2:
                count = max(1, int(self.num_frames) // 2)
            if row == batch_size - 1 and batch_size > 1:
                count = 0
            side = int(rng.integers(8, max(9, min(self.size, 48) + 1)))
            frames = [
                encode_png(rng.integers(0, 256, (side, side + f % 3, 3)))
                for f in range(count)
            ]
            rows.append(frames + [b""] * (width - count))
        return np.array(rows, dtype=object).reshape(batch_size, width)


@dataclasses.dataclass(frozen=True)
class SensorSpec:
    """A numeric vector input (sensor readings): floats in, floats out.

    Attributes:
        name: str. Input name. Defaults to `"sensors"`.
        dimension: int. Readings per row (D). Defaults to 8.
        mean: tuple of float. Train-split mean of each reading (fitted;
            `()` = 0).
        std: tuple of float. Train-split standard deviation of each reading
            (fitted; `()` = 1).
    """

    name: str = "sensors"
    dimension: int = 8
    mean: tuple = ()
    std: tuple = ()
    kind: str = "sensor"

    def __post_init__(self):
        _check_kind(self, "sensor")
        if int(self.dimension) < 1:
            raise ValueError(
                f"sensor spec '{self.name}': dimension must be >= 1, got "
                f"{self.dimension}"
            )
        for field in ("mean", "std"):
            value = tuple(float(v) for v in getattr(self, field))
            if value and len(value) != int(self.dimension):
                raise ValueError(
                    f"sensor spec '{self.name}': {field} has {len(value)} "
                    f"values for dimension {self.dimension}"
                )
            object.__setattr__(self, field, value)

    @property
    def serving_dtype(self):
        return "float32"

    @property
    def serving_shape(self):
        return (int(self.dimension),)

    @property
    def input_shape(self):
        return (int(self.dimension),)

    @property
    def input_dtype(self):
        return "float32"

    def dummy_input(self, batch_size, seed=0):
        """Normal readings around the fitted statistics; the first row has
        a missing reading (NaN), the last (of 2 or more) none at all."""
        rng = np.random.default_rng(seed)
        mean = np.asarray(self.mean or 0.0, np.float32)
        std = np.asarray(self.std or 1.0, np.float32)
        shape = (batch_size, int(self.dimension))
        values = (rng.normal(0, 1, shape) * std + mean).astype("float32")
        values[0, 0] = np.nan
        if batch_size > 1:
            values[-1] = np.nan
        return values

    def dummy_raw(self, batch_size, seed=0):
        """As `dummy_input`: readings are served as they are."""
        return self.dummy_input(batch_size, seed)


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One raw tabular column and how the model embeds it.

    Feature names become model input names, `tf.data` keys and serving
    signature keys.

    Attributes:
        name: str. Column name.
        kind: str. One of `categorical` (one value; model input int32 `[B]`
            ids), `numeric` (float32 `[B]`, NaN = missing), `multi_value`
            (`"a|b|c"`; int32 `[B, max_length]` ids, 0 = padding), `text`
            (words; int32 `[B, max_length]` ids) or `vector` (a precomputed
            embedding, e.g. of an image; float32 `[B, dimension]`).
        vocabulary_size: int. Number of ids (0 = missing/padding, 1 = OOV),
            for the id kinds. With `hash_buckets`, `hash_buckets + 2`.
        hash_buckets: int. If > 0, ids come from hashing the value into this
            many buckets instead of a vocabulary.
        max_length: int. Tokens kept for `multi_value` and `text`.
        combiner: str. Pooling of `multi_value`/`text` embeddings: `mean` or
            `sum`.
        mean: float. Training-split mean of a `numeric` feature.
        std: float. Training-split standard deviation of a `numeric` feature.
        dimension: int. Width of a `vector` feature.
    """

    name: str
    kind: str
    vocabulary_size: int = 0
    hash_buckets: int = 0
    max_length: int = 1
    combiner: str = "mean"
    mean: float = 0.0
    std: float = 1.0
    dimension: int = 0

    def __post_init__(self):
        if self.kind not in FEATURE_KINDS:
            raise ValueError(
                f"feature '{self.name}': unknown kind '{self.kind}'; valid: "
                f"{', '.join(FEATURE_KINDS)}"
            )
        if self.hash_buckets and not self.vocabulary_size:
            object.__setattr__(self, "vocabulary_size", self.hash_buckets + 2)
        if self.kind in ("categorical", "multi_value", "text") and (
            self.vocabulary_size < 2
        ):
            raise ValueError(
                f"feature '{self.name}': vocabulary_size must be >= 2 "
                f"(padding + OOV), got {self.vocabulary_size}"
            )
        if self.kind == "vector" and self.dimension < 1:
            raise ValueError(
                f"feature '{self.name}': a vector feature needs dimension "
                f">= 1, got {self.dimension}"
            )

    @property
    def serving_dtype(self):
        return "float32" if self.kind in ("numeric", "vector") else "string"

    @property
    def serving_shape(self):
        return (self.dimension,) if self.kind == "vector" else ()

    @property
    def input_shape(self):
        if self.kind in ("multi_value", "text"):
            return (self.max_length,)
        if self.kind == "vector":
            return (self.dimension,)
        return ()

    @property
    def input_dtype(self):
        return "float32" if self.kind in ("numeric", "vector") else "int32"

    def dummy_input(self, batch_size, seed=0):
        rng = np.random.default_rng(seed)
        shape = (batch_size, *self.input_shape)
        if self.kind == "numeric":
            values = rng.normal(self.mean, self.std, shape).astype("float32")
            values[-1:] = np.nan  # a missing value
            return values
        if self.kind == "vector":
            return rng.normal(0, 1, shape).astype("float32")
        return rng.integers(0, self.vocabulary_size, shape).astype("int32")

    def dummy_raw(self, batch_size, seed=0):
        rng = np.random.default_rng(seed)
        if self.kind in ("numeric", "vector"):
            return self.dummy_input(batch_size, seed)
        words = [f"{self.name}_{i}" for i in range(8)]
        if self.kind == "categorical":
            values = list(rng.choice(words, batch_size))
        else:
            separator = "|" if self.kind == "multi_value" else " "
            values = [
                separator.join(rng.choice(words, rng.integers(1, 4)))
                for _ in range(batch_size)
            ]
        values[-1] = ""  # a missing value
        return np.array(values, dtype=object)


def _check_kind(spec, kind):
    if spec.kind != kind:
        raise ValueError(
            f"{type(spec).__name__} '{spec.name}': kind must be {kind!r}, "
            f"got {spec.kind!r}"
        )


def spec_from_dict(values):
    """Rebuilds a modality spec from its `dataclasses.asdict` form (lists
    become tuples); a spec passes through unchanged."""
    if not isinstance(values, dict):
        return values
    kind = values.get("kind")
    if kind not in MODALITY_KINDS:
        raise ValueError(
            f"modality spec {values!r}: unknown kind {kind!r}; valid: "
            f"{', '.join(MODALITY_KINDS)}"
        )
    return MODALITY_KINDS[kind](**values)


def encode_png(pixels):
    """Encodes uint8 `[H, W, 3]` pixels as PNG bytes (NumPy + zlib only)."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))

    def chunk(tag, data):
        body = tag + data
        return (
            struct.pack(">I", len(data))
            + body
            + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def encode_wav(samples, sample_rate, channels=1):
    """Encodes samples as 16-bit PCM WAV bytes (NumPy + struct only).

    Args:
        samples: float array in -1..1 (clipped) or int16 array; `[N]`, or
            `[N, channels]` interleaved for several channels.
        sample_rate: int. Samples per second.
        channels: int. Channels of `[N]` samples repeated, or of the
            columns of `[N, channels]`. Defaults to 1.
    """
    samples = np.asarray(samples)
    if samples.dtype != np.int16:
        samples = np.clip(np.nan_to_num(samples.astype(np.float64)), -1, 1)
        samples = np.round(samples * 32767).astype(np.int16)
    if samples.ndim == 1 and channels > 1:
        samples = np.repeat(samples[:, None], channels, axis=1)
    data = samples.astype("<i2").tobytes()
    block = 2 * int(channels)
    fmt = struct.pack(
        "<HHIIHH", 1, channels, sample_rate, sample_rate * block, block, 16
    )
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


MAX_SAMPLE_RATE = 192000
"""Highest WAV sample rate read (the decode reads at most `seconds` of
audio at this rate, so a long file costs no more than a short one)."""

MODALITY_KINDS = {
    "image": ImageSpec,
    "text": TextSpec,
    "audio": AudioSpec,
    "video": VideoSpec,
    "sensor": SensorSpec,
}
"""Spec type of each modality kind a multimodal model can declare."""


def model_inputs(specs):
    """`keras.Input`s named and shaped after `specs`, as a dict."""
    import keras

    return {
        spec.name: keras.Input(
            spec.input_shape, dtype=spec.input_dtype, name=spec.name
        )
        for spec in specs
    }


def dummy_inputs(specs, batch_size, seed=0):
    """Dict of dummy model inputs for `specs` (NumPy)."""
    return {
        spec.name: spec.dummy_input(batch_size, seed + i)
        for i, spec in enumerate(specs)
    }


def dummy_raw_inputs(specs, batch_size, seed=0):
    """Dict of dummy raw client values for `specs` (NumPy)."""
    return {
        spec.name: spec.dummy_raw(batch_size, seed + i)
        for i, spec in enumerate(specs)
    }
