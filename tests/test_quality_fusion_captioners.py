"""Quality gate of the two fusion captioners (issue 12), marked `slow`.

Each captioner's tiny variant is trained through the CLI on the synthetic
shape scenes twice: once as they are, once "blind", on the same captions
with every image replaced by one grey picture (the image masked out: what
a language model alone can learn). The one that sees must beat the blind
one by a clear CIDEr margin on the test split; otherwise the image is not
reaching the words.

Run it with:
    .venv/bin/python -m pytest -m slow -s \
        tests/test_quality_fusion_captioners.py
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mmzoo.data.synthetic_images import write_synthetic_captions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 20
IMAGES = 1000
SIZE = 32  # the tiny variants' image size


def _train(model, data_dir, tmp_path, tag):
    env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="2",
        TF_NUM_INTRAOP_THREADS="2",
        TF_NUM_INTEROP_THREADS="2",
    )
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (ROOT, env.get("PYTHONPATH")) if p
    )
    proc = subprocess.run(
        [
            sys.executable, "-m", "mmzoo.cli", "train", model,
            "--dataset", "flickr8k", "--data-dir", data_dir,
            "--variant", "tiny", "--epochs", str(EPOCHS), "--seed", "0",
            "--logdir", str(tmp_path / tag / "logs"), "--export-dir", "",
        ],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])["metrics"]["test"]


def _blind_copy(folder, out):
    """The same captions, every image the same grey picture."""
    shutil.copytree(folder, out)
    grey = Image.fromarray(np.full((SIZE, SIZE, 3), 128, np.uint8))
    images = os.path.join(out, "Images")
    for name in os.listdir(images):
        grey.save(os.path.join(images, name))
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    "model", ["cnn_text_captioner", "glove_bilstm_captioner"]
)
def test_captioner_beats_its_blind_language_model(model, tmp_path):
    seeing = write_synthetic_captions(tmp_path / "scenes", IMAGES, 0, SIZE)
    blind = _blind_copy(seeing, tmp_path / "blind")
    sees = _train(model, seeing, tmp_path, "seeing")
    guesses = _train(model, blind, tmp_path, "blind")
    print(
        f"\n{model}: seeing CIDEr {sees['cider']:.3f} BLEU-4 "
        f"{sees['bleu_4']:.3f}; blind CIDEr {guesses['cider']:.3f} BLEU-4 "
        f"{guesses['bleu_4']:.3f}"
    )
    assert sees["cider"] >= 2.0 * guesses["cider"] + 0.5, (sees, guesses)
    assert sees["bleu_4"] >= guesses["bleu_4"] + 0.2, (sees, guesses)
