"""Hand-made WAV headers for tests of bad audio (any format and size)."""

import struct


def make_wav_header(rate, channels, bits, audio_format, data_size):
    """A canonical 44-byte WAV header (`fmt ` then `data`) declaring
    `data_size` bytes of samples; the caller appends (or omits) them."""
    fmt = struct.pack(
        "<HHIIHH",
        audio_format,
        channels,
        rate,
        rate * channels * bits // 8,
        channels * bits // 8,
        bits,
    )
    return (
        b"RIFF"
        + struct.pack("<I", (36 + data_size) & 0xFFFFFFFF)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data_size)
    )
