"""WAV decoding shared by the training pipelines and serving signatures.

`decode_wavs` turns a `[B]` batch of WAV bytes into float32 `[B, N]`
mono waveforms at the spec's sample rate, in stock TensorFlow ops only:

```
WAV bytes ─► header checks ─► tf.audio.decode_wav (at most `seconds` read)
          ─► mix channels down ─► resample (windowed sinc) ─► crop / pad
```

- `""` is a missing audio: a row of NaN (the model masks it).
- A WAV at another sample rate is resampled in the graph, in training and
  in serving alike (band-limited interpolation with a Hann-windowed sinc,
  its cut-off at the lower of the two Nyquist frequencies); nothing is
  refused for its rate, up to `mmzoo.specs.MAX_SAMPLE_RATE`.
- Stereo (any channel count) is averaged to mono.
- Longer audio is cropped to its first `seconds` (a WAV of an hour costs
  what one of `seconds` costs: the decoder reads no more), shorter audio is
  padded with silence.
- Bytes that are not a RIFF/WAVE file, a WAV that is not 16-bit PCM
  (8-bit, 24-bit, float), a rate above the maximum and a truncated file
  fail with InvalidArgument naming the input and the row.
"""

import math
import os

import numpy as np
import tensorflow as tf

from mmzoo.specs import MAX_SAMPLE_RATE

AUTOTUNE = tf.data.AUTOTUNE
# Bytes searched for the `fmt ` and `data` chunk headers.
HEADER_SEARCH_BYTES = 4096
# Half-width of the resampling filter, in samples of the lower rate.
RESAMPLE_HALF_WIDTH = 16
_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# The data size a streaming writer (ffmpeg to a pipe) leaves: "until EOF".
_STREAMED_SIZE = 0xFFFFFFFF
_BYTES = [bytes([i]) for i in range(256)]


def _u16(data, offset):
    raw = tf.strings.substr(data, offset, 2)
    return tf.cast(
        tf.io.decode_raw(raw, tf.uint16, little_endian=True)[0], tf.int64
    )


def _u32(data, offset):
    low = _u16(data, offset)
    high = _u16(data, offset + 2)
    return low + high * 65536


def wav_header(data):
    """Parses a WAV file's `fmt ` chunk with string ops.

    Returns:
        dict of scalar int64 tensors `format`, `channels`, `rate`, `bits`
        and the bools `is_wav` (RIFF/WAVE magic and a `fmt ` chunk
        present) and `complete` (the `fmt ` fields and a `data` chunk are
        there), and `data_declared` / `data_present`, the `data` chunk's
        size as its header says and the bytes that follow it.
        The numbers are 0 when the bytes are too short to hold them.
    """
    # Chunk headers sit at the front: search the first bytes only (the
    # rest may be an hour of samples). Zero padding keeps every field
    # readable (as 0) in a short file.
    front = tf.strings.substr(data, 0, HEADER_SEARCH_BYTES)
    padded = front + b"\0" * 32
    is_wav = tf.logical_and(
        tf.equal(tf.strings.substr(padded, 0, 4), b"RIFF"),
        tf.equal(tf.strings.substr(padded, 8, 4), b"WAVE"),
    )
    parts = tf.strings.split(front, sep="fmt ", maxsplit=1)
    is_wav = tf.logical_and(is_wav, tf.size(parts) > 1)
    offset = tf.cast(tf.strings.length(parts[0]), tf.int64) + 8
    length = tf.cast(tf.strings.length(data), tf.int64)
    complete = offset + 16 <= length
    body = tf.strings.substr(padded, tf.minimum(offset, length), 16)
    # The `data` chunk's declared size against the bytes that follow it.
    before_data = tf.strings.split(front, sep="data", maxsplit=1)
    data_at = tf.cast(tf.strings.length(before_data[0]), tf.int64) + 4
    declared = _u32(
        tf.strings.substr(padded, tf.minimum(data_at, length), 4), 0
    )
    present = tf.maximum(length - data_at - 4, 0)
    complete = tf.logical_and(complete, tf.size(before_data) > 1)
    return {
        "is_wav": is_wav,
        "complete": complete,
        "data_at": data_at,
        "data_declared": declared,
        "data_present": present,
        "format": _u16(body, 0),
        "channels": _u16(body, 2),
        "rate": _u32(body, 4),
        "bits": _u16(body, 14),
    }


def _check_header(header, row, name):
    """Asserts a readable 16-bit PCM WAV, one check after the other (so
    the first failing one is reported); returns the last assert op."""
    pcm = tf.logical_or(
        tf.equal(header["format"], _WAVE_FORMAT_PCM),
        tf.equal(header["format"], _WAVE_FORMAT_EXTENSIBLE),
    )
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
    downsampling does not alias). Equal rates copy the samples.

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

    def copy():
        kept = samples[:num_samples]
        return tf.pad(kept, [[0, num_samples - tf.shape(kept)[0]]])

    def interpolate():
        step = rate_in / rate_out_f  # input samples per output sample
        cutoff = tf.minimum(
            tf.constant(1.0, tf.float64), 1.0 / step
        )  # in input-rate Nyquist units
        half = tf.cast(tf.math.ceil(RESAMPLE_HALF_WIDTH / cutoff), tf.int64)
        length = tf.cast(tf.shape(samples)[0], tf.int64)
        positions = tf.range(num_samples, dtype=tf.float64) * step
        base = tf.cast(tf.floor(positions), tf.int64)
        taps = tf.range(-half + 1, half + 1, dtype=tf.int64)
        index = base[:, None] + taps[None, :]
        # Positions need float64 (an hour of samples); the short distances
        # and weights do not.
        distance = tf.cast(
            positions[:, None] - tf.cast(index, tf.float64), tf.float32
        )
        width = tf.cast(half, tf.float32)
        window = 0.5 + 0.5 * tf.cos(
            math.pi * tf.clip_by_value(distance / width, -1.0, 1.0)
        )
        band = tf.cast(cutoff, tf.float32)
        x = math.pi * band * distance
        safe = tf.where(tf.abs(x) < 1e-6, tf.ones_like(x), x)
        sinc = tf.where(tf.abs(x) < 1e-6, tf.ones_like(x), tf.sin(safe) / safe)
        weights = band * sinc * window
        inside = tf.logical_and(index >= 0, index < length)
        values = tf.gather(
            samples, tf.clip_by_value(index, 0, tf.maximum(length - 1, 0))
        )
        values = tf.where(inside, values, tf.zeros_like(values))
        return tf.reduce_sum(values * weights, axis=1)

    def silence():  # a WAV without samples: nothing to interpolate
        return tf.zeros([num_samples], tf.float32)

    length = tf.shape(samples)[0]
    return tf.cond(
        tf.equal(rate_in, rate_out_f),
        copy,
        lambda: tf.cond(length > 0, interpolate, silence),
    )


def _le32(value):
    """A non-negative int64 scalar as 4 little-endian bytes (a string)."""
    shifts = tf.constant([0, 8, 16, 24], tf.int64)
    octets = tf.bitwise.bitwise_and(
        tf.bitwise.right_shift(value, shifts), tf.constant(255, tf.int64)
    )
    return tf.strings.reduce_join(tf.gather(tf.constant(_BYTES), octets))


def read_wav(data, seconds, row=0, name="audio", reach=0):
    """Checks and decodes the first `seconds` of one WAV (scalar string,
    not `""`) at its own rate: `(mono float32 [L], rate int64)`, plus
    `reach` samples past them when the file has them.

    Only those samples are decoded: the `data` chunk is cut to them (and
    its size field rewritten) before `tf.audio.decode_wav`, so an
    hour-long WAV costs what a short one does, and a streamed WAV (data
    size "until the end") reads too. Failures name `name` and `row`."""
    header = wav_header(data)
    rate = header["rate"]
    frame_bytes = header["channels"] * 2
    needed = tf.cast(
        tf.math.ceil(tf.cast(rate, tf.float64) * seconds), tf.int64
    ) + tf.cast(reach, tf.int64)
    available = tf.minimum(header["data_declared"], header["data_present"])
    keep = (
        tf.minimum(available // tf.maximum(frame_bytes, 1), needed)
        * frame_bytes
    )
    at = header["data_at"]
    with tf.control_dependencies([_check_header(header, row, name)]):
        cut = tf.strings.join(
            [
                tf.strings.substr(data, tf.zeros_like(at), at),
                _le32(keep),
                tf.strings.substr(data, at + 4, keep),
            ]
        )
        audio, _ = tf.audio.decode_wav(cut)
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
    """Decodes the first `seconds` of every WAV file once (`read_wav`);
    raises `ValueError` naming bad files.

    `""` (missing audio) is skipped. As `validate_image_files`: parallel
    decode, failures dropped, the first one decoded again for its message.
    """
    paths = [os.fspath(p) for p in paths if p]
    if not paths:
        return

    def check(index, path):
        # Decoding is the check; resampling the samples would add nothing.
        mono, _ = read_wav(tf.io.read_file(path), seconds, 0, path)
        return index, tf.reduce_sum(mono)

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
        check(0, tf.constant(path))
        reason = "failed to decode"
    except tf.errors.OpError as error:
        reason = error.message.strip().splitlines()[0]
    others = ""
    if len(bad) > 1:
        others = ", also " + ", ".join(paths[i] for i in bad[1:4])
        others += " ..." if len(bad) > 4 else ""
    raise ValueError(
        f"{where}: audio file {path} cannot be read as a 16-bit PCM WAV "
        f"({reason}); {len(bad)} of {len(paths)} audio files are bad{others}"
    )
