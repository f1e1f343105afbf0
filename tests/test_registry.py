import dataclasses

import pytest

import mmzoo
from mmzoo import registry


def test_list_models_has_reference_models():
    assert "deepfm" in mmzoo.list_models()


def test_unknown_model_names_valid_ones():
    with pytest.raises(ValueError, match="unknown model 'nope'.*deepfm"):
        mmzoo.build("nope")


def test_unknown_variant_names_valid_ones():
    with pytest.raises(ValueError, match="unknown variant 'huge'.*tiny"):
        mmzoo.build("deepfm", variant="huge")


def test_unknown_override_names_valid_keys():
    with pytest.raises(
        ValueError, match="unknown override 'mlp_unit'.*mlp_units"
    ):
        mmzoo.build("deepfm", variant="tiny", mlp_unit=(8,))


def test_overrides_apply():
    config = mmzoo.get_config("deepfm", "tiny", embedding_dim=7)
    assert config.embedding_dim == 7
    assert config.mlp_units == (16, 16)


def test_register_twice_raises():
    @dataclasses.dataclass(frozen=True)
    class Config:
        width: int = 1

    variants = {"tiny": {}, "base": {}}

    def inputs(config):
        return ()

    registry.register_model("_dup_test", Config, variants, inputs=inputs)(
        lambda c: None
    )
    try:
        with pytest.raises(ValueError, match="already registered"):
            registry.register_model(
                "_dup_test", Config, variants, inputs=inputs
            )(lambda c: None)
    finally:
        registry._MODELS.pop("_dup_test")


def test_variants_must_include_tiny_and_base():
    @dataclasses.dataclass(frozen=True)
    class Config:
        width: int = 1

    with pytest.raises(ValueError, match="missing \\['base'\\]"):
        registry.register_model("_x", Config, {"tiny": {}})


def test_config_round_trips_through_json_dict():
    from mmzoo.export.saved_model import config_to_dict

    config = mmzoo.get_config("deepfm", "tiny")
    again = registry.config_from_dict("deepfm", config_to_dict(config))
    assert again == config


def test_readme_model_table_matches_the_registry():
    # README's model table is hand-written (it says more than the registry
    # knows); this keeps its rows and the registry in step.
    import pathlib
    import re

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Models", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.M)
    assert sorted(rows) == mmzoo.list_models()


def test_problem_kind_picks_a_generic_task():
    from mmzoo.tasks.ctr import CTRTask

    task = registry.get_task("deepfm")
    assert isinstance(task, CTRTask) and task.model == "deepfm"
    assert "criteo" in task.datasets


def test_unknown_problem_kind_raises():
    @dataclasses.dataclass(frozen=True)
    class Config:
        width: int = 1

    with pytest.raises(ValueError, match="unknown problem 'vqa2'"):
        registry.register_model(
            "bad_problem", Config, {"tiny": {}, "base": {}}, problem="vqa2"
        )


def test_training_settings_live_in_the_variant():
    tiny = mmzoo.get_config("deepfm", "tiny")
    base = mmzoo.get_config("deepfm", "base")
    assert (tiny.epochs, tiny.batch_size) == (3, 64)
    assert base.batch_size == 256
    with pytest.raises(ValueError, match="unknown optimizer 'adamx'"):
        mmzoo.get_config("deepfm", "tiny", optimizer="adamx")


def test_a_model_must_declare_its_inputs():
    @dataclasses.dataclass(frozen=True)
    class Config:
        width: int = 1

    with pytest.raises(ValueError, match="pass inputs=, or give Config"):
        registry.register_model("_y", Config, {"tiny": {}, "base": {}})
