"""Quality gate of GloVe in `glove_bilstm_captioner` (issue 12), marked
`slow`: with a GloVe file in which synonyms share a vector, the frozen
GloVe start reads captions with words never seen in training better than
a random start.

The synthetic scenes are captioned with synonyms ("disk" for "circle",
"box" for "square", "little" for "small", "big" for "large"). Here the
training and validation captions use only the first word of each pair;
the test captions keep the synonyms, so a test caption may hold words no
training caption has. The GloVe file gives every caption word a random
vector and each synonym its partner's vector (as real GloVe puts
synonyms close), plus unrelated words.

Two tiny captioners train on the same split: one from the GloVe file
(frozen, its words added to the vocabulary: `glove_extra_words`), one from
a random start (the default; an unseen word is OOV). The measure is the
teacher-forced cross-entropy per token of the test captions that hold an
unseen word, over the targets that are training words other than the
synonym pairs (both directions of the bidirectional model): how well each
model reads past a word it never saw. Each test caption is scored as it is
and with its synonyms replaced by their training words; the difference is
what the unseen words cost. GloVe must lose nothing, the random start a
clear margin, and GloVe must score the captions with unseen words better.

Run it with:
    .venv/bin/python -m pytest -m slow -s tests/test_quality_glove.py
"""

import csv
import dataclasses
import json
import os

import keras
import numpy as np
import pytest

import mmzoo
from mmzoo.data import captions as captions_lib
from mmzoo.data.splits import split_indices
from mmzoo.data.synthetic_images import write_synthetic_captions
from mmzoo.data.text import tokenize_py
from mmzoo.tasks import get_task

NAME = "glove_bilstm_captioner"
SEED = 0
IMAGES = 1000
SYNONYMS = {
    "disk": "circle",
    "box": "square",
    "little": "small",
    "big": "large",
}


def _canonical(caption):
    words = caption.rstrip(".").split(" ")
    out = [SYNONYMS.get(w.lower(), w) for w in words]
    if words[0].lower() in SYNONYMS:  # keep the capital letter
        out[0] = out[0].capitalize()
    return " ".join(out) + "."


def _write_data(folder):
    """Synthetic scenes; synonyms only in the test split's captions."""
    write_synthetic_captions(folder, IMAGES, SEED, image_size=32)
    data = captions_lib.read_flickr8k(folder)
    test = {
        os.path.basename(data.image_paths[i])
        for i in split_indices(len(data), SEED)["test"]
    }
    path = os.path.join(folder, "captions.txt")
    with open(path, encoding="utf-8") as f:
        rows = list(csv.reader(f))
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(rows[0])
        for image, caption in rows[1:]:
            writer.writerow(
                (image, caption if image in test else _canonical(caption))
            )
    return folder


def _write_glove(path, words, dimension=32):
    rng = np.random.default_rng(1)
    vectors = {w: rng.normal(size=dimension) for w in words}
    for synonym, word in SYNONYMS.items():
        vectors[synonym] = vectors[word]
    for i in range(200):  # unrelated words, as in a real file
        vectors[f"filler{i}"] = rng.normal(size=dimension)
    with open(path, "w", encoding="utf-8") as f:
        for word, vector in vectors.items():
            f.write(word + " " + " ".join(f"{v:.5f}" for v in vector) + "\n")
    return path


def _seen_word_loss(task, prepared, model, data, seen_ids):
    """Teacher-forced cross-entropy per token over the targets in
    `seen_ids`, both directions: how well the model reads and continues a
    caption."""
    subset = dataclasses.replace(prepared, data={"eval": data})
    total, count = 0.0, 0
    for inputs, targets in task.pipeline(subset, "eval", 64):
        outputs = model.predict_on_batch(
            {k: np.asarray(v) for k, v in inputs.items()}
        )
        if not isinstance(targets, dict):
            targets, outputs = {"logits": targets}, {"logits": outputs}
        for name, ids in targets.items():
            ids = np.asarray(ids)
            log_probs = np.asarray(
                keras.ops.log_softmax(np.asarray(outputs[name]), axis=-1)
            )
            picked = np.take_along_axis(log_probs, ids[..., None], -1)[..., 0]
            mask = np.isin(ids, seen_ids)
            total -= float(picked[mask].sum())
            count += int(mask.sum())
    return total / count


def _test_captions(prepared, seen, canonical):
    """The test captions holding a word unseen in training, as they are
    or with each synonym replaced by its training word."""
    test = prepared.data["test"]
    paths, groups = [], []
    for path, group in zip(test.image_paths, test.captions):
        kept = [c for c in group if set(tokenize_py(c)) - seen]
        if kept:
            paths.append(path)
            groups.append([_canonical(c) if canonical else c for c in kept])
    return captions_lib.CaptionData(image_paths=paths, captions=groups)


@pytest.mark.slow
def test_frozen_glove_reads_unseen_synonyms_better(tmp_path):
    folder = _write_data(str(tmp_path / "data"))
    task = get_task(NAME)
    data = captions_lib.read_flickr8k(folder)
    words = sorted(
        {w for g in data.captions for c in g for w in tokenize_py(c)}
    )
    glove = _write_glove(str(tmp_path / "glove.txt"), words)
    results = {}
    for label, overrides in (
        ("glove", {"glove_path": glove, "glove_extra_words": 1000}),
        ("random", {}),
    ):
        keras.utils.set_random_seed(SEED)
        config = mmzoo.get_config(NAME, "tiny", **overrides)
        prepared = task.prepare(
            config, "flickr8k", folder, str(tmp_path / label), SEED
        )
        train = prepared.data["train"]
        seen = {w for g in train.captions for c in g for w in tokenize_py(c)}
        assert not seen & set(SYNONYMS)  # the synonyms are unseen
        model = mmzoo.build(NAME, config=prepared.config)
        task.compile(model, prepared.config)
        model.fit(
            task.pipeline(prepared, "train", 32, training=True, seed=SEED),
            epochs=prepared.config.epochs,
            shuffle=False,
            verbose=0,
        )
        # Targets scored: training words other than the synonym pairs', so
        # both versions of a caption score the same positions and differ
        # only in what the model reads.
        paired = set(SYNONYMS) | set(SYNONYMS.values())
        tokens = prepared.preprocessor.tokens
        seen_ids = [
            i for i, t in enumerate(tokens) if t in seen and t not in paired
        ]
        seen_ids.append(tokens.index("[END]"))
        results[label] = {
            version: _seen_word_loss(
                task,
                prepared,
                model,
                _test_captions(prepared, seen, version == "canonical"),
                seen_ids,
            )
            for version in ("with synonyms", "canonical")
        }
        results[label]["gap"] = (
            results[label]["with synonyms"] - results[label]["canonical"]
        )
    print(json.dumps(results, indent=1))
    unseen = _test_captions(prepared, seen, False)
    assert sum(len(g) for g in unseen.captions) > 50
    # GloVe reads "a little red disk" as "a small red circle": no loss.
    assert abs(results["glove"]["gap"]) < 0.02
    # A random start reads the unseen words as OOV and loses the thread.
    assert results["random"]["gap"] > 0.1
    assert (
        results["glove"]["with synonyms"] < results["random"]["with synonyms"]
    )
