"""Audio and video preprocessing: the decoders `tf.data` and serving share
(`mmzoo.data.audio`, `mmzoo.data.video`) and their processors."""

import struct
import wave

import numpy as np
import pytest
import tensorflow as tf

from mmzoo.data.audio import (
    crop_or_pad,
    decode_wavs,
    validate_audio_files,
    wav_header,
)
from mmzoo.data.modalities import Preprocessor
from mmzoo.data.video import decode_clips, frame_indices, sample_frames
from mmzoo.specs import AudioSpec, VideoSpec, encode_png, encode_wav
from mmzoo.tasks.classification import checked_waveforms
from tests.wav import make_wav_header


@pytest.fixture(scope="module")
def decode():
    """`decode(values, rate, samples)` in a `tf.function` (as serving)."""
    functions = {}

    def run(values, rate=8000, samples=8000):
        key = (rate, samples)
        if key not in functions:
            functions[key] = tf.function(
                lambda x: decode_wavs(x, rate, samples)
            )
        return functions[key](tf.constant(values, tf.string)).numpy()

    return run


def _tone(freq, rate, seconds, amplitude=0.5):
    time = np.arange(int(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * freq * time)


def test_encode_wav_is_read_by_the_wave_module(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(encode_wav(_tone(440, 8000, 0.5), 8000, channels=2))
    with wave.open(str(path)) as f:
        assert (f.getframerate(), f.getnchannels(), f.getsampwidth()) == (
            8000,
            2,
            2,
        )
        assert f.getnframes() == 4000


def test_same_rate_decodes_exactly_and_pads(decode):
    samples = np.round(_tone(440, 8000, 0.5) * 32767) / 32767
    out = decode([encode_wav(samples, 8000)])[0]
    assert out.shape == (8000,)
    np.testing.assert_allclose(out[:4000], samples, atol=1e-4)
    assert np.all(out[4000:] == 0)  # half a second of silence appended


def test_longer_audio_is_cropped_to_its_start(decode):
    samples = np.concatenate([_tone(300, 8000, 1.0), -_tone(300, 8000, 2.0)])
    out = decode([encode_wav(samples, 8000)])[0]
    np.testing.assert_allclose(out, samples[:8000], atol=1e-4)


def test_other_rates_are_resampled_without_aliasing(decode):
    # 440 Hz survives 16 kHz -> 8 kHz and 6 kHz -> 8 kHz; 6 kHz (above the
    # 4 kHz Nyquist frequency of 8 kHz) is filtered out, not folded.
    want = _tone(440, 8000, 1.0)
    for rate in (16000, 6000, 44100):
        out = decode([encode_wav(_tone(440, rate, 1.2), rate)])[0]
        np.testing.assert_allclose(out[50:-50], want[50:-50], atol=2e-3)
    alias = decode([encode_wav(_tone(6000, 16000, 1.2), 16000)])[0]
    assert np.sqrt(np.mean(alias[100:-100] ** 2)) < 1e-3


def test_stereo_is_mixed_down(decode):
    left, right = _tone(440, 8000, 1.0), _tone(880, 8000, 1.0, 0.25)
    stereo = np.stack([left, right], axis=1)
    out = decode([encode_wav(stereo, 8000, channels=2)])[0]
    np.testing.assert_allclose(out, (left + right) / 2, atol=1e-4)


def test_missing_audio_is_nan_and_an_empty_batch_works(decode):
    out = decode([b"", encode_wav(_tone(440, 8000, 1), 8000)])
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()
    assert decode(np.zeros((0,), object)).shape == (0, 8000)


def test_streamed_wav_without_sizes_reads(decode):
    good = encode_wav(_tone(440, 8000, 1), 8000)
    streamed = (
        (good[:4] + struct.pack("<I", 0xFFFFFFFF) + good[8:40])
        + struct.pack("<I", 0xFFFFFFFF)
        + good[44:]
    )
    np.testing.assert_allclose(decode([streamed]), decode([good]))


def test_a_long_wav_decodes_only_what_the_clip_needs(decode):
    # Ten minutes of stereo at 44.1 kHz: the data chunk is cut before the
    # decoder, so only ~1 s is decoded (the output is its first second).
    rng = np.random.default_rng(0)
    noise = rng.uniform(-0.5, 0.5, (44100 * 600, 2)).astype(np.float32)
    out = decode([encode_wav(noise, 44100, channels=2)])[0]
    first = decode([encode_wav(noise[: 44100 * 2], 44100, channels=2)])[0]
    np.testing.assert_allclose(out, first, atol=1e-6)


@pytest.mark.parametrize(
    "label, data, message",
    [
        ("junk", b"not a wav at all", "is not a WAV file"),
        ("short", b"RI", "is not a WAV file"),
        ("header cut", None, "truncated WAV file (header cut)"),
        ("data cut", None, "truncated WAV file: its data chunk declares"),
        (
            "8-bit",
            make_wav_header(8000, 1, 8, 1, 8) + bytes(8),
            "with] [8] [bits",
        ),
        ("float", make_wav_header(8000, 1, 32, 3, 8) + bytes(8), "format] [3]"),
        (
            "rate 0",
            make_wav_header(0, 1, 16, 1, 8) + bytes(8),
            "has sample rate] [0]",
        ),
    ],
)
def test_bad_wavs_fail_naming_input_and_row(decode, label, data, message):
    good = encode_wav(_tone(440, 8000, 1), 8000)
    if label == "header cut":
        data = good[:30]
    if label == "data cut":
        data = good[:3000]
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        decode([good, data])
    text = str(error.value)
    assert "[audio] [: row] [1]" in text, text[-500:]
    assert message in text, text[-500:]


def test_wav_header_fields():
    header = wav_header(tf.constant(encode_wav(np.zeros(10), 22050, 2)))
    got = {k: int(v) for k, v in header.items()}
    assert got["rate"] == 22050 and got["channels"] == 2
    assert got["bits"] == 16 and got["format"] == 1 and got["is_wav"]
    assert got["data_declared"] == got["data_present"] == 40


def test_validate_audio_files_names_the_bad_file(tmp_path):
    good = tmp_path / "good.wav"
    good.write_bytes(encode_wav(_tone(440, 8000, 1), 8000))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(make_wav_header(8000, 1, 8, 1, 8) + bytes(8))
    validate_audio_files([str(good), ""], "clips", 1.0)
    with pytest.raises(ValueError, match=r"clips: audio file .*bad\.wav"):
        validate_audio_files([str(good), str(bad)], "clips", 1.0)


def test_crop_or_pad_and_checked_waveforms():
    rows = np.array([[0.1, 0.2, 0.3], [np.nan, 0.0, 0.0]], np.float32)
    out = crop_or_pad(rows, 5).numpy()
    np.testing.assert_allclose(out[0], [0.1, 0.2, 0.3, 0, 0])
    assert np.isnan(out[1]).all()
    np.testing.assert_allclose(crop_or_pad(rows[:1], 2).numpy(), [[0.1, 0.2]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="waveform"):
        checked_waveforms(np.array([[np.inf, 0.0]], np.float32), 4, "waveform")
    with pytest.raises(tf.errors.InvalidArgumentError, match="32768"):
        checked_waveforms(np.array([[1000.0, 0.0]], np.float32), 4, "waveform")


# ----------------------------------------------------------------- video --


@pytest.mark.parametrize("count", [0, 1, 3, 4, 5, 9, 300])
def test_frame_sampling_matches_its_numpy_twin(count):
    row = tf.constant([f"f{i}" for i in range(count)] + ["", ""])
    got = [v.decode() for v in sample_frames(row, 4).numpy()]
    want = [f"f{i}" for i in frame_indices(count, 4)]
    assert got == want + [""] * (4 - len(want))


def test_padding_between_frames_is_dropped():
    row = tf.constant(["", "a", "", "b"])
    assert list(sample_frames(row, 3).numpy()) == [b"a", b"b", b""]


def test_clips_decode_to_fixed_frames_with_nan_padding():
    rng = np.random.default_rng(0)
    frames = [
        encode_png(rng.integers(0, 256, (h, w, 3)))
        for h, w in ((5, 9), (20, 3), (8, 8))
    ]
    clips = np.array([frames + [b""], [b""] * 4], dtype=object)
    out = tf.function(lambda x: decode_clips(x, 4, 16))(tf.constant(clips))
    out = out.numpy()
    assert out.shape == (2, 4, 16, 16, 3)
    assert np.isfinite(out[0, :3]).all() and np.isnan(out[0, 3]).all()
    assert np.isnan(out[1]).all()  # all padding: a missing video


def test_corrupt_frame_fails_naming_the_input():
    frame = encode_png(np.zeros((8, 8, 3), np.uint8))
    clips = np.array([[frame, b"junk frame"]], dtype=object)
    with pytest.raises(tf.errors.InvalidArgumentError, match="frames"):
        tf.function(lambda x: decode_clips(x, 4, 16))(tf.constant(clips))


def test_preprocessor_runs_audio_and_video_specs():
    specs = (AudioSpec(sample_rate=8000, seconds=0.5), VideoSpec("clip", 3, 16))
    pre = Preprocessor(specs, "unused")
    raw = {"audio": specs[0].dummy_raw(3), "clip": specs[1].dummy_raw(3)}
    out = pre(raw)
    assert out["audio"].shape == (3, 4000)
    assert out["clip"].shape == (3, 3, 16, 16, 3)
    assert np.isnan(out["audio"].numpy()[1]).all()  # the missing row
    assert np.isnan(out["clip"].numpy()[2]).all()  # all padding


# --------------------------------------------------------------- sensors --


def test_sensor_fit_and_processor(tmp_path):
    from mmzoo.data.modalities import fit_spec
    from mmzoo.specs import SensorSpec

    rows = [(1.0, 10.0, np.nan), (3.0, 10.0, np.nan), (2.0, 10.0, np.nan)]
    spec = fit_spec(SensorSpec(dimension=1), rows, str(tmp_path))
    assert spec.dimension == 3
    np.testing.assert_allclose(spec.mean, [2.0, 10.0, 0.0])
    # A constant reading and one never seen get std 1.
    np.testing.assert_allclose(spec.std, [np.sqrt(2 / 3), 1.0, 1.0])
    pre = Preprocessor([spec], str(tmp_path))
    out = pre({"sensors": np.array([[1, np.inf, 2]], np.float32)})
    assert np.isnan(out["sensors"].numpy()[0, 1])
    any_width = tf.function(
        lambda x: pre.processors["sensors"](x),
        input_signature=[tf.TensorSpec([None, None], tf.float32)],
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="sensors"):
        any_width(tf.zeros([2, 5], tf.float32))


def _chunk(tag, body):
    pad = b"\0" if len(body) % 2 else b""
    return tag + struct.pack("<I", len(body)) + body + pad


def _riff(*chunks):
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_chunks_are_walked_not_searched(decode):
    samples = _tone(440, 8000, 1.0)
    plain = encode_wav(samples, 8000)
    fmt = plain[12:36]
    data = plain[36:]
    want = decode([plain])
    # "data" inside a LIST comment, an odd-sized chunk (padded), JUNK of
    # 5000 bytes before the samples: the same samples.
    odd = _chunk(b"LIST", b"INFOICMT metadata here, odd")
    variants = {
        "LIST first": _riff(odd, fmt, data),
        "JUNK between": _riff(fmt, _chunk(b"JUNK", bytes(5000)), data),
        "LIST after fmt": _riff(fmt, odd, data),
    }
    for label, wav in variants.items():
        np.testing.assert_allclose(decode([wav]), want, err_msg=label)


def test_extensible_format_reads_and_its_subformat_is_checked(decode):
    samples = _tone(440, 8000, 1.0)
    plain = encode_wav(samples, 8000)

    # WAVE_FORMAT_EXTENSIBLE: cbSize 22, valid bits, channel mask and the
    # SubFormat GUID, whose first two bytes are the real format.
    def extensible(code):
        fields = struct.pack("<HHIIHH", 0xFFFE, 1, 8000, 16000, 2, 16)
        extra = struct.pack("<HHI", 22, 16, 4) + struct.pack("<H", code)
        extra += bytes(14)
        return _riff(_chunk(b"fmt ", fields + extra), plain[36:])

    np.testing.assert_allclose(decode([extensible(1)]), decode([plain]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="format] \\[3"):
        decode([extensible(3)])  # float samples
