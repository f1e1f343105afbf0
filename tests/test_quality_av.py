"""Quality gate of `av_monitor` on the synthetic clips, marked `slow`.

The synthetic `alarm` label holds when a sound burst and a visual event
fall in the same half of the clip, so each modality alone is at chance on
it (`red_object` is decided by the frames alone, `high_tone` by the sound
alone). The tiny variant is trained three times on one split: on both
modalities (cross-modal attention across the two time axes), on the
frames alone and on the audio alone (`modalities=`). Fused macro AUROC
must beat the best single modality by 0.1, and only the fused model may
detect alarms.

Run it with:
    .venv/bin/python -m pytest -m slow -s tests/test_quality_av.py
"""

import json

import keras
import pytest

import mmzoo
from mmzoo.tasks import get_task

SEED = 0
CLIPS = 1000


@pytest.mark.slow
def test_fused_beats_each_modality_alone(tmp_path):
    task = get_task("av_monitor")
    config = mmzoo.get_config(
        "av_monitor", "tiny", synthetic_examples=CLIPS, epochs=25
    )
    keras.utils.set_random_seed(SEED)
    prepared = task.prepare(config, "synthetic", None, str(tmp_path), SEED)
    results = {}
    for label, modalities in (
        ("fused", ()),
        ("video", ("frames",)),
        ("audio", ("audio",)),
    ):
        run = prepared
        if modalities:
            run = task.with_overrides(prepared, modalities=modalities)
        keras.utils.set_random_seed(SEED)
        model = mmzoo.build("av_monitor", config=run.config)
        task.compile(model, run.config)
        model.fit(
            task.pipeline(run, "train", run.config.batch_size, training=True),
            epochs=run.config.epochs,
            shuffle=False,
            verbose=0,
        )
        metrics = task.evaluate(model, run, "test", 256)
        results[label] = {
            k: round(v, 4) for k, v in metrics.items() if "auroc" in k
        }
    print(json.dumps(results, indent=1))
    fused = results["fused"]["auroc"]
    best_single = max(results["video"]["auroc"], results["audio"]["auroc"])
    assert fused >= best_single + 0.1, results
    assert results["fused"]["auroc/alarm"] >= 0.9, results
    for single in ("video", "audio"):
        assert results[single]["auroc/alarm"] <= 0.65, results
    assert results["video"]["auroc/red_object"] >= 0.95, results
    assert results["audio"]["auroc/high_tone"] >= 0.95, results
