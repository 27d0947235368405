"""The built-in LOCAL finder and initializer pass the plugin conformance tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import caikit_mm
from caikit_mm import ModelManager, ModuleBase, ModuleConfig
from caikit_mm.model_management import ModelFinder, ModelInitializer
from caikit_mm.testing import FinderConformance, InitializerConformance


@caikit_mm.module(id="conformance-local-module")
class Minimal(ModuleBase):
    @classmethod
    def load(cls, model_path: str, **kwargs: Any) -> Minimal:
        return cls()


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.yml").write_text("module_id: conformance-local-module\n")
    return folder


class TestLocalFinder(FinderConformance):
    @pytest.fixture
    def finder(self) -> ModelFinder:
        return ModelManager().get_finder()

    @pytest.fixture
    def model_path(self, model_folder: Path) -> str:
        return str(model_folder)

    @pytest.fixture
    def missing_model_path(self, tmp_path: Path) -> str:
        return str(tmp_path / "missing")


class TestLocalInitializer(InitializerConformance):
    @pytest.fixture
    def initializer(self) -> ModelInitializer:
        return ModelManager().get_initializer()

    @pytest.fixture
    def module_config(self, model_folder: Path) -> ModuleConfig:
        return ModuleConfig.load(model_folder)
