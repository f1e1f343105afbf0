"""tf.data pipelines for image + text models (images with reports).

The path of one example:

```
index row ─► (path, text, labels) ─► tf.io.read_file ─► raw {"image": bytes,
"report": text} ─► batch ─► ImageTextPreprocessor (decode + resize,
tokenize + vocabulary lookup + pad) ─► [cache] ─► augment (training) ─►
(model inputs, targets) ─► prefetch
```

`ImageTextPreprocessor` is the one function from raw client values to model
inputs: the training pipeline calls it on batches of file bytes and report
strings, and the serving signature calls it on the request, so training
and serving cannot disagree. Its vocabulary is an asset file that travels
with the SavedModel.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from mmzoo.data import text
from mmzoo.data.images import decode_images
from mmzoo.data.vocab import Vocabulary, count_tokens, write_vocabulary

AUTOTUNE = tf.data.AUTOTUNE
IMAGE_KEY = "image"
TEXT_KEY = "report"
VOCABULARY_FILE = "report_vocabulary.txt"
# Decoded float32 images are cached in memory below this many bytes.
CACHE_LIMIT_BYTES = 1 << 30
_PREPROCESS_BATCH = 256


@dataclasses.dataclass
class ImageTextExamples:
    """One split's examples, images still on disk.

    Attributes:
        image_paths: list of str. Image file of each example.
        texts: list of str. Report (text) of each example; `""` = missing.
        labels: float32 array `[N, L]`.
    """

    image_paths: list
    texts: list
    labels: np.ndarray

    def __len__(self):
        return len(self.image_paths)

    def take(self, indices):
        """The examples at `indices`, as a new `ImageTextExamples`."""
        return ImageTextExamples(
            [self.image_paths[i] for i in indices],
            [self.texts[i] for i in indices],
            np.asarray(self.labels)[np.asarray(indices, dtype=np.int64)],
        )


def fit_text_vocabulary(texts, path, max_size=None, min_count=1):
    """Writes the vocabulary of `texts` and measures their token lengths.

    Tokens are those of `mmzoo.data.text.tokenize` (the graph tokenizer's
    Python twin), so the file matches what serving looks up.

    Args:
        texts: iterable of str. Training texts.
        path: str. Vocabulary file to write (see `vocab.write_vocabulary`).
        max_size: int or None. Most tokens kept, reserved ids excluded.
        min_count: int. Tokens seen fewer times map to OOV. Defaults to 1.

    Returns:
        A tuple `(tokens, longest)`: the tokens written (ids 0, 1, ...) and
        the most tokens in one text.

    Example:
    >>> tokens, longest = fit_text_vocabulary(train_reports, "vocab.txt")
    """
    tokenized = [text.tokenize_py(t) for t in texts]
    tokens = write_vocabulary(
        count_tokens(tokenized), path, max_size=max_size, min_count=min_count
    )
    longest = max((len(t) for t in tokenized), default=0)
    return tokens, longest


class ImageTextPreprocessor(tf.Module):
    """Raw `{"image": bytes [B], "report": string [B]}` → model inputs.

    Images (JPEG or PNG, any size, grayscale/RGB/RGBA) are decoded to
    float32 RGB `[B, S, S, 3]` in 0..255 by `mmzoo.data.images.
    decode_images`; bytes that are not an image fail with InvalidArgument
    naming `image`. Reports are standardized and split into words
    (`mmzoo.data.text.tokenize`), looked up in the vocabulary (unknown
    words → OOV id 1) and cut or padded to `max_length` int32 ids; an empty
    report gives all zeros, which the model reads as a missing report.

    Args:
        vocabulary_path: str or None. Vocabulary file of
            `fit_text_vocabulary`; None when `text` is not produced.
        image_size: int. Output height and width.
        max_length: int. Report tokens kept.
        keys: tuple of str. Model inputs to produce, from `("image",
            "report")`; raw values of other keys are ignored. Defaults to
            both.
        name: str. Module name.

    Example:
    >>> pre = ImageTextPreprocessor("vocab.txt", image_size=64, max_length=40)
    >>> pre({"image": tf.constant([png]), "report": tf.constant(["Fever."])})
    """

    def __init__(
        self,
        vocabulary_path,
        image_size,
        max_length,
        keys=(IMAGE_KEY, TEXT_KEY),
        name="image_text_preprocessor",
    ):
        super().__init__(name=name)
        unknown = set(keys) - {IMAGE_KEY, TEXT_KEY}
        if unknown or not keys:
            raise ValueError(
                f"ImageTextPreprocessor: keys must be a non-empty subset of "
                f"('{IMAGE_KEY}', '{TEXT_KEY}'); received {tuple(keys)}"
            )
        self.keys = tuple(keys)
        self.image_size = int(image_size)
        self.max_length = int(max_length)
        self.vocabulary = None
        if TEXT_KEY in self.keys:
            self.vocabulary = Vocabulary(vocabulary_path, name="vocabulary")

    def tokenize(self, texts):
        """Strings `[B]` → int32 ids `[B, max_length]` (0 = padding)."""
        ids = self.vocabulary.lookup(text.tokenize(texts))
        return text.pad_ragged(ids, self.max_length)

    def __call__(self, raw):
        """Maps a dict of raw `[B]` tensors to a dict of model inputs."""
        missing = [key for key in self.keys if key not in raw]
        if missing:
            raise ValueError(
                f"ImageTextPreprocessor: missing raw input {missing[0]!r}; "
                f"received {sorted(raw)}"
            )
        outputs = {}
        if IMAGE_KEY in self.keys:
            outputs[IMAGE_KEY] = decode_images(
                raw[IMAGE_KEY], self.image_size, name=IMAGE_KEY
            )
        if TEXT_KEY in self.keys:
            outputs[TEXT_KEY] = self.tokenize(raw[TEXT_KEY])
        return outputs


def raw_dataset(examples, image_key=IMAGE_KEY, text_key=TEXT_KEY):
    """Unbatched `({image_key: bytes, text_key: string}, labels)` examples.

    Args:
        examples: `ImageTextExamples`.
        image_key: str. Key of the image bytes. Defaults to `"image"`.
        text_key: str. Key of the text. Defaults to `"report"`.

    Returns:
        A `tf.data.Dataset` that reads each image file with
        `tf.io.read_file`; the raw values a serving client sends.
    """
    return _table(examples).map(
        lambda path, report, labels: (
            {image_key: tf.io.read_file(path), text_key: report},
            labels,
        ),
        num_parallel_calls=AUTOTUNE,
    )


def _read(path, report, labels):
    return {IMAGE_KEY: tf.io.read_file(path), TEXT_KEY: report}, labels


def _table(examples):
    return tf.data.Dataset.from_tensor_slices(
        (
            tf.constant(list(examples.image_paths), tf.string),
            tf.constant(list(examples.texts), tf.string),
            tf.constant(np.asarray(examples.labels, np.float32)),
        )
    )


def augmentation_layers(seed=0, translation=0.05, contrast=0.1):
    """Keras core augmentation layers that keep findings' labels valid.

    Small shifts and contrast changes only: no flips (left/right and
    upper/lower lung zones carry meaning in chest images, and a flipped
    heart is a different finding) and no large crops (a finding at the
    edge could be cut out).

    Args:
        seed: int. Seed of the random layers. Defaults to 0.
        translation: float. Largest shift, as a fraction of the image side.
            Defaults to 0.05.
        contrast: float. Largest contrast change factor. Defaults to 0.1.

    Returns:
        A list of Keras layers to apply in order to `[B, S, S, 3]` float
        images in 0..255.
    """
    layers = []
    if translation:
        layers.append(
            keras.layers.RandomTranslation(
                translation, translation, fill_mode="nearest", seed=seed
            )
        )
    if contrast:
        layers.append(
            keras.layers.RandomContrast(
                contrast, value_range=(0, 255), seed=seed + 1
            )
        )
    return layers


def make_pipeline(
    examples,
    preprocessor,
    batch_size,
    training=False,
    seed=0,
    augmentation=None,
    targets=None,
    cache_limit_bytes=CACHE_LIMIT_BYTES,
):
    """Batched `(model inputs, targets)` for `model.fit` / `evaluate`.

    Raw bytes and strings go through `preprocessor` in batches, exactly as
    in serving. When the decoded images of the split fit in
    `cache_limit_bytes`, they are decoded once and cached in memory;
    otherwise the file paths are shuffled and every epoch reads and decodes
    in parallel. Augmentation (training only) runs after the cache.

    Args:
        examples: `ImageTextExamples` of one split.
        preprocessor: `ImageTextPreprocessor`.
        batch_size: int. Examples per batch.
        training: bool. Shuffle (reshuffled each epoch) and augment.
            Defaults to False.
        seed: int. Shuffle seed. Defaults to 0.
        augmentation: list of Keras layers applied to the image in
            training, e.g. `augmentation_layers()`. Defaults to None.
        targets: callable `(inputs, labels) -> targets` giving the model's
            training targets; defaults to the labels.
        cache_limit_bytes: int. Largest decoded split kept in memory.
            Defaults to 1 GiB.

    Returns:
        A prefetched `tf.data.Dataset`.
    """
    size = preprocessor.image_size
    decoded_bytes = len(examples) * size * size * 3 * 4
    preprocess = lambda raw, labels: (preprocessor(raw), labels)  # noqa: E731
    if decoded_bytes <= cache_limit_bytes:
        dataset = raw_dataset(examples).batch(_PREPROCESS_BATCH)
        dataset = dataset.map(preprocess, num_parallel_calls=AUTOTUNE)
        # unbatch() forgets the size; restore it so Keras knows the steps.
        dataset = dataset.unbatch().apply(
            tf.data.experimental.assert_cardinality(len(examples))
        )
        dataset = dataset.cache()
        if training:
            dataset = dataset.shuffle(
                len(examples), seed=seed, reshuffle_each_iteration=True
            )
        dataset = dataset.batch(batch_size)
    else:
        # Shuffle file names, not decoded images, then read in parallel.
        dataset = _table(examples)
        if training:
            dataset = dataset.shuffle(
                len(examples), seed=seed, reshuffle_each_iteration=True
            )
        dataset = dataset.map(_read, num_parallel_calls=AUTOTUNE)
        dataset = dataset.batch(batch_size)
        dataset = dataset.map(preprocess, num_parallel_calls=AUTOTUNE)
    if training and augmentation and IMAGE_KEY in preprocessor.keys:

        def augment(inputs, labels):
            image = inputs[IMAGE_KEY]
            for layer in augmentation:
                image = layer(image, training=True)
            return {**inputs, IMAGE_KEY: image}, labels

        dataset = dataset.map(augment, num_parallel_calls=AUTOTUNE)
    if targets is not None:
        dataset = dataset.map(
            lambda inputs, labels: (inputs, targets(inputs, labels)),
            num_parallel_calls=AUTOTUNE,
        )
    return dataset.prefetch(AUTOTUNE)
