"""Tiny keras-hub presets written once per session, for offline tests."""

import pytest

from mmzoo.encoders import save_tiny_preset


@pytest.fixture(scope="session")
def vit_preset(tmp_path_factory):
    directory = tmp_path_factory.mktemp("presets") / "tiny_vit"
    return save_tiny_preset("vit", str(directory), image_size=32)


@pytest.fixture(scope="session")
def bert_preset(tmp_path_factory):
    directory = tmp_path_factory.mktemp("presets") / "tiny_bert"
    return save_tiny_preset("bert", str(directory), max_sequence_length=16)
