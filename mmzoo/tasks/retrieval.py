"""Retrieval task: image-caption folders → a dual encoder → embeddings,
similarities and a gallery search served from raw bytes and text.

Datasets: `synthetic` (shape scenes with 3-5 captions each, written in the
`flickr8k` layout and read back by the same reader as a user's folder),
`flickr8k` (`Images/` + `captions.txt` or `Flickr8k.token.txt`),
`image-text-pairs` (`x.jpg` + `x.txt`, one caption a line), `tfds:NAME`
(a TensorFlow Datasets builder with an image and captions, written as
image-text pairs: `mmzoo.data.tfds`) and `dummy`.
Images, not captions, are split 80/10/10 by seed. An image with several
captions is one item with several positives: every (image, caption) pair
is a training example whose target is the image's index, so that two
captions of one image in a batch are both positives
(`mmzoo.heads.retrieval.ContrastiveLoss`).

Metrics (`evaluate`): the contrastive `loss`, and over the whole split
(every image against every caption; `mmzoo.metrics.retrieval`)
`image_to_text_recall@1/5/10`, `text_to_image_recall@1/5/10`, their
median ranks, `median_rank` (text→image) and `chance_recall@5`.

Serving: `serving_default` takes `image` (bytes `[None]`) and `text`
(`[None]`) and returns `similarity` (`[None]`, the cosine of each pair);
`embed_image` (`image` only) and `embed_text` (`text` only) return the
unit-length `embedding` `[None, D]`. With a gallery attached at export
(`attach_gallery`; `mmzoo export RUN_DIR --gallery DIR`), also
`search_by_text` (`text`) and `search_by_image` (`image`): the top-k
gallery `keys` (string `[None, k]`) and their `scores` (`[None, k]`),
brute force over the gallery's embeddings held in the SavedModel's
variables.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from mmzoo.data.captions import IMAGE_EXTENSIONS
from mmzoo.data.examples import LabeledExamples, make_pipeline, raw_dataset
from mmzoo.data.images import validate_image_files
from mmzoo.data.modalities import Preprocessor, fit_preprocessor
from mmzoo.heads.retrieval import ContrastiveLoss
from mmzoo.metrics.retrieval import retrieval_metrics
from mmzoo.models.dual_encoder import (
    IMAGE,
    IMAGE_TOWER,
    LOGITS,
    TEXT,
    TEXT_TOWER,
)
from mmzoo.tasks.base import (
    Endpoint,
    Prepared,
    Task,
    replace_config,
)
from mmzoo.tasks.captioning import read_captions, split_captions
from mmzoo.training_config import compile_model

SIMILARITY = "similarity"
EMBEDDING = "embedding"
KEYS = "keys"
SCORES = "scores"
DEFAULT_TOP_K = 10
# Rows embedded per call when embedding a split or a gallery.
_EMBED_BATCH = 256


@dataclasses.dataclass
class RetrievalPrepared(Prepared):
    """`Prepared` plus each split's images and captions.

    Attributes:
        data: dict of split name to `mmzoo.data.captions.CaptionData`.
        examples: dict of split name to `LabeledExamples` of (image path,
            caption) pairs whose label is the image's index in the split.
    """

    data: dict = dataclasses.field(default_factory=dict)
    examples: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Gallery:
    """Precomputed gallery: what `search_by_*` ranks.

    Attributes:
        keys: sequence of str, one per item (file names, captions, ids).
        embeddings: float `[M, D]`, unit rows from the same dual encoder.
    """

    keys: tuple
    embeddings: np.ndarray


class GalleryIndex(tf.Module):
    """A gallery inside the export: keys and embeddings as variables (saved
    in the SavedModel's checkpoint, not its graph) and a brute-force top-k.

    Args:
        gallery: `Gallery`.
        top_k: int. Results per query; at most the gallery's size.
    """

    def __init__(self, gallery, top_k=DEFAULT_TOP_K, name="gallery"):
        super().__init__(name=name)
        embeddings = np.asarray(gallery.embeddings, np.float32)
        keys = [str(k) for k in gallery.keys]
        if embeddings.ndim != 2 or len(keys) != len(embeddings):
            raise ValueError(
                f"gallery: {len(keys)} keys and embeddings of shape "
                f"{embeddings.shape}; need one [D] row per key"
            )
        if not keys:
            raise ValueError("gallery: it is empty; give at least one item")
        if int(top_k) < 1:
            raise ValueError(f"gallery: top_k must be >= 1, got {top_k}")
        self.top_k = min(int(top_k), len(keys))
        self.keys = tf.Variable(keys, dtype=tf.string, trainable=False)
        self.embeddings = tf.Variable(embeddings, trainable=False)

    @property
    def size(self):
        return int(self.embeddings.shape[0])

    def search(self, queries):
        """Unit `[B, D]` queries → `{keys: [B, k], scores: [B, k]}`."""
        scores = tf.matmul(
            tf.cast(queries, tf.float32), self.embeddings, transpose_b=True
        )
        best, index = tf.math.top_k(scores, k=self.top_k)
        return {KEYS: tf.gather(self.keys, index), SCORES: best}


def _tower(model, name):
    return model.get_layer(name)


def _embed_images(model, preprocessor, images):
    pixels = preprocessor.processors[IMAGE](images)
    return _tower(model, IMAGE_TOWER)(pixels, training=False)


def _embed_texts(model, preprocessor, texts):
    token_ids = preprocessor.processors[TEXT](texts)
    return _tower(model, TEXT_TOWER)(token_ids, training=False)


def _serve_similarity(model, preprocessor, raw):
    images = _embed_images(model, preprocessor, raw[IMAGE])
    texts = _embed_texts(model, preprocessor, raw[TEXT])
    return {SIMILARITY: tf.reduce_sum(images * texts, axis=-1)}


def _serve_embed_image(model, preprocessor, raw):
    return {EMBEDDING: _embed_images(model, preprocessor, raw[IMAGE])}


def _serve_embed_text(model, preprocessor, raw):
    return {EMBEDDING: _embed_texts(model, preprocessor, raw[TEXT])}


def _serve_search_by_text(model, preprocessor, raw):
    queries = _embed_texts(model, preprocessor, raw[TEXT])
    return preprocessor.gallery.search(queries)


def _serve_search_by_image(model, preprocessor, raw):
    queries = _embed_images(model, preprocessor, raw[IMAGE])
    return preprocessor.gallery.search(queries)


def _pairs(data):
    """`LabeledExamples` of every (image, caption) pair of `data`, labeled
    with the image's index."""
    paths, texts, owners = [], [], []
    for index, (path, group) in enumerate(zip(data.image_paths, data.captions)):
        for caption in group:
            paths.append(path)
            texts.append(caption)
            owners.append(index)
    return LabeledExamples(
        columns={IMAGE: paths, TEXT: texts},
        kinds={IMAGE: "image", TEXT: "text"},
        labels=np.asarray(owners, np.float32)[:, None],
    )


def _batches(values, size=_EMBED_BATCH):
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


class RetrievalTask(Task):
    """Generic glue of dual encoders: caption folders, in-batch
    contrastive training, whole-split recall, embeddings and gallery search
    in the export.

    Works with any registered model whose outputs include `logits` (the
    `[B, B]` in-batch similarities) and which holds the nested models
    `image_tower` and `text_tower` (unit embeddings), with inputs `image`
    and `text` (`mmzoo.models.dual_encoder`).

    Example:
    >>> task = mmzoo.tasks.get_task("dual_encoder")
    >>> prepared = task.prepare(config, "flickr8k", "data/flickr8k", "pre", 0)
    >>> task.attach_gallery(model, prepared.preprocessor, "photos/")
    """

    headline_metrics = ("text_to_image_recall@5", "image_to_text_recall@5")
    synthetic_images = 1000

    # ------------------------------------------------------------- data --

    def read(self, config, dataset, data_dir, directory, seed):
        """Reads `dataset` as `CaptionData` (synthetic and dummy: written
        first)."""
        size = config.modality_specs()[0].size
        return read_captions(
            self, config, dataset, data_dir, directory, seed, size
        )

    def prepare(self, config, dataset, data_dir, directory, seed):
        data = self.read(config, dataset, data_dir, directory, seed)
        parts = split_captions(data, dataset, seed)
        train_captions = [c for group in parts["train"].captions for c in group]
        fitted, preprocessor = fit_preprocessor(
            self.input_specs(config),
            {IMAGE: [], TEXT: train_captions},
            directory,
        )
        config = replace_config(config, specs=tuple(fitted))
        examples = {name: _pairs(part) for name, part in parts.items()}
        return RetrievalPrepared(
            config=config,
            preprocessor=preprocessor,
            splits={name: _raw_pairs(part) for name, part in examples.items()},
            directory=directory,
            data=parts,
            examples=examples,
        )

    def make_preprocessor(self, config, directory):
        return Preprocessor(self.input_specs(config), directory)

    def pipeline(self, prepared, split, batch_size, training=False, seed=0):
        def targets(inputs, labels):
            return {LOGITS: tf.cast(labels[:, 0], tf.int32)}

        return make_pipeline(
            prepared.examples[split],
            {IMAGE: IMAGE, TEXT: TEXT},
            prepared.preprocessor,
            batch_size,
            training=training,
            seed=seed,
            targets=targets,
        )

    def raw_examples(self, prepared, split="test", count=8):
        """The first `count` pairs of `split` as a client sends them:
        `{"image": bytes, "text": str}` NumPy arrays."""
        part = prepared.examples[split]
        paths = part.columns[IMAGE][:count]
        return {
            IMAGE: np.asarray([_read_bytes(p) for p in paths], object),
            TEXT: np.asarray(part.columns[TEXT][:count], object),
        }

    # --------------------------------------------------------- training --

    def compile(self, model, config):
        compile_model(
            model, config, loss={LOGITS: ContrastiveLoss(config.loss)}
        )

    def embed(self, model, preprocessor, images=(), texts=()):
        """Unit embeddings of raw values, in batches (NumPy).

        Args:
            model: the dual encoder.
            preprocessor: its `Preprocessor`.
            images: sequence of encoded image bytes.
            texts: sequence of str.

        Returns:
            `(image embeddings [I, D], text embeddings [T, D])`.
        """
        image_parts = [
            np.asarray(
                _embed_images(
                    model, preprocessor, tf.constant(list(batch), tf.string)
                )
            )
            for batch in _batches(list(images))
        ]
        text_parts = [
            np.asarray(
                _embed_texts(
                    model, preprocessor, tf.constant(list(batch), tf.string)
                )
            )
            for batch in _batches(list(texts))
        ]
        width = int(_tower(model, IMAGE_TOWER).output.shape[-1])
        empty = np.zeros((0, width), np.float32)
        return (
            np.concatenate(image_parts) if image_parts else empty,
            np.concatenate(text_parts) if text_parts else empty,
        )

    def evaluate(self, model, prepared, split, batch_size):
        """Loss and whole-split retrieval metrics (module docstring)."""
        data = prepared.data[split]
        owners, texts = [], []
        for index, group in enumerate(data.captions):
            owners.extend([index] * len(group))
            texts.extend(group)
        image_embeddings, text_embeddings = self.embed(
            model,
            prepared.preprocessor,
            images=[_read_bytes(p) for p in data.image_paths],
            texts=texts,
        )
        results = retrieval_metrics(image_embeddings, text_embeddings, owners)
        losses = model.evaluate(
            self.pipeline(prepared, split, batch_size),
            return_dict=True,
            verbose=0,
        )
        results["loss"] = float(losses["loss"])
        return results

    def embeddings(self, model, prepared, split="test"):
        """The images of `split` and their captions in the shared space,
        one table (`modality`, `item`: the image index, `text`: the
        caption or the image file name), for the Embedding Projector: an
        image sits among its own captions when retrieval works."""
        data = prepared.data[split]
        texts, owners = [], []
        for index, group in enumerate(data.captions):
            texts.extend(group)
            owners.extend([index] * len(group))
        images, captions = self.embed(
            model,
            prepared.preprocessor,
            images=[_read_bytes(p) for p in data.image_paths],
            texts=texts,
        )
        metadata = {
            "modality": ["image"] * len(images) + ["text"] * len(captions),
            "item": list(range(len(images))) + owners,
            "text": [os.path.basename(p) for p in data.image_paths] + texts,
        }
        return np.concatenate([images, captions]), metadata

    # ---------------------------------------------------------- serving --

    def serve(self, model, preprocessor, raw):
        """Cosine similarity of each (image, text) pair."""
        return _serve_similarity(model, preprocessor, raw)

    def extra_signatures(self, config):
        return {
            "embed_image": Endpoint(_serve_embed_image, (IMAGE,)),
            "embed_text": Endpoint(_serve_embed_text, (TEXT,)),
        }

    def endpoints(self, config, preprocessor=None):
        """The signatures of the module docstring; `search_by_text` and
        `search_by_image` only when `preprocessor` carries a gallery."""
        out = super().endpoints(config, preprocessor)
        if getattr(preprocessor, "gallery", None) is not None:
            out["search_by_text"] = Endpoint(_serve_search_by_text, (TEXT,))
            out["search_by_image"] = Endpoint(_serve_search_by_image, (IMAGE,))
        return out

    def gallery_from(self, model, preprocessor, source):
        """A `Gallery` of `source`: a folder of images (keys: file names
        relative to it, sorted; subfolders included), a text file (keys:
        its non-empty lines, e.g. captions), or a `Gallery` as is.

        Raises:
            ValueError: naming the source and what is wrong with it (no
                images, a corrupt image, an empty file).
        """
        if isinstance(source, Gallery):
            return source
        source = os.fspath(source)
        if os.path.isdir(source):
            keys = sorted(
                os.path.relpath(os.path.join(root, name), source)
                for root, _, names in os.walk(source)
                for name in names
                if name.lower().endswith(IMAGE_EXTENSIONS)
            )
            if not keys:
                raise ValueError(
                    f"gallery {source}: no image files "
                    f"({', '.join(IMAGE_EXTENSIONS)}) in it"
                )
            paths = [os.path.join(source, k) for k in keys]
            validate_image_files(paths, f"gallery {source}")
            embeddings, _ = self.embed(
                model, preprocessor, images=[_read_bytes(p) for p in paths]
            )
            return Gallery(tuple(keys), embeddings)
        if os.path.isfile(source):
            with open(source, encoding="utf-8") as f:
                keys = [line.strip() for line in f if line.strip()]
            if not keys:
                raise ValueError(f"gallery {source}: the file has no lines")
            _, embeddings = self.embed(model, preprocessor, texts=keys)
            return Gallery(tuple(keys), embeddings)
        raise ValueError(
            f"gallery {source}: no such folder or file; give a folder of "
            "images or a text file of captions"
        )

    def attach_gallery(self, model, preprocessor, source, top_k=None):
        """Embeds `source` (see `gallery_from`) and attaches it to
        `preprocessor`, so that an export of it serves `search_by_text`
        and `search_by_image`.

        Returns:
            The `GalleryIndex`.
        """
        gallery = self.gallery_from(model, preprocessor, source)
        index = GalleryIndex(gallery, top_k or DEFAULT_TOP_K)
        preprocessor.gallery = index
        return index


def _raw_pairs(examples):
    return raw_dataset(examples, {IMAGE: IMAGE, TEXT: TEXT})
