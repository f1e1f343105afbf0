"""The preset and BERT encoders build and run on the JAX backend."""

import textwrap

from tests.jax_backend import run_on_jax

SCRIPT = textwrap.dedent(
    """
    import sys
    import keras
    import numpy as np
    from mmzoo.encoders import build_image_encoder, build_text_encoder

    assert keras.backend.backend() == "jax", keras.backend.backend()
    vit_preset, bert_preset = sys.argv[1:3]
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3))
    pooled, regions = build_image_encoder("vit", 32, preset=vit_preset)(
        images.astype("float32")
    )
    assert pooled.shape == (2, 16) and regions.shape == (2, 16, 16)
    ids = np.array([[2, 20, 3, 0], [0, 0, 0, 0]], "int32")
    encoder = build_text_encoder("bert", max_length=4, preset=bert_preset)
    pooled, sequence, mask = encoder(ids)
    assert pooled.shape == (2, 16) and sequence.shape == (2, 4, 16)
    assert np.isfinite(np.asarray(sequence)).all()
    assert not np.asarray(pooled)[1].any()
    print("jax ok")
    """
)


def test_vit_preset_and_bert_encoders_run_on_jax(vit_preset, bert_preset):
    assert "jax ok" in run_on_jax(SCRIPT, vit_preset, bert_preset)
