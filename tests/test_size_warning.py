"""The warning a GPU-sized run gets on a machine without an accelerator
(`mmzoo.training.size_warning`, `probe_cost`)."""

import numpy as np
import tensorflow as tf

import mmzoo
from mmzoo import training

GB = 2**30


def _cost(**changes):
    cost = {
        "parameters": 86_000_000,
        "forward_seconds": 12.0,  # one batch of a ViT-B/16 on 2 cores
        "forward_bytes": 3 * GB,
        "resident_bytes": 4 * GB,
        "machine_bytes": 16 * GB,
        "steps_per_epoch": 94,  # 3000 images, batch 32
    }
    return {**cost, **changes}


def test_a_gpu_sized_run_on_a_cpu_is_warned_with_memory_and_time():
    message = training.size_warning("vit_lstm_captioner", "base", _cost(), 10)
    assert message is not None
    # 3 x 12 s x 94 steps x 10 epochs = 9.4 h; 4 + 2 x 3 GB + 12 B x 86 M.
    assert "9.4 h for 10 epochs" in message
    assert "11.0 GB of this machine's 16 GB" in message
    assert "--variant tiny" in message and "86.0 M parameters" in message


def test_a_small_run_is_not_warned():
    cost = _cost(
        parameters=100_000,
        forward_seconds=0.01,
        forward_bytes=10_000_000,
        resident_bytes=GB,
    )
    assert training.size_warning("deepfm", "base", cost, 3) is None
    # Long but small, or short but big, is warned about.
    assert training.size_warning(
        "deepfm", "base", {**cost, "steps_per_epoch": 10**6}, 3
    )
    assert training.size_warning(
        "deepfm", "base", {**cost, "forward_bytes": 8 * GB}, 3
    )


def test_probe_measures_a_forward_pass():
    config = mmzoo.get_config("av_monitor", "tiny", num_labels=2)
    model = mmzoo.build("av_monitor", config=config)
    from mmzoo.models.multimodal import modality_specs
    from mmzoo.specs import dummy_inputs

    inputs = dummy_inputs(modality_specs(config), 4)
    labels = np.zeros((4, 2), np.float32)
    data = tf.data.Dataset.from_tensors((inputs, labels)).repeat(5)
    cost = training.probe_cost(model, data, data)
    assert cost["parameters"] == model.count_params()
    assert cost["forward_seconds"] > 0 and cost["steps_per_epoch"] == 5
    assert cost["resident_bytes"] > 0
