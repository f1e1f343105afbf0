"""Spec-driven preprocessing: raw client values → model inputs.

One `Preprocessor` turns a dict of raw `[B]` tensors (encoded image bytes,
text strings) into the model inputs its modality specs describe
(`mmzoo.specs`). The training pipeline (`tf.data`) and the serving
signature call the same module, so training and serving cannot disagree.

```
raw {"image": bytes [B], "report": string [B]}
    │  PROCESSORS[spec.kind] per input, fitted on the train split
    ▼
{"image": float32 [B, S, S, 3], "report": int32 [B, T]}
```

Each kind has one processor class in `PROCESSORS` (a `tf.Module` with a
`fit` class method); a new modality is one more entry. Fitting writes its
files (vocabularies, a tokenizer copy) under one folder, named after the
input, with `preprocessing.json` holding the fitted specs, so
`load_preprocessor(folder)` rebuilds the same module. Vocabulary files are
`tf.saved_model.Asset`s and travel with an export.

Text token ids: 0 = padding, and a row of zeros is a missing text (`""` or
whitespace only). The `word` and `wordpiece` vocabularies use 1 for
out-of-vocabulary tokens; a preset's tokenizer keeps its own ids (its
padding id must be 0).
"""

import dataclasses
import json
import os
import re
import shutil

import numpy as np
import tensorflow as tf

from mmzoo.data import text
from mmzoo.data.audio import decode_wavs
from mmzoo.data.images import decode_images
from mmzoo.data.video import decode_clips
from mmzoo.data.vocab import Vocabulary, count_tokens, write_vocabulary
from mmzoo.specs import PAD_ID, spec_from_dict

CONFIG_FILE = "preprocessing.json"
WORDPIECE_RESERVED = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
"""Reserved WordPiece tokens: `[PAD]` = 0, `[UNK]` = 1 (OOV), then the
sequence markers; computed vocabularies start with them."""
_FIT_BATCH = 1024


def asset_path(directory, spec, filename="vocabulary.txt"):
    """The file `<spec name>_<filename>` under `directory`."""
    return os.path.join(directory, f"{spec.name}_{filename}")


def _module_name(name):
    name = re.sub(r"\W", "_", str(name))
    return name if re.match(r"[A-Za-z_]", name) else f"_{name}"


def _as_texts(values):
    """Raw values (str or bytes) as a list of str; bad UTF-8 replaced."""
    return [
        v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
        for v in values
    ]


def _string_batches(values, batch_size=_FIT_BATCH):
    """The raw text values (bytes kept as sent) as a `tf.data` of
    `[<=batch_size]` strings."""
    data = [
        v if isinstance(v, bytes) else str(v).encode("utf-8") for v in values
    ]
    texts = tf.constant(np.asarray(data, dtype=object), tf.string)
    return tf.data.Dataset.from_tensor_slices(texts).batch(batch_size)


class ImageProcessor(tf.Module):
    """Encoded JPEG/PNG bytes `[B]` → float32 RGB `[B, S, S, 3]` in 0..255.

    Decoding is `mmzoo.data.images.decode_images`: truncated or corrupt
    bytes fail with InvalidArgument naming the input.

    Args:
        spec: `ImageSpec`.
        directory: str. Fitted files folder (unused: images need none).
        name: str. Module name. Defaults to the spec name.
    """

    def __init__(self, spec, directory, name=None):
        super().__init__(name=_module_name(name or spec.name))
        self.spec = spec

    @classmethod
    def fit(cls, spec, values, directory):
        """Images need no fitting: returns `spec` unchanged."""
        del values, directory
        return spec

    def __call__(self, values):
        return decode_images(values, self.spec.size, name=self.spec.name)


class AudioProcessor(ImageProcessor):
    """WAV bytes `[B]` → float32 mono `[B, N]` at the spec's rate, NaN rows
    for `""` (missing audio); `mmzoo.data.audio.decode_wavs` (resampling,
    mix-down, crop/pad; bad WAVs fail with InvalidArgument naming the
    input). Nothing to fit.

    Args:
        spec: `AudioSpec`.
        directory: str. Unused.
        name: str. Module name. Defaults to the spec name.
    """

    def __call__(self, values):
        return decode_wavs(
            values,
            int(self.spec.sample_rate),
            self.spec.num_samples,
            name=self.spec.name,
        )


class VideoProcessor(ImageProcessor):
    """Encoded frames `[B, F]` (`""` = padding) → float32 `[B, T, S, S, 3]`
    in 0..255, NaN frames for padding; `mmzoo.data.video.decode_clips`
    (T taken uniformly from longer clips). Nothing to fit.

    Args:
        spec: `VideoSpec`.
        directory: str. Unused.
        name: str. Module name. Defaults to the spec name.
    """

    def __call__(self, values):
        return decode_clips(
            values,
            int(self.spec.num_frames),
            int(self.spec.size),
            name=self.spec.name,
        )


class SensorProcessor(ImageProcessor):
    """Readings float32 `[B, D]` → float32 `[B, D]`, ±inf as NaN (missing).
    A row of another width fails with InvalidArgument naming the input.
    `fit` records each reading's train-split mean and standard deviation
    (finite values only), which the model standardizes with.

    Args:
        spec: `SensorSpec`.
        directory: str. Unused.
        name: str. Module name. Defaults to the spec name.
    """

    def __call__(self, values):
        values = tf.convert_to_tensor(values, tf.float32)
        width = tf.shape(values)[-1]
        check = tf.debugging.Assert(
            tf.equal(width, int(self.spec.dimension)),
            [
                self.spec.name,
                ": rows have",
                width,
                f"readings; expected {int(self.spec.dimension)}",
            ],
        )
        with tf.control_dependencies([check]):
            values = tf.identity(values)
        values = tf.where(
            tf.math.is_inf(values), tf.constant(np.nan, tf.float32), values
        )
        return tf.ensure_shape(values, [None, int(self.spec.dimension)])

    @classmethod
    def fit(cls, spec, values, directory):
        """Mean and standard deviation of each reading over the train
        split's finite values (0 and 1 where a reading is never finite;
        a near-constant reading gets std 1); `dimension` from the data."""
        del directory
        rows = [np.asarray(v, np.float64).reshape(-1) for v in values]
        if not rows:
            return spec
        widths = {len(r) for r in rows}
        if len(widths) != 1:
            raise ValueError(
                f"sensor spec '{spec.name}': rows of different widths "
                f"{sorted(widths)}"
            )
        matrix = np.stack(rows)
        finite = np.isfinite(matrix)
        mean, std = [], []
        for column, ok in zip(matrix.T, finite.T):
            kept = column[ok]
            mean.append(float(kept.mean()) if len(kept) else 0.0)
            deviation = float(kept.std()) if len(kept) else 1.0
            std.append(deviation if deviation > 1e-6 else 1.0)
        return dataclasses.replace(
            spec, dimension=matrix.shape[1], mean=tuple(mean), std=tuple(std)
        )


class _KerasHubTokens(tf.Module):
    """Texts `[B]` → ragged int32 token ids of a keras-hub tokenizer.

    The tokenizer runs inside a `tf.function`, so eager calls take the same
    TensorFlow path as `tf.data` and serving (keras-hub runs a pure-Python
    twin eagerly, and returns Python lists there).
    """

    def __init__(self, tokenizer, asset_paths, name):
        super().__init__(name=name)
        self.tokenizer = tokenizer
        self.assets = [tf.saved_model.Asset(path) for path in asset_paths]
        # Line number → line of each file. A resource reading the asset is
        # what makes the file travel with any export (keras ExportArchive
        # keeps resources, not bare assets); for a one-token-a-line
        # vocabulary it maps ids back to tokens (`token_strings`).
        self.lines = [
            tf.lookup.StaticHashTable(
                tf.lookup.TextFileInitializer(
                    asset,
                    key_dtype=tf.int64,
                    key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
                    value_dtype=tf.string,
                    value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
                ),
                default_value="",
                # See mmzoo.data.vocab.Vocabulary.
                experimental_is_anonymous=True,
            )
            for asset in self.assets
        ]
        self.tokenize = tf.function(
            self._tokenize,
            input_signature=[tf.TensorSpec([None], tf.string)],
            autograph=False,
        )
        self.tokenize(tf.constant(["a"]))  # Builds and traces it now.

    def _tokenize(self, texts):
        ids = self.tokenizer(text.to_valid_utf8(texts))
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids, padding=PAD_ID)
        return tf.cast(ids, tf.int32)

    def __call__(self, texts):
        return self.tokenize(texts)

    def token_strings(self, ids):
        """Token strings of int `ids` (any shape) for a one-token-a-line
        vocabulary file (the first asset); unknown ids give `""`."""
        return self.lines[0].lookup(tf.cast(ids, tf.int64))


def _load_keras_hub_tokenizer(preset):
    """A keras-hub tokenizer from a preset handle or folder; a folder with
    a tokenizer alone (`Tokenizer.save_to_preset`) is accepted too."""
    import keras
    import keras_hub

    if (
        os.path.isdir(preset)
        and not os.path.exists(os.path.join(preset, "config.json"))
        and os.path.exists(os.path.join(preset, "tokenizer.json"))
    ):
        with open(os.path.join(preset, "tokenizer.json")) as f:
            tokenizer = keras.saving.deserialize_keras_object(json.load(f))
        tokenizer.load_preset_assets(preset)
        return tokenizer
    return keras_hub.tokenizers.Tokenizer.from_preset(preset)


def _special_id(tokenizer, *attributes):
    for attribute in attributes:
        value = getattr(tokenizer, attribute, None)
        if value is not None:
            return int(value)
    return None


def _preset_copy(spec, directory):
    return os.path.join(directory, f"{spec.name}_tokenizer")


def _preset_files(spec, directory, refresh=False):
    """Copies the preset's tokenizer under `directory` (so the fitted folder
    works offline; again when `refresh`) and its vocabulary files as
    `<name>_<file>`; returns `(tokenizer, asset paths)`."""
    local = _preset_copy(spec, directory)
    copied = os.path.exists(os.path.join(local, "tokenizer.json"))
    if copied and not refresh:
        tokenizer = _load_keras_hub_tokenizer(local)
    else:
        tokenizer = _load_keras_hub_tokenizer(spec.preset)
        os.makedirs(directory, exist_ok=True)
        tokenizer.save_to_preset(local)
    pad = _special_id(tokenizer, "pad_token_id")
    if pad != PAD_ID:
        raise ValueError(
            f"text spec '{spec.name}': the tokenizer of preset "
            f"{spec.preset!r} has padding id {pad}; mmzoo needs padding id "
            f"{PAD_ID} (a row of zeros is a missing text)"
        )
    subdir = os.path.join(local, "assets", "tokenizer")
    paths = []
    for filename in getattr(tokenizer, "file_assets", None) or ():
        path = asset_path(directory, spec, filename)
        if refresh or not os.path.exists(path):
            shutil.copyfile(os.path.join(subdir, filename), path)
        paths.append(path)
    return tokenizer, paths


class TextProcessor(tf.Module):
    """Text `[B]` → int32 token ids `[B, max_length]`, 0 = padding.

    Three tokenizers, by the spec:

    - `word`: `mmzoo.data.text.tokenize` (lowercased words) looked up in
      the fitted `<name>_vocabulary.txt` (`Vocabulary`: unseen words → 1).
    - `wordpiece`: keras-hub `WordPieceTokenizer` (lowercased) over the
      computed `<name>_vocabulary.txt` (`[PAD]` 0, `[UNK]` 1, `[CLS]` 2,
      `[SEP]` 3, `[MASK]` 4, ...), rows `[CLS] pieces [SEP]`.
    - `preset` set: that keras-hub preset's tokenizer (copied to
      `<name>_tokenizer/`, its vocabulary to `<name>_vocabulary.txt`), rows
      `[CLS] pieces [SEP]` with its own special ids.

    Longer texts are cut (`[SEP]` stays last); a text without tokens
    (`""`, whitespace) is all zeros, a missing text. Invalid UTF-8 is
    replaced by spaces.

    Args:
        spec: fitted `TextSpec`.
        directory: str. Folder of the fitted files (`fit`).
        name: str. Module name. Defaults to the spec name.
    """

    def __init__(self, spec, directory, name=None):
        super().__init__(name=_module_name(name or spec.name))
        self.spec = spec
        self.max_length = int(spec.max_length)
        self.start_id = self.end_id = None
        if spec.preset:
            tokenizer, paths = _preset_files(spec, directory)
            self.tokens = _KerasHubTokens(tokenizer, paths, "tokens")
            self.start_id = _special_id(
                tokenizer, "cls_token_id", "start_token_id"
            )
            self.end_id = _special_id(tokenizer, "sep_token_id", "end_token_id")
        else:
            path = _require_file(asset_path(directory, spec), spec)
            if spec.tokenizer == "word":
                self.tokens = Vocabulary(path, name="vocabulary")
            else:
                self.tokens = _KerasHubTokens(
                    _wordpiece_tokenizer(path), [path], "tokens"
                )
                self.start_id = WORDPIECE_RESERVED.index("[CLS]")
                self.end_id = WORDPIECE_RESERVED.index("[SEP]")
        specials = self.num_special_tokens
        if self.max_length <= specials:
            raise ValueError(
                f"text spec '{spec.name}': max_length must be > {specials} "
                f"([CLS] and [SEP] included), got {self.max_length}"
            )

    @property
    def num_special_tokens(self):
        """Ids added around every text (`[CLS]`, `[SEP]`)."""
        return (self.start_id is not None) + (self.end_id is not None)

    def pieces(self, texts):
        """Texts `[B]` → ragged int32 token ids, no markers, not cut."""
        if isinstance(self.tokens, Vocabulary):
            return self.tokens.lookup(text.tokenize(texts))
        return self.tokens(texts)

    def __call__(self, texts):
        pieces = self.pieces(texts)
        if not self.num_special_tokens:
            return text.pad_ragged(pieces, self.max_length)
        present = pieces.row_lengths() > 0
        rows = [pieces[:, : self.max_length - self.num_special_tokens]]
        batch = tf.shape(present, out_type=tf.int64)[0]
        for position, token_id in ((0, self.start_id), (1, self.end_id)):
            if token_id is not None:
                column = tf.fill([batch, 1], tf.constant(token_id, tf.int32))
                column = tf.RaggedTensor.from_tensor(column)
                rows.insert(0 if position == 0 else len(rows), column)
        ids = text.pad_ragged(tf.concat(rows, axis=1), self.max_length)
        return tf.where(present[:, None], ids, tf.zeros_like(ids))

    @classmethod
    def fit(cls, spec, values, directory):
        """Fits `spec` on the train split's texts; see `fit_spec`."""
        os.makedirs(directory, exist_ok=True)
        if spec.tokenizer == "word" and not spec.preset:
            tokenized = [text.tokenize_py(t) for t in _as_texts(values)]
            tokens = write_vocabulary(
                count_tokens(tokenized),
                asset_path(directory, spec),
                max_size=int(spec.vocabulary_size) - 2,
                min_count=int(spec.min_count),
            )
            longest = max((len(t) for t in tokenized), default=0)
            return dataclasses.replace(
                spec,
                vocabulary_size=len(tokens),
                max_length=min(int(spec.max_length), max(longest, 1)),
            )
        if spec.preset:
            tokenizer, _ = _preset_files(spec, directory, refresh=True)
            size = int(tokenizer.vocabulary_size())
        else:
            size = _write_wordpiece_vocabulary(spec, values, directory)
        # Measure the longest training text with the processor itself.
        wide = dataclasses.replace(spec, max_length=1 << 30)
        processor = cls(wide, directory)
        longest = 0
        for batch in _string_batches(values):
            lengths = processor.pieces(batch).row_lengths().numpy()
            longest = max(longest, int(lengths.max(initial=0)))
        specials = processor.num_special_tokens
        if int(spec.max_length) <= specials:
            raise ValueError(
                f"text spec '{spec.name}': max_length must be > {specials} "
                f"([CLS] and [SEP] included), got {spec.max_length}"
            )
        return dataclasses.replace(
            spec,
            vocabulary_size=size,
            max_length=min(int(spec.max_length), max(longest, 1) + specials),
        )


def _require_file(path, spec):
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"text spec '{spec.name}': vocabulary file {path} not found; "
            f"fit the spec first (fit_spec / fit_preprocessor)"
        )
    return path


def _wordpiece_tokenizer(path):
    import keras_hub

    with open(path, encoding="utf-8") as f:
        vocabulary = [line.rstrip("\n") for line in f]
    return keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=vocabulary, lowercase=True, oov_token="[UNK]"
    )


def _write_wordpiece_vocabulary(spec, values, directory):
    """Computes the WordPiece vocabulary of the training texts, writes it
    to `<name>_vocabulary.txt` and returns its size."""
    import keras_hub

    size = int(spec.vocabulary_size)
    if size <= len(WORDPIECE_RESERVED):
        raise ValueError(
            f"text spec '{spec.name}': a wordpiece vocabulary_size must be "
            f"> {len(WORDPIECE_RESERVED)} (reserved "
            f"{', '.join(WORDPIECE_RESERVED)}), got {size}"
        )
    texts = _string_batches(values).unbatch()
    texts = texts.map(text.to_valid_utf8).filter(
        lambda t: tf.strings.length(tf.strings.strip(t)) > 0
    )
    vocabulary = list(WORDPIECE_RESERVED)
    if any(t.strip() for t in _as_texts(values)):
        vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
            texts,
            size,
            lowercase=True,
            reserved_tokens=list(WORDPIECE_RESERVED),
        )
    vocabulary = [t for t in vocabulary if t and "\n" not in t][:size]
    if vocabulary[:2] != ["[PAD]", "[UNK]"]:
        raise RuntimeError(f"unexpected WordPiece vocabulary {vocabulary[:5]}")
    with open(asset_path(directory, spec), "w", encoding="utf-8") as f:
        f.write("".join(f"{token}\n" for token in vocabulary))
    return len(vocabulary)


PROCESSORS = {
    "image": ImageProcessor,
    "text": TextProcessor,
    "audio": AudioProcessor,
    "video": VideoProcessor,
    "sensor": SensorProcessor,
}
"""Processor class of each modality kind: `cls(spec, directory)` is a
`tf.Module` mapping raw `[B]` values to the model input, and
`cls.fit(spec, values, directory)` returns the fitted spec."""


def processor_class(spec):
    """The `PROCESSORS` entry for `spec.kind`."""
    kind = getattr(spec, "kind", None)
    if kind not in PROCESSORS:
        raise ValueError(
            f"modality spec '{getattr(spec, 'name', spec)}': no processor for "
            f"kind {kind!r}; valid: {', '.join(PROCESSORS)}"
        )
    return PROCESSORS[kind]


def fit_spec(spec, values, directory):
    """Fits one modality spec on the train split's raw values.

    Images, audio and video are returned unchanged. A `word` text spec gets
    the vocabulary of the training texts (words seen `min_count` times, at
    most `vocabulary_size - 2` of them), a `wordpiece` one a computed
    WordPiece vocabulary of at most `vocabulary_size` tokens, one with a
    `preset` that preset's tokenizer; `vocabulary_size` becomes the fitted
    size and `max_length` is lowered to the longest training text in tokens
    (`[CLS]`/`[SEP]` included).

    Args:
        spec: `ImageSpec` or `TextSpec` (or its dict form).
        values: list of raw values (bytes or str) of the train split.
        directory: str. Folder for the fitted files (`<name>_...`).

    Returns:
        The fitted spec.

    Example:
    >>> fit_spec(TextSpec("report"), ["Fever.", "No fever"], "prep")
    TextSpec(name='report', max_length=2, vocabulary_size=3, ...)
    """
    spec = spec_from_dict(spec)
    return processor_class(spec).fit(spec, list(values), directory)


class Preprocessor(tf.Module):
    """Raw client values → model inputs, one processor per modality spec.

    Args:
        specs: sequence of fitted specs (or their dict forms).
        directory: str. Folder of the fitted files.
        name: str. Module name. Defaults to `"preprocessor"`.

    Example:
    >>> pre = load_preprocessor("runs/prep")
    >>> pre({"image": tf.constant([png]), "report": tf.constant(["Fever"])})
    {'image': <float32 [1, 224, 224, 3]>, 'report': <int32 [1, 40]>}
    """

    def __init__(self, specs, directory, name="preprocessor"):
        super().__init__(name=name)
        specs = tuple(spec_from_dict(spec) for spec in specs)
        if not specs:
            raise ValueError("Preprocessor: needs at least one spec")
        names = [spec.name for spec in specs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"Preprocessor: input names must be unique; repeated: "
                f"{', '.join(duplicates)}"
            )
        self._spec_tuple = specs
        self.directory = os.fspath(directory)
        self.processors = {
            spec.name: processor_class(spec)(spec, self.directory)
            for spec in specs
        }

    @property
    def specs(self):
        """The fitted specs, in input order."""
        return tuple(self._spec_tuple)

    def serving_signature(self):
        """Dict of input name → `tf.TensorSpec([None, ...])` of raw values."""
        return {
            spec.name: tf.TensorSpec(
                [None, *spec.serving_shape],
                tf.as_dtype(spec.serving_dtype),
                name=spec.name,
            )
            for spec in self.specs
        }

    def __call__(self, raw):
        """Maps a dict of raw `[B]` values to a dict of model inputs; other
        keys are ignored."""
        for spec in self.specs:
            if spec.name not in raw:
                raise ValueError(
                    f"{self.name}: missing raw input {spec.name!r}; "
                    f"expected {[s.name for s in self.specs]}, received "
                    f"{sorted(raw)}"
                )
        return {
            spec.name: self.processors[spec.name](
                tf.convert_to_tensor(
                    raw[spec.name], tf.as_dtype(spec.serving_dtype)
                )
            )
            for spec in self.specs
        }


def fit_preprocessor(specs, raw_values, directory):
    """Fits every spec on the train split and builds their preprocessor.

    Args:
        specs: sequence of specs to fit.
        raw_values: dict of input name → list of raw train values.
        directory: str. Folder for the fitted files and
            `preprocessing.json`.

    Returns:
        A tuple `(fitted specs, Preprocessor)`.

    Example:
    >>> specs, pre = fit_preprocessor(
    ...     (ImageSpec(size=64), TextSpec("report")),
    ...     {"image": train_bytes, "report": train_reports}, "runs/prep")
    """
    specs = tuple(spec_from_dict(spec) for spec in specs)
    for spec in specs:
        if spec.name not in raw_values:
            raise ValueError(
                f"fit_preprocessor: no raw values for input {spec.name!r}; "
                f"received {sorted(raw_values)}"
            )
    fitted = tuple(
        fit_spec(spec, raw_values[spec.name], directory) for spec in specs
    )
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, CONFIG_FILE), "w") as f:
        json.dump(
            {"specs": [dataclasses.asdict(spec) for spec in fitted]},
            f,
            indent=2,
        )
    return fitted, Preprocessor(fitted, directory)


def load_preprocessor(directory, name="preprocessor"):
    """Rebuilds the `Preprocessor` of `fit_preprocessor` from its folder."""
    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"load_preprocessor: {path} not found; write it with "
            f"fit_preprocessor"
        )
    with open(path) as f:
        specs = json.load(f)["specs"]
    return Preprocessor(specs, directory, name=name)
