"""WAV decoding shared by the training pipelines and serving signatures.

`decode_wavs` turns a `[B]` batch of WAV bytes into float32 `[B, N]`
mono waveforms at the spec's sample rate, in stock TensorFlow ops only:

```
WAV bytes ─► walk the chunks, check the format ─► cut `seconds` of samples
          ─► tf.audio.decode_wav ─► mix channels down
          ─► resample (windowed sinc) ─► crop / pad
```

- `""` is a missing audio: a row of NaN (the model masks it).
- A WAV at another sample rate is resampled in the graph, in training and
  in serving alike (band-limited interpolation with a Hann-windowed sinc,
  its cut-off at the lower of the two Nyquist frequencies); nothing is
  refused for its rate, up to `mmzoo.specs.MAX_SAMPLE_RATE`.
- Stereo (any channel count) is averaged to mono.
- Longer audio is cropped to its first `seconds` (only those samples are
  decoded: a WAV of an hour decodes what one of `seconds` does, though its
  bytes are still read), shorter audio is padded with silence.
- Extra chunks (LIST, JUNK, bext) before the samples,
  WAVE_FORMAT_EXTENSIBLE and streamed WAVs (data size "until the end",
  as ffmpeg writes to a pipe) read.
- Bytes that are not a RIFF/WAVE file, a WAV that is not 16-bit PCM
  (8-bit, 24-bit, float), a rate above the maximum and a truncated file
  fail with InvalidArgument naming the input and the row.
"""

import math

import numpy as np
import tensorflow as tf

from mmzoo.specs import MAX_SAMPLE_RATE

# Chunks walked before `data` (fmt, LIST, JUNK, bext, ...) at most.
MAX_CHUNKS = 64
# Output samples resampled at a time (bounds the filter's memory).
RESAMPLE_BLOCK = 4096
# Half-width of the resampling filter, in samples of the lower rate.
RESAMPLE_HALF_WIDTH = 16
_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# The data size a streaming writer (ffmpeg to a pipe) leaves: "until EOF".
_STREAMED_SIZE = 0xFFFFFFFF
_BYTES = [bytes([i]) for i in range(256)]


def _read(data, offset, size):
    """`size` bytes of `data` at `offset`, zero-padded past its end (only
    those bytes are copied, however long `data` is)."""
    length = tf.cast(tf.strings.length(data), tf.int64)
    start = tf.minimum(tf.cast(offset, tf.int64), length)
    part = tf.strings.substr(data, start, tf.constant(size, tf.int64))
    return tf.strings.substr(part + b"\0" * size, 0, size)


def _u16(data, offset):
    raw = _read(data, offset, 2)
    return tf.cast(
        tf.io.decode_raw(raw, tf.uint16, little_endian=True)[0], tf.int64
    )


def _u32(data, offset):
    return (
        _u16(data, offset) + _u16(data, tf.cast(offset, tf.int64) + 2) * 65536
    )


def wav_header(data):
    """Parses a WAV file's chunk list with string ops.

    The chunks after `RIFF....WAVE` are walked by their size fields (odd
    sizes padded, at most `MAX_CHUNKS`), reading 8 bytes per chunk, until
    `data`: other chunks (LIST, JUNK, bext, ...) may come first.

    Returns:
        dict of scalar tensors: int64 `format` (1 = PCM; the SubFormat's
        code for WAVE_FORMAT_EXTENSIBLE), `channels`, `rate`, `bits`,
        `data_at` (offset of the samples), `data_declared` / `data_present`
        (the `data` chunk's size as its header says, and the bytes after
        it); bool `is_wav` (RIFF/WAVE magic and a `fmt ` chunk) and
        `complete` (its fields and a `data` chunk header are there). The
        numbers are 0 when the bytes are too short to hold them.
    """
    length = tf.cast(tf.strings.length(data), tf.int64)
    magic = tf.logical_and(
        tf.equal(_read(data, 0, 4), b"RIFF"),
        tf.equal(_read(data, 8, 4), b"WAVE"),
    )
    none = tf.constant(-1, tf.int64)

    def more(offset, fmt_at, data_at, count):
        return tf.logical_and(
            tf.logical_and(data_at < 0, offset + 8 <= length),
            count < MAX_CHUNKS,
        )

    def step(offset, fmt_at, data_at, count):
        chunk = _read(data, offset, 4)
        size = _u32(data, offset + 4)
        is_fmt = tf.logical_and(tf.equal(chunk, b"fmt "), fmt_at < 0)
        fmt_at = tf.where(is_fmt, offset + 8, fmt_at)
        data_at = tf.where(tf.equal(chunk, b"data"), offset + 8, data_at)
        following = offset + 8 + size + tf.math.floormod(size, 2)
        return following, fmt_at, data_at, count + 1

    _, fmt_at, data_at, _ = tf.while_loop(
        more,
        step,
        (tf.constant(12, tf.int64), none, none, tf.constant(0, tf.int64)),
        maximum_iterations=MAX_CHUNKS,
    )
    fmt = tf.maximum(fmt_at, 0)
    audio_format = _u16(data, fmt)
    extensible = tf.equal(audio_format, _WAVE_FORMAT_EXTENSIBLE)
    # WAVE_FORMAT_EXTENSIBLE names the real format in its SubFormat GUID.
    audio_format = tf.where(extensible, _u16(data, fmt + 24), audio_format)
    fields_end = fmt + tf.where(
        extensible, tf.constant(26, tf.int64), tf.constant(16, tf.int64)
    )
    return {
        "is_wav": tf.logical_and(magic, fmt_at >= 0),
        "complete": tf.logical_and(fields_end <= length, data_at >= 0),
        "data_at": tf.maximum(data_at, 0),
        "data_declared": _u32(data, tf.maximum(data_at - 4, 0)),
        "data_present": tf.maximum(length - tf.maximum(data_at, 0), 0),
        "format": audio_format,
        "channels": _u16(data, fmt + 2),
        "rate": _u32(data, fmt + 4),
        "bits": _u16(data, fmt + 14),
    }


def _check_header(header, row, name):
    """Asserts a readable 16-bit PCM WAV, one check after the other (so
    the first failing one is reported); returns the last assert op."""
    pcm = tf.equal(header["format"], _WAVE_FORMAT_PCM)
    checks = [
        lambda: tf.debugging.Assert(
            header["is_wav"],
            [name, ": row", row, "is not a WAV file (no RIFF/WAVE header)"],
        ),
        lambda: tf.debugging.Assert(
            header["complete"],
            [name, ": row", row, "is a truncated WAV file (header cut)"],
        ),
        lambda: tf.debugging.Assert(
            tf.logical_or(
                header["data_declared"] <= header["data_present"],
                tf.equal(header["data_declared"], _STREAMED_SIZE),
            ),
            [
                name,
                ": row",
                row,
                "is a truncated WAV file: its data chunk declares",
                header["data_declared"],
                "bytes,",
                header["data_present"],
                "are present",
            ],
        ),
        lambda: tf.debugging.Assert(
            tf.logical_and(pcm, tf.equal(header["bits"], 16)),
            [
                name,
                ": row",
                row,
                "is a WAV of format",
                header["format"],
                "with",
                header["bits"],
                "bits per sample; only 16-bit PCM WAV is read (convert "
                "with: ffmpeg -i IN -acodec pcm_s16le OUT.wav)",
            ],
        ),
        lambda: tf.debugging.Assert(
            tf.logical_and(
                tf.logical_and(header["rate"] > 0, header["channels"] > 0),
                header["rate"] <= MAX_SAMPLE_RATE,
            ),
            [
                name,
                ": row",
                row,
                "has sample rate",
                header["rate"],
                "and",
                header["channels"],
                f"channels; expected 1..{MAX_SAMPLE_RATE} Hz and at least "
                "one channel",
            ],
        ),
    ]
    op = checks[0]()
    for check in checks[1:]:
        with tf.control_dependencies([op]):
            op = check()
    return op


def resample(samples, rate_in, rate_out, num_samples):
    """Resamples a mono waveform and crops or pads it to `num_samples`.

    Band-limited interpolation: each output sample is a Hann-windowed sinc
    sum over the input samples within `RESAMPLE_HALF_WIDTH` periods of the
    lower rate, the sinc's cut-off at the lower Nyquist frequency (so
    downsampling does not alias). Equal rates copy the samples. Output is
    computed `RESAMPLE_BLOCK` samples at a time, so memory stays near
    `RESAMPLE_BLOCK * taps` floats (taps = 2 * half-width * max(1,
    rate_in / rate_out)) whatever the clip length.

    Args:
        samples: float32 `[L]`.
        rate_in: scalar int64 tensor or int. Rate of `samples`.
        rate_out: int. Rate of the output.
        num_samples: int. Output length (zeros past the input's end).

    Returns:
        float32 `[num_samples]`.
    """
    rate_in = tf.cast(rate_in, tf.float64)
    rate_out_f = tf.constant(float(rate_out), tf.float64)
    length = tf.shape(samples, out_type=tf.int64)[0]
    blocks = -(-num_samples // RESAMPLE_BLOCK)

    def copy():
        kept = samples[:num_samples]
        return tf.pad(kept, [[0, num_samples - tf.shape(kept)[0]]])

    def interpolate():
        step = rate_in / rate_out_f  # input samples per output sample
        cutoff = tf.minimum(tf.constant(1.0, tf.float64), 1.0 / step)
        half = tf.cast(tf.math.ceil(RESAMPLE_HALF_WIDTH / cutoff), tf.int64)
        taps = tf.range(-half + 1, half + 1, dtype=tf.int64)
        offsets = tf.cast(taps, tf.float32)
        width = tf.cast(half, tf.float32)
        band = tf.cast(cutoff, tf.float32)

        def block(start):
            outputs = start + tf.range(RESAMPLE_BLOCK, dtype=tf.int64)
            # Positions need float64 (an hour of samples); the distances
            # to the taps (under `half`) and the weights do not.
            positions = tf.cast(outputs, tf.float64) * step
            base = tf.floor(positions)
            fraction = tf.cast(positions - base, tf.float32)
            distance = fraction[:, None] - offsets[None, :]
            window = 0.5 + 0.5 * tf.cos(
                math.pi * tf.clip_by_value(distance / width, -1.0, 1.0)
            )
            x = math.pi * band * distance
            safe = tf.where(tf.abs(x) < 1e-6, tf.ones_like(x), x)
            sinc = tf.where(
                tf.abs(x) < 1e-6, tf.ones_like(x), tf.sin(safe) / safe
            )
            index = tf.cast(base, tf.int64)[:, None] + taps[None, :]
            inside = tf.logical_and(index >= 0, index < length)
            values = tf.gather(
                samples, tf.clip_by_value(index, 0, tf.maximum(length - 1, 0))
            )
            values = tf.where(inside, values, tf.zeros_like(values))
            return tf.reduce_sum(values * (band * sinc * window), axis=1)

        starts = tf.range(blocks, dtype=tf.int64) * RESAMPLE_BLOCK
        out = tf.map_fn(
            block,
            starts,
            fn_output_signature=tf.TensorSpec([RESAMPLE_BLOCK], tf.float32),
            parallel_iterations=1,
        )
        return tf.reshape(out, [-1])[:num_samples]

    def silence():  # a WAV without samples: nothing to interpolate
        return tf.zeros([num_samples], tf.float32)

    return tf.cond(
        tf.equal(rate_in, rate_out_f),
        copy,
        lambda: tf.cond(length > 0, interpolate, silence),
    )


def _little_endian(value, size):
    """A non-negative int64 scalar as `size` little-endian bytes."""
    shifts = tf.range(size, dtype=tf.int64) * 8
    octets = tf.bitwise.bitwise_and(
        tf.bitwise.right_shift(value, shifts), tf.constant(255, tf.int64)
    )
    return tf.strings.reduce_join(tf.gather(tf.constant(_BYTES), octets))


def read_wav(data, seconds, row=0, name="audio", reach=0):
    """Checks and decodes the first `seconds` of one WAV (scalar string,
    not `""`) at its own rate: `(mono float32 [L], rate int64)`, plus
    `reach` samples past them when the file has them.

    Only those samples are decoded: they are cut out of the `data` chunk
    and given a plain 44-byte PCM header built from the parsed fields
    before `tf.audio.decode_wav` (which reads only that canonical form),
    so extensible-format WAVs, extra chunks and streamed WAVs (data size
    "until the end") read, and an hour-long WAV decodes no more than a
    short one (its bytes are still read). Failures name `name` and
    `row`."""
    header = wav_header(data)
    rate, channels = header["rate"], header["channels"]
    frame_bytes = channels * 2
    needed = tf.cast(
        tf.math.ceil(tf.cast(rate, tf.float64) * seconds), tf.int64
    ) + tf.cast(reach, tf.int64)
    available = tf.minimum(header["data_declared"], header["data_present"])
    keep = (
        tf.minimum(available // tf.maximum(frame_bytes, 1), needed)
        * frame_bytes
    )
    with tf.control_dependencies([_check_header(header, row, name)]):
        canonical = tf.strings.join(
            [
                b"RIFF",
                _little_endian(36 + keep, 4),
                b"WAVEfmt ",
                _little_endian(tf.constant(16, tf.int64), 4),
                _little_endian(tf.constant(_WAVE_FORMAT_PCM, tf.int64), 2),
                _little_endian(channels, 2),
                _little_endian(rate, 4),
                _little_endian(rate * frame_bytes, 4),
                _little_endian(frame_bytes, 2),
                _little_endian(tf.constant(16, tf.int64), 2),
                b"data",
                _little_endian(keep, 4),
                tf.strings.substr(data, header["data_at"], keep),
            ]
        )
        audio, _ = tf.audio.decode_wav(canonical)
    return tf.reduce_mean(audio, axis=1), rate


def decode_wav(data, sample_rate, num_samples, row=0, name="audio"):
    """Decodes one WAV (scalar string) to float32 `[num_samples]` mono at
    `sample_rate` (`read_wav`, then `resample`); `""` gives NaN (missing).
    See the module docstring."""

    def missing():
        return tf.fill([num_samples], tf.constant(np.nan, tf.float32))

    def present():
        rate = wav_header(data)["rate"]
        # The resampling filter reads this far past the last output sample.
        ratio = tf.cast(rate, tf.float64) / float(sample_rate)
        reach = RESAMPLE_HALF_WIDTH * tf.math.ceil(tf.maximum(ratio, 1.0)) + 2
        mono, rate = read_wav(
            data, num_samples / float(sample_rate), row, name, reach
        )
        return resample(mono, rate, sample_rate, num_samples)

    return tf.cond(tf.equal(tf.strings.length(data), 0), missing, present)


def decode_wavs(batch, sample_rate, num_samples, name="audio"):
    """Decodes a `[B]` batch of WAV bytes to float32 `[B, num_samples]`;
    every failure names `name` (the ops are scoped under it) and the row."""
    scope = name if isinstance(name, str) and name.isidentifier() else None
    with tf.name_scope(scope or "decode_wavs"):
        rows = tf.range(tf.shape(batch, out_type=tf.int64)[0])
        return tf.map_fn(
            lambda args: decode_wav(
                args[1], sample_rate, num_samples, args[0], name
            ),
            (rows, batch),
            fn_output_signature=tf.TensorSpec([num_samples], tf.float32),
            # Rows decode a few at a time: each holds its decoded samples.
            parallel_iterations=4,
        )


def crop_or_pad(waveforms, num_samples):
    """Float `[B, L]` samples (any L) → `[B, num_samples]`: cropped to the
    first `num_samples`, or padded with zeros. A row holding any NaN stays
    all NaN (a missing audio)."""
    waveforms = tf.convert_to_tensor(waveforms, tf.float32)
    kept = waveforms[:, :num_samples]
    padded = tf.pad(kept, [[0, 0], [0, num_samples - tf.shape(kept)[1]]])
    missing = tf.reduce_any(tf.math.is_nan(waveforms), axis=1, keepdims=True)
    return tf.where(missing, tf.constant(np.nan, tf.float32), padded)


def validate_audio_files(paths, where, seconds=1.0):
    """Decodes the first `seconds` of every WAV file once (`read_wav`, no
    resampling: decoding is the check); raises `ValueError` naming bad
    files (`mmzoo.data.images.validate_files`). `""` (missing audio) is
    skipped."""
    from mmzoo.data.images import validate_files

    validate_files(
        [p for p in paths if p],
        where,
        lambda path: read_wav(tf.io.read_file(path), seconds, 0, path)[0],
        ("audio file", "a 16-bit PCM WAV"),
    )
