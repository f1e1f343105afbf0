"""One contract every registered model meets (STYLE.md §8), through the
shipped harness `mmzoo.testing`, then hostile requests against its export.

Parametrized over `mmzoo.list_models()`, so a new model gets it for free:
the tiny variant on spec-derived dummy values (no dataset), one `fit`
step on the real tf.data pipeline, `.keras` save/load with every output
equal, a SavedModel export whose every signature gives the Python-side
outputs from raw inputs at batch 1 and 7, and a load in a process that
imports only TensorFlow (one process for every model's export). The same
build/forward/fit under the JAX backend is `test_contract_jax.py`, a file
of its own so that the pytest-xdist workers run the two side by side.

Hostile requests (the second half of this file) go to each contract
export's loaded `serving_default` (what TF Serving runs): an empty batch,
wrong dtypes, inputs of different batch sizes, corrupt and truncated image
bytes, a PNG header claiming 40000×40000, a large image, hostile WAVs
(not WAV, 8/24-bit, float, truncated, an hour, stereo at 44.1 kHz,
streamed) and frame rows (300 frames, mixed sizes, corrupt, all
padding), non-UTF-8 and very long text, NaN and ±inf numbers. Then
hypothesis-generated requests go to *every* signature of every model
(`FUZZ_EXAMPLES` each); their counts are printed at the end of the
session. Each must either give a defined result (outputs of the request's
batch size, floats finite) or fail with
`InvalidArgumentError` naming the input, and after each the process still
answers a good request (the contract's first rows) with the Keras model's
output. They live in this file to reuse the contract's exports (pytest-xdist
keeps a file on one worker): exporting each model again cost 70 s of CI.

Inputs are classified from the signature and the contract's raw values
only (string inputs whose values are JPEG/PNG bytes are images), so a new
model is covered without code here.

Sizes: a 4000×4000 JPEG is the large image of the suite; the 10000×10000
one runs only with the `slow` tests. Measured on this machine (2 cores,
`mmzoo.data.images.decode_images` in a `tf.function`): a 10000×10000 JPEG
(1.7 MB on the wire) decodes and resizes in 0.2-0.3 s per image, and each
image in flight holds its 300 MB uint8 decode: peak resident memory rose by
0.3 GB for one such image and by 0.6 GB for a batch of 4 (`map_fn` decodes
several at once), so it is served, slowly, and a batch of them costs
memory in proportion. A JPEG whose header claims 60000×60000 fails with
InvalidArgument before allocating.
"""

import dataclasses
import functools
import io
import os
import struct

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mmzoo
from mmzoo import registry
from mmzoo.export.verify import verify_exports
from mmzoo.specs import encode_png, encode_wav
from mmzoo.testing import check_model
from tests.wav import make_wav_header

MODELS = mmzoo.list_models()


@pytest.fixture(scope="module")
def reports():
    """Model name -> its `ContractReport`, filled by `test_contract`."""
    return {}


@pytest.mark.parametrize("name", MODELS)
def test_contract(name, tmp_path_factory, reports):
    directory = str(tmp_path_factory.mktemp(f"contract-{name}"))
    report = check_model(name, directory, verify_export=False)
    assert np.isfinite(report.loss)
    assert "serving_default" in report.signatures
    assert report.export.endswith(os.path.join(name, "1"))
    reports[name] = report


def test_every_export_loads_in_a_tensorflow_only_process(reports):
    # After the contract tests of this file (pytest runs a file's tests in
    # order): one fresh process checks every export (`verify_exports`), so
    # its TensorFlow start-up is paid once, not per model.
    if not reports:
        pytest.skip("no contract test ran")
    checked = verify_exports([report.export for report in reports.values()])
    failed = [report.table() for report in checked if not report.ok]
    assert not failed, "\n\n".join(failed)


def test_registry_entries_are_complete():
    for name in MODELS:
        entry = registry.get_entry(name)
        assert entry.description, name
        assert entry.datasets and entry.datasets[0] == "synthetic", name
        config = mmzoo.get_config(name, "tiny")
        specs = entry.inputs(config)
        assert specs and len({s.name for s in specs}) == len(specs), name


# -------------------------------------------------------- hostile requests --

GOOD_ROWS = 3


def _is_image_bytes(value):
    return isinstance(value, bytes) and (
        value.startswith(b"\xff\xd8\xff") or value.startswith(b"\x89PNG\r\n")
    )


def _is_wav_bytes(value):
    return isinstance(value, bytes) and value.startswith(b"RIFF")


def _kind(spec, values):
    if spec.dtype == tf.string:
        flat = list(np.asarray(values).flat)
        present = [v for v in flat if v != b""]
        if (
            spec.shape.rank == 2
            and present
            and all(_is_image_bytes(v) for v in present)
        ):
            return "video"  # rows of encoded frames, b"" = padding
        if flat and all(_is_image_bytes(v) for v in flat):
            return "image"
        if present and all(_is_wav_bytes(v) for v in present):
            return "audio"
        return "text"
    if spec.dtype.is_floating:
        return "number"
    if spec.dtype.is_integer:
        return "integer"
    return "other"


@dataclasses.dataclass
class Served:
    name: str
    signature: object
    specs: dict
    kinds: dict
    good: dict
    expected: dict

    def inputs_of(self, kind):
        return [k for k, v in self.kinds.items() if v == kind]

    def call(self, inputs):
        tensors = {
            k: v
            if isinstance(v, tf.Tensor)
            else tf.constant(v, dtype=self.specs[k].dtype)
            for k, v in inputs.items()
        }
        return {k: v.numpy() for k, v in self.signature(**tensors).items()}


@pytest.fixture(scope="module", params=MODELS)
def served(request, reports, tmp_path_factory):
    name = request.param
    report = reports.get(name)
    if report is None:  # these tests alone (`-k`): run the contract here
        directory = str(tmp_path_factory.mktemp(f"hostile-{name}"))
        report = check_model(name, directory, verify_export=False)
    signature = tf.saved_model.load(report.export).signatures["serving_default"]
    _, specs = signature.structured_input_signature
    good = {k: v[:GOOD_ROWS] for k, v in report.examples.items()}
    return Served(
        name,
        signature,
        dict(specs),
        {k: _kind(spec, good[k]) for k, spec in specs.items()},
        good,
        {k: np.asarray(v)[:GOOD_ROWS] for k, v in report.expected.items()},
    )


def _assert_good_request_answers(served):
    got = served.call(served.good)
    assert set(got) == set(served.expected)
    for name, want in served.expected.items():
        assert got[name].shape == want.shape, name
        if want.dtype.kind in "fc":
            np.testing.assert_allclose(got[name], want, atol=1e-5, err_msg=name)
        else:
            np.testing.assert_array_equal(got[name], want, err_msg=name)


def _batch_size(inputs):
    sizes = {np.shape(v)[0] for v in inputs.values() if np.ndim(v)}
    return sizes.pop() if len(sizes) == 1 else None


def _assert_defined(served, inputs, culprits):
    """Asserts a defined outcome; returns "answered" or "rejected"."""
    batch = _batch_size(inputs)
    try:
        outputs = served.call(inputs)
    except tf.errors.InvalidArgumentError as error:
        message = str(error)
        assert any(name in message for name in culprits), (
            f"InvalidArgument names none of {culprits}: {message[-800:]}"
        )
        outcome = "rejected"
    else:
        for name, value in outputs.items():
            assert value.ndim and len(value) == batch, (name, value.shape)
            if value.dtype.kind in "fc":
                assert np.all(np.isfinite(value)), (name, value)
        outcome = "answered"
    _assert_good_request_answers(served)
    return outcome


def _with(served, name, values):
    inputs = dict(served.good)
    inputs[name] = values
    return inputs


def _like(served, name, value):
    """`GOOD_ROWS` rows of input `name`, each `value` (shaped like its
    examples)."""
    good = np.asarray(served.good[name])
    out = np.empty(good.shape, good.dtype)
    out[...] = value
    return out


def test_good_request_gives_the_keras_output(served):
    _assert_good_request_answers(served)


def test_empty_batch(served):
    empty = {
        k: np.zeros((0, *np.shape(v)[1:]), np.asarray(v).dtype)
        for k, v in served.good.items()
    }
    _assert_defined(served, empty, list(served.specs))


def test_wrong_dtype(served):
    for name, spec in served.specs.items():
        rows = np.shape(served.good[name])
        if spec.dtype == tf.string:
            bad = tf.zeros(rows, tf.int32)
        else:
            bad = tf.fill(rows, "1.5")
        with pytest.raises(
            (TypeError, ValueError, tf.errors.InvalidArgumentError)
        ):
            served.call(_with(served, name, bad))
        # A NumPy value of the wrong kind fails before the graph runs.
        with pytest.raises((TypeError, ValueError)):
            served.signature(
                **{
                    k: tf.constant(v, dtype=served.specs[k].dtype)
                    for k, v in served.good.items()
                    if k != name
                },
                **{name: np.full(rows, object(), object)},
            )
        _assert_good_request_answers(served)


def test_mismatched_batch_sizes(served):
    batched = [k for k, s in served.specs.items() if s.shape.rank]
    if len(batched) < 2:
        pytest.skip(f"{served.name} has one batched input")
    for name in batched:
        short = np.asarray(served.good[name])[:-1]
        with pytest.raises(tf.errors.InvalidArgumentError) as error:
            served.call(_with(served, name, short))
        message = str(error.value)
        assert "need one batch size" in message, message
        assert f"{name}={GOOD_ROWS - 1}" in message, message
        _assert_good_request_answers(served)


def _huge_png_header():
    """A PNG whose IHDR claims 40000 × 40000 pixels (4.8 GB decoded)."""
    import zlib

    header = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    body = b"IHDR" + header
    ihdr = (
        struct.pack(">I", 13)
        + body
        + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    )
    end = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", 0xAE426082)
    return b"\x89PNG\r\n\x1a\n" + ihdr + end


def _corrupt_images(good):
    return {
        "PNG header claiming 40000x40000": _huge_png_header(),
        "empty": b"",
        "junk": b"definitely not an image",
        "jpeg magic + junk": b"\xff\xd8\xff\xe0" + b"\x00junk" * 50,
        "png magic + junk": b"\x89PNG\r\n\x1a\n" + b"\x00junk" * 50,
        "truncated half": good[: len(good) // 2],
        "truncated header": good[:20],
    }


def test_corrupt_and_truncated_images(served):
    images = served.inputs_of("image")
    if not images:
        pytest.skip(f"{served.name} has no image input")
    for name in images:
        good = np.asarray(served.good[name]).flat[0]
        for label, data in _corrupt_images(good).items():
            bad = np.asarray(served.good[name]).copy()
            bad.flat[0] = data
            with pytest.raises(tf.errors.InvalidArgumentError) as error:
                served.call(_with(served, name, bad))
            assert name in str(error.value), (label, str(error.value)[-600:])
            _assert_good_request_answers(served)


@functools.lru_cache(maxsize=2)
def _large_jpeg(side=4000):
    from PIL import Image

    # A smooth gradient: small on the wire, built in uint8 (a 10000² float
    # image would take 2.4 GB here).
    ramp = np.linspace(0, 255, side).astype(np.uint16)
    grey = ((ramp[:, None] + ramp[None, :]) // 2).astype(np.uint8)
    pixels = np.stack([grey, grey // 2, 255 - grey], axis=-1)
    del grey
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def test_large_image(served):
    images = served.inputs_of("image")
    if not images:
        pytest.skip(f"{served.name} has no image input")
    for name in images:
        bad = np.asarray(served.good[name]).copy()
        bad.flat[0] = _large_jpeg()
        _assert_defined(served, _with(served, name, bad), [name])


@pytest.mark.slow
def test_very_large_image(served):
    """A 10000×10000 JPEG (1.7 MB; +0.3 GB resident while it decodes)."""
    images = served.inputs_of("image")
    if not images:
        pytest.skip(f"{served.name} has no image input")
    for name in images:
        bad = np.asarray(served.good[name]).copy()
        bad.flat[0] = _large_jpeg(10_000)
        _assert_defined(served, _with(served, name, bad), [name])


def _hostile_wavs(good):
    rng = np.random.default_rng(0)
    hour = 3600 * 8000  # an hour of 8 kHz mono, 16-bit: 57.6 MB
    return {
        "junk": b"definitely not a WAV",
        "PNG bytes": encode_png(np.zeros((4, 4, 3), np.uint8)),
        "truncated header": good[:30],
        "truncated data": good[: len(good) // 2],
        "8-bit PCM": make_wav_header(8000, 1, 8, 1, 800) + bytes(800),
        "32-bit float": make_wav_header(8000, 1, 32, 3, 3200) + bytes(3200),
        "24-bit PCM": make_wav_header(8000, 1, 24, 1, 2400) + bytes(2400),
        "an hour": make_wav_header(8000, 1, 16, 1, 2 * hour) + bytes(2 * hour),
        "stereo at 44.1 kHz": encode_wav(
            rng.uniform(-0.5, 0.5, (44100, 2)), 44100, channels=2
        ),
        "6 kHz, 10 ms": encode_wav(rng.uniform(-0.5, 0.5, 60), 6000),
        "header only": make_wav_header(16000, 1, 16, 1, 0),
        "rate 0": make_wav_header(0, 1, 16, 1, 100) + bytes(100),
        "streamed size": make_wav_header(8000, 1, 16, 1, 0xFFFFFFFF - 36)[:40]
        + struct.pack("<I", 0xFFFFFFFF)
        + bytes(1600),
        "missing": b"",
    }


def test_hostile_audio(served):
    """Each WAV gets a defined answer (an hour cropped, stereo mixed down,
    another rate resampled, `""` missing) or InvalidArgument naming the
    input; the next good request is right."""
    names = served.inputs_of("audio")
    if not names:
        pytest.skip(f"{served.name} has no audio input")
    outcomes = {}
    for name in names:
        good = next(v for v in np.asarray(served.good[name]).flat if v)
        for label, data in _hostile_wavs(good).items():
            bad = np.asarray(served.good[name]).copy()
            bad.flat[0] = data
            outcomes[label] = _assert_defined(
                served, _with(served, name, bad), [name]
            )
    answered = {
        "an hour",
        "stereo at 44.1 kHz",
        "6 kHz, 10 ms",
        "header only",
        "streamed size",
        "missing",
    }
    assert {k for k, v in outcomes.items() if v == "answered"} == answered, (
        outcomes
    )


def test_hostile_video(served):
    """More frames than T (sampled), corrupt or truncated frames (rejected,
    naming the input), frames of different sizes (each resized), a clip of
    padding only (a missing video)."""
    names = served.inputs_of("video")
    if not names:
        pytest.skip(f"{served.name} has no video input")
    rng = np.random.default_rng(0)
    for name in names:
        good = np.asarray(served.good[name])
        frame = next(v for v in good.flat if v)
        rows = good.shape[0]

        def clips(frames, rows=rows):
            out = np.empty((rows, len(frames)), object)
            for row in range(rows):
                out[row] = frames
            return out

        many = [
            encode_png(rng.integers(0, 256, (8, 8, 3), np.uint8))
            for _ in range(300)
        ]
        sizes = [
            encode_png(rng.integers(0, 256, (h, w, 3), np.uint8))
            for h, w in ((4, 90), (120, 7), (33, 33), (1, 1))
        ]
        assert _assert_defined(served, _with(served, name, clips(many)), [name])
        assert (
            _assert_defined(served, _with(served, name, clips(sizes)), [name])
            == "answered"
        )
        assert (
            _assert_defined(
                served, _with(served, name, clips([b""] * 3)), [name]
            )
            == "answered"
        )
        for label, data in _corrupt_images(frame).items():
            if not data:
                continue  # b"" is padding
            bad = clips([data, frame])
            with pytest.raises(tf.errors.InvalidArgumentError) as error:
                served.call(_with(served, name, bad))
            assert name in str(error.value), (label, str(error.value)[-600:])
            _assert_good_request_answers(served)


def test_non_utf8_and_long_text(served):
    texts = served.inputs_of("text")
    if not texts:
        pytest.skip(f"{served.name} has no text input")
    values = {
        "non-UTF-8": b"\xff\xfe\x80 caf\xc3 \xed\xa0\x80|\xc0\xaf",
        "100k chars of words": ("lorem ipsum " * 8334)[:100_000].encode(),
        "100k chars, one token": b"x" * 100_000,
        "100k separators": b"|" * 100_000,
        "NUL and control bytes": b"\x00\x01\x02\n\t\r",
        "empty": b"",
    }
    for name in texts:
        for label, value in values.items():
            outcome = _assert_defined(
                served, _with(served, name, _like(served, name, value)), [name]
            )
            assert outcome in ("answered", "rejected"), label


def test_non_finite_and_extreme_numbers(served):
    numbers = served.inputs_of("number")
    if not numbers:
        pytest.skip(f"{served.name} has no float input")
    specials = [np.nan, np.inf, -np.inf, 3.4e38, -3.4e38, 1e-45]
    for name in numbers:
        dtype = served.specs[name].dtype.as_numpy_dtype
        for value in specials:
            bad = _like(served, name, np.asarray(value, dtype))
            _assert_defined(served, _with(served, name, bad), [name])
        # Every input non-finite at once.
        inputs = dict(served.good)
        for other in numbers:
            inputs[other] = _like(served, other, np.nan)
        _assert_defined(served, inputs, numbers)


# ------------------------------------------------------------------ fuzz --


def _image_strategy(good):
    def flip(args):
        index, byte = args
        data = bytearray(good)
        data[index % len(data)] = byte
        return bytes(data)

    return st.one_of(
        st.just(good),
        st.binary(max_size=64),
        st.integers(0, len(good)).map(lambda k: good[:k]),
        st.tuples(st.integers(0, len(good) - 1), st.integers(0, 255)).map(flip),
    )


def _value_strategy(served, name):
    spec = served.specs[name]
    kind = served.kinds[name]
    if kind in ("image", "audio", "video"):
        good = next(v for v in np.asarray(served.good[name]).flat if v)
        strategy = _image_strategy(good)
        # b"" is padding (video) or a missing audio.
        return (
            st.one_of(strategy, st.just(b"")) if kind != "image" else strategy
        )
    if spec.dtype == tf.string:
        return st.one_of(
            st.text(max_size=40).map(lambda s: s.encode("utf-8")),
            st.binary(max_size=40),
        )
    if spec.dtype.is_floating:
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    if spec.dtype.is_integer:
        info = np.iinfo(spec.dtype.as_numpy_dtype)
        return st.integers(int(info.min), int(info.max))
    return st.booleans()


@st.composite
def _requests(draw, served):
    rows = draw(st.integers(0, 3))
    inputs = {}
    for name, spec in served.specs.items():
        tail = tuple(np.shape(served.good[name])[1:])
        # A free length (frames per clip, waveform samples) gets a short
        # random one: long rows add drawing time, not new cases.
        free = [d is None for d in spec.shape.as_list()[1:]]
        tail = tuple(
            draw(st.integers(0, 6)) if is_free else size
            for size, is_free in zip(tail, free)
        )
        count = rows * int(np.prod(tail, dtype=np.int64))
        values = draw(
            st.lists(
                _value_strategy(served, name), min_size=count, max_size=count
            )
        )
        dtype = object if spec.dtype == tf.string else spec.dtype.as_numpy_dtype
        array = np.empty(count, dtype)
        array[:] = values
        inputs[name] = array.reshape((rows, *tail))
    return inputs


FUZZ_EXAMPLES = 50
"""Hypothesis requests per signature of every model."""


def _served_signature(name, export, key, loaded, recorded):
    """A `Served` for signature `key` of a loaded export, its good request
    and expected outputs taken from the export's recorded examples."""
    signature = loaded.signatures[key]
    _, specs = signature.structured_input_signature
    inputs, outputs = recorded[key]
    good = {k: np.asarray(v)[:GOOD_ROWS] for k, v in inputs.items()}
    return Served(
        name,
        signature,
        dict(specs),
        {k: _kind(spec, good[k]) for k, spec in specs.items()},
        good,
        {k: np.asarray(v)[:GOOD_ROWS] for k, v in outputs.items()},
    )


def _fuzz(served, seen):
    """Runs `FUZZ_EXAMPLES` hypothesis requests to `served`, appending each
    outcome (`answered` / `rejected`) to `seen`."""
    names = list(served.specs)

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )
    @given(inputs=_requests(served))
    def check(inputs):
        seen.append(_assert_defined(served, inputs, names))

    check()


@pytest.mark.parametrize("name", MODELS)
def test_fuzz_every_signature(name, reports, tmp_path_factory, record_property):
    """Hypothesis-made requests to every signature of every model: each
    gets a defined answer or InvalidArgument naming an input, and the next
    good request still gives the Keras outputs. The counts reach the test
    report (`record_property("fuzz", ...)`; printed at the end of the
    session by `tests/conftest.py`)."""
    from mmzoo.export.verify import read_examples

    report = reports.get(name)
    if report is None:  # this test alone (`-k`): run the contract here
        directory = str(tmp_path_factory.mktemp(f"fuzz-{name}"))
        report = check_model(name, directory, verify_export=False)
    loaded = tf.saved_model.load(report.export)
    recorded = read_examples(report.export)
    counts = {}
    for key in sorted(loaded.signatures):
        served = _served_signature(name, report.export, key, loaded, recorded)
        seen = []
        _fuzz(served, seen)
        counts[key] = {
            "tried": len(seen),
            "answered": seen.count("answered"),
            "rejected": seen.count("rejected"),
            "crashed": 0,  # any other outcome failed the test above
        }
        assert seen, key
    record_property("fuzz", {name: counts})
