"""Captioning task: image folders → a captioner → captions from bytes.

Datasets: `synthetic` (shape scenes written in the `flickr8k` layout and
read back by the same reader as a user's folder), `flickr8k` (`Images/` +
`captions.txt` or `Flickr8k.token.txt`), `image-text-pairs` (`x.jpg` +
`x.txt`) and `tfds:NAME` (a TensorFlow Datasets builder with an image and
captions, e.g. `tfds:coco_captions[:2000]`, written as image-text pairs:
`mmzoo.data.tfds`), plus `dummy` (random pictures and words, for the
contract tests). Images, not captions, are split 80/10/10 by seed; every
caption of a training image is a training example, and every caption of
an evaluated image is a reference.

Serving: `serving_default` takes `image` (JPEG/PNG bytes `[None]`) and
returns `caption` (string) and `score` (the caption's log-probability)
from beam search inside the graph; `greedy` does the same with greedy
decoding. The vocabulary travels as an asset; ids are detokenized in the
graph.
"""

import collections
import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from mmzoo.data import caption_pipeline, captions, splits, text, tfds
from mmzoo.data.glove import glove_words
from mmzoo.data.images import validate_image_files
from mmzoo.data.synthetic_images import write_synthetic_captions
from mmzoo.heads import generation
from mmzoo.metrics.captioning import caption_metrics
from mmzoo.specs import TextSpec, dummy_raw_inputs
from mmzoo.tasks.base import DUMMY_DATASET, Prepared, Task, replace_config
from mmzoo.training_config import compile_model

IMAGE = generation.IMAGE_INPUT
# Images of the `dummy` dataset: 8/1/1 after the 80/10/10 split.
DUMMY_IMAGES = 10


@dataclasses.dataclass
class CaptionPrepared(Prepared):
    """`Prepared` plus the images and captions of each split.

    Attributes:
        data: dict of split name to `mmzoo.data.captions.CaptionData`.
        baseline_caption: str. The most frequent (standardized) training
            caption, the "always say this" baseline of `evaluate`.
    """

    data: dict = dataclasses.field(default_factory=dict)
    baseline_caption: str = ""


class CaptioningTask(Task):
    """Glue between caption datasets, a captioner and serving.

    Works with any registered captioner that meets the decoding contract of
    `mmzoo.heads.generation` (inputs `image` and `token_ids`, the named
    layers decoding calls) and has the config fields `image_size`,
    `max_length`, `vocabulary_size` and `beam_width`.

    Attributes:
        synthetic_images: int. Scenes written for `--dataset synthetic`.
        with_meteor: bool. Report METEOR in `evaluate` when Java and
            pycocoevalcap are there.

    Example:
    >>> task = mmzoo.tasks.get_task("vit_lstm_captioner")
    >>> prepared = task.prepare(config, "flickr8k", "data/flickr8k", "pre", 0)
    >>> captions, scores = task.caption(model, prepared.preprocessor, [jpeg])
    """

    headline_metrics = ("bleu_4", "cider")

    synthetic_images = 1000
    with_meteor = True

    # ------------------------------------------------------------- data --

    def read(self, config, dataset, data_dir, directory, seed):
        """Reads `dataset` as `CaptionData` (synthetic and dummy: written
        first)."""
        return read_captions(
            self, config, dataset, data_dir, directory, seed, config.image_size
        )

    def prepare(self, config, dataset, data_dir, directory, seed):
        data = self.read(config, dataset, data_dir, directory, seed)
        parts = split_captions(data, dataset, seed)
        train_captions = [c for group in parts["train"].captions for c in group]
        os.makedirs(directory, exist_ok=True)
        tokens = caption_pipeline.build_vocabulary(
            train_captions,
            os.path.join(directory, caption_pipeline.VOCABULARY_FILE),
            extra_words=_word_vector_words(config),
        )
        vocabulary_file = os.path.join(
            directory, caption_pipeline.VOCABULARY_FILE
        )
        config = replace_config(
            config,
            vocabulary_size=len(tokens),
            max_length=caption_pipeline.caption_length(
                train_captions, config.max_length
            ),
            # A captioner that starts its word embedding from word vectors
            # (GloVe) looks its words up in this file.
            **(
                {"vocabulary_file": vocabulary_file}
                if hasattr(config, "vocabulary_file")
                else {}
            ),
        )
        standardized = [text.standardize_py(c) for c in train_captions]
        baseline = collections.Counter(standardized).most_common(1)[0][0]
        return CaptionPrepared(
            config=config,
            preprocessor=self.make_preprocessor(config, directory),
            splits={
                name: caption_pipeline.pairs_dataset(part)
                for name, part in parts.items()
            },
            directory=directory,
            data=parts,
            baseline_caption=baseline,
        )

    def make_preprocessor(self, config, directory):
        return caption_pipeline.CaptionPreprocessor(
            os.path.join(directory, caption_pipeline.VOCABULARY_FILE),
            config.image_size,
            config.max_length,
            bidirectional=getattr(config, "bidirectional", False),
        )

    def pipeline(self, prepared, split, batch_size, training=False, seed=0):
        return caption_pipeline.make_pipeline(
            prepared.data[split],
            prepared.preprocessor,
            batch_size,
            training=training,
            seed=seed,
        )

    def raw_examples(self, prepared, split="test", count=8):
        """The first `count` images of `split` as a client sends them:
        `{"image": encoded bytes}` (a NumPy `S` array)."""
        paths = prepared.data[split].image_paths[:count]
        return {IMAGE: caption_pipeline.read_image_files(paths)}

    # --------------------------------------------------------- training --

    def compile(self, model, config):
        loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=generation.PAD_ID
        )
        if len(model.outputs) > 1:
            # One per language model (a bidirectional captioner has two).
            loss = {name: loss for name in model.output_names}
        compile_model(model, config, loss=loss)

    def evaluate(self, model, prepared, split, batch_size):
        """Caption metrics of beam-search captions on `split`.

        Every image of the split is captioned once by the serving function
        (beam search, `config.beam_width`) and scored against all its
        references: BLEU-1..4, METEOR (when Java is there), ROUGE-L and
        CIDEr-D, as the COCO caption evaluation computes them. Also the
        teacher-forced `loss`, and `baseline_bleu_4` / `baseline_cider` of
        always answering the most frequent training caption.
        """
        data = prepared.data[split]
        hypotheses, _ = self.caption(
            model,
            prepared.preprocessor,
            data.image_paths,
            batch_size=batch_size,
            graph=True,
        )
        tokens = [text.tokenize_py(h) for h in hypotheses]
        references = [
            [text.tokenize_py(c) for c in group] for group in data.captions
        ]
        results = caption_metrics(
            tokens, references, with_meteor=self.with_meteor
        )
        losses = model.evaluate(
            self.pipeline(prepared, split, batch_size),
            return_dict=True,
            verbose=0,
        )
        results["loss"] = float(losses["loss"])
        baseline = caption_metrics(
            [text.tokenize_py(prepared.baseline_caption)] * len(references),
            references,
            with_meteor=False,
        )
        results["baseline_bleu_4"] = baseline["bleu_4"]
        results["baseline_cider"] = baseline["cider"]
        return {k: float(v) for k, v in results.items()}

    # ---------------------------------------------------------- serving --

    def serving_signature(self, config):
        return {IMAGE: tf.TensorSpec([None], tf.string, name=IMAGE)}

    def serve(self, model, preprocessor, raw):
        """Beam search (the config's `beam_width`) on image bytes."""
        return _serve(model, preprocessor, raw, beam_width=None)

    def extra_signatures(self, config):
        return {"greedy": _serve_greedy}

    # ------------------------------------------------------- Python API --

    def caption(
        self,
        model,
        preprocessor,
        images,
        beam_width=None,
        batch_size=32,
        graph=False,
    ):
        """Captions images from Python.

        Args:
            model: a trained captioner.
            preprocessor: its `CaptionPreprocessor` (`prepared.preprocessor`
                or `make_preprocessor`).
            images: list of encoded JPEG/PNG `bytes` or of file paths.
            beam_width: int or None. 1 decodes greedily. Defaults to the
                config's `beam_width`.
            batch_size: int. Images decoded at a time. Defaults to 32.
            graph: bool. Decode in a traced `tf.function` (fast, as the
                SavedModel does) instead of eagerly with
                `generation.generate` and `ids_to_text`. Both give
                the same captions. Defaults to False.

        Returns:
            A tuple `(captions, scores)`: a list of str and a float32 NumPy
            array of log-probabilities.

        Example:
        >>> captions, scores = task.caption(model, prepared.preprocessor,
        ...                                 ["photo.jpg"])
        """
        contents = [
            image if isinstance(image, bytes) else _read(image)
            for image in images
        ]
        width = (
            beam_width or model.get_layer(generation.CAPTION_DECODER).beam_width
        )
        if graph:
            fn = tf.function(
                lambda data: _serve(
                    model, preprocessor, {IMAGE: data}, beam_width=width
                ),
                input_signature=[tf.TensorSpec([None], tf.string)],
                autograph=False,
            )
        all_captions, all_scores = [], []
        for start in range(0, len(contents), batch_size):
            batch = tf.constant(contents[start : start + batch_size])
            if graph:
                out = fn(batch)
                all_captions += [
                    c.decode("utf-8") for c in out["caption"].numpy()
                ]
                all_scores.append(out["score"].numpy())
                continue
            pixels = preprocessor.images(batch)
            ids, scores = generation.generate(model, pixels, width)
            all_captions += generation.ids_to_text(ids, preprocessor.tokens)
            all_scores.append(scores)
        scores = (
            np.concatenate(all_scores).astype("float32")
            if all_scores
            else np.zeros([0], "float32")
        )
        return all_captions, scores

    def attention(self, model, preprocessor, image, beam_width=None):
        """Captions one image and returns where the decoder looked.

        Args:
            model: a trained captioner.
            preprocessor: its `CaptionPreprocessor`.
            image: encoded JPEG/PNG `bytes` or a file path.
            beam_width: int or None. As in `caption`.

        Returns:
            A tuple `(words, maps, pixels)`: the caption's words (the end
            token last when generated), float32 `[len(words), h, w]`
            attention maps over the region grid (each sums to 1), and the
            decoded float32 `[S, S, 3]` image.
        """
        data = image if isinstance(image, bytes) else _read(image)
        pixels = preprocessor.images(tf.constant([data]))
        width = (
            beam_width or model.get_layer(generation.CAPTION_DECODER).beam_width
        )
        ids, _ = generation.generate(model, pixels, width)
        row = [int(t) for t in ids[0] if t != generation.PAD_ID]
        if generation.END_ID in row:
            row = row[: row.index(generation.END_ID) + 1]
        weights = generation.attention_weights(
            model, pixels, np.array([row], "int32")
        )[0]
        side = int(round(np.sqrt(weights.shape[-1])))
        if side * side != weights.shape[-1]:
            raise ValueError(
                f"attention over {weights.shape[-1]} regions is not a "
                "square grid"
            )
        words = [preprocessor.tokens[t] for t in row]
        return words, weights.reshape(len(row), side, side), pixels[0].numpy()


def read_captions(task, config, dataset, data_dir, directory, seed, size):
    """Reads a caption dataset of `task` (`synthetic`, `flickr8k`,
    `image-text-pairs`, `tfds:NAME` or `dummy`) as `CaptionData`;
    `synthetic`, `tfds:NAME` and `dummy` are written under `directory`
    first (`synthetic` at `size` pixels)."""
    task.check_dataset(dataset, data_dir)
    if dataset == DUMMY_DATASET:
        return write_dummy_captions(
            os.path.join(directory, DUMMY_DATASET),
            task.input_specs(config),
            seed,
        )
    if dataset == "synthetic":
        folder = write_synthetic_captions(
            os.path.join(directory, "synthetic"),
            task.synthetic_images,
            seed,
            image_size=size,
        )
        return captions.read_flickr8k(folder)
    if dataset == "flickr8k":
        return captions.read_flickr8k(data_dir)
    if tfds.is_tfds(dataset):
        # Written as image-text pairs, then read like a user's folder; the
        # layout has no splits, so the builder's are concatenated.
        data_dir = tfds.materialize(
            dataset, tfds.IMAGE_TEXT_PAIRS, data_dir, directory, task.model
        )
    return captions.read_image_text_pairs(data_dir)


def split_captions(data, dataset, seed):
    """Checks every image of `data` (a corrupt file is named) and splits
    the images, not the captions, 80/10/10 by `seed`.

    Returns:
        dict of split name to `CaptionData`.

    Raises:
        ValueError: a bad image, or too few images for three splits.
    """
    validate_image_files(data.image_paths, dataset)
    parts = {
        name: captions.CaptionData(
            image_paths=[data.image_paths[i] for i in rows],
            captions=[data.captions[i] for i in rows],
        )
        for name, rows in splits.split_indices(len(data), seed).items()
    }
    empty = [name for name, part in parts.items() if not len(part)]
    if empty:
        raise ValueError(
            f"{dataset}: {len(data)} images leave the {', '.join(empty)} "
            "split(s) empty; the 80/10/10 split needs at least 8 images"
        )
    return parts


def _word_vector_words(config):
    """The words a captioner that starts from a GloVe file adds to the
    training vocabulary (`glove_extra_words` of them; none otherwise)."""
    path = getattr(config, "glove_path", "")
    count = int(getattr(config, "glove_extra_words", 0))
    if not path or count <= 0:
        return []
    return glove_words(path, count)


def write_dummy_captions(directory, specs, seed):
    """Writes `DUMMY_IMAGES` random PNGs of the image spec and returns them
    with two random captions each (the very last one empty) as
    `CaptionData`: the `dummy` dataset of the contract tests (no signal)."""
    (spec,) = [s for s in specs if s.kind == "image"]
    pictures = dummy_raw_inputs([spec], DUMMY_IMAGES, seed)[spec.name]
    texts = TextSpec(name="caption").dummy_raw(2 * DUMMY_IMAGES, seed)
    os.makedirs(directory, exist_ok=True)
    paths = []
    for i, data in enumerate(pictures):
        paths.append(os.path.join(directory, f"{spec.name}_{i:04d}.png"))
        with open(paths[-1], "wb") as f:
            f.write(data)
    groups = [
        [str(t) for t in texts[2 * i : 2 * i + 2]] for i in range(DUMMY_IMAGES)
    ]
    return captions.CaptionData(image_paths=paths, captions=groups)


def _read(path):
    with open(os.fspath(path), "rb") as f:
        return f.read()


def _serve(model, preprocessor, raw, beam_width=None):
    images = preprocessor.images(raw[IMAGE])
    ids, scores, backward = generation.decode(model, images, beam_width)
    outputs = {
        "caption": preprocessor.detokenize(ids),
        "score": tf.cast(scores, tf.float32),
    }
    if generation.is_bidirectional(model):
        # Which language model's sentence was kept.
        outputs["direction"] = tf.where(backward, "backward", "forward")
    return outputs


def _serve_greedy(model, preprocessor, raw):
    return _serve(model, preprocessor, raw, beam_width=1)
