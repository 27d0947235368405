"""Every model folder that caikit saved loads here, with its keys unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fixture_modules import FIXTURE_MODULE_IDS, FixtureModule

from caikit_mm import ModelManager


def model_folders(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("config.yml"))


def test_every_fixture_folder_loads(caikit_fixtures: Path) -> None:
    folders = model_folders(caikit_fixtures)
    assert len(folders) >= 10
    manager = ModelManager()
    for folder in folders:
        model = manager.load(folder)
        expected = yaml.safe_load((folder / "config.yml").read_text(encoding="utf-8"))
        assert isinstance(model, FixtureModule), folder
        assert model.config.to_dict() == expected, folder
        assert model.config.model_path == str(folder)
        assert model.MODULE_ID == expected["module_id"]


def test_every_fixture_module_id_is_covered(caikit_fixtures: Path) -> None:
    ids = set()
    for folder in model_folders(caikit_fixtures):
        ids.add(
            yaml.safe_load((folder / "config.yml").read_text(encoding="utf-8"))[
                "module_id"
            ]
        )
    assert ids <= set(FIXTURE_MODULE_IDS)


def test_dummy_module_keys_reach_module(caikit_fixtures: Path) -> None:
    model = ModelManager().load(caikit_fixtures / "dummy_module")
    assert model.config.utf_text == "人工智能"
    assert model.config.predict.aggregation_methods == ["one", "two", "three"]
    assert model.config.train.optim_method == "Rprop"
    with open(
        caikit_fixtures / "dummy_module" / "data.json", encoding="utf-8"
    ) as stream:
        assert model.data == json.load(stream)


def test_short_module_id_loads(caikit_fixtures: Path) -> None:
    model = ModelManager().load(caikit_fixtures / "dummy_module_foo")
    assert type(model).__name__ == "DummyFoo"
    assert model.config.unique_hash == "foofoofoo"


@pytest.mark.parametrize("name", ["sample_module", "models/primitive"])
def test_nested_train_settings_survive(caikit_fixtures: Path, name: str) -> None:
    model = ModelManager().load(caikit_fixtures / name)
    assert isinstance(model.config.train, dict)
