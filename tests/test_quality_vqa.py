"""Quality gates of issue 10's two models on the synthetic sets, marked
`slow` (CI runs the shorter versions in `tests/tasks/test_retrieval.py`
and `tests/tasks/test_vqa_task.py`).

- `vqa`: the tiny variant trained three times on the same split, on both
  inputs, on the question alone and on the image alone (`modalities=`);
  both must beat each ablation by a clear margin of VQA accuracy.
- `dual_encoder`: trained on 1000 scenes with the InfoNCE and the SigLIP
  loss; recall@5 both ways must be far above chance with either.

Run it with:
    .venv/bin/python -m pytest -m slow -s tests/test_quality_vqa.py
"""

import json

import keras
import pytest

import mmzoo
from mmzoo.tasks import get_task

SEED = 0


def _fit_and_evaluate(task, prepared, name):
    keras.utils.set_random_seed(SEED)
    model = mmzoo.build(name, config=prepared.config)
    task.compile(model, prepared.config)
    model.fit(
        task.pipeline(
            prepared, "train", prepared.config.batch_size, training=True
        ),
        epochs=prepared.config.epochs,
        shuffle=False,
        verbose=0,
    )
    return task.evaluate(model, prepared, "test", 256)


@pytest.mark.slow
def test_vqa_needs_both_modalities(tmp_path):
    task = get_task("vqa")
    keras.utils.set_random_seed(SEED)
    prepared = task.prepare(
        mmzoo.get_config("vqa", "tiny"), "synthetic", None, str(tmp_path), SEED
    )
    results = {}
    for label, modalities in (
        ("both", ()),
        ("question", ("question",)),
        ("image", ("image",)),
    ):
        run = prepared
        if modalities:
            run = task.with_overrides(prepared, modalities=modalities)
        results[label] = _fit_and_evaluate(task, run, "vqa")
    print(json.dumps(results, indent=1))
    both = results["both"]["vqa_accuracy"]
    assert both > results["question"]["vqa_accuracy"] + 0.1
    assert both > results["image"]["vqa_accuracy"] + 0.3
    assert both > results["both"]["baseline_vqa_accuracy"] + 0.1


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["infonce", "siglip"])
def test_dual_encoder_recall_far_above_chance(loss, tmp_path):
    task = get_task("dual_encoder")
    task.synthetic_images = 1000
    keras.utils.set_random_seed(SEED)
    config = mmzoo.get_config("dual_encoder", "tiny", loss=loss)
    prepared = task.prepare(config, "synthetic", None, str(tmp_path), SEED)
    metrics = _fit_and_evaluate(task, prepared, "dual_encoder")
    print(loss, json.dumps(metrics, indent=1))
    chance = metrics["chance_recall@5"]
    for direction in ("image_to_text", "text_to_image"):
        assert metrics[f"{direction}_recall@5"] > max(0.5, 8 * chance)
