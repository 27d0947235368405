"""The REMOTE and MULTI finders and the MULTI initializer pass the plugin
conformance tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import storage_models as sm
from s3_server import S3Server

from caikit_mm import ModelManager, ModuleConfig
from caikit_mm.model_management import ModelFinder, ModelInitializer
from caikit_mm.testing import FinderConformance, InitializerConformance


def storage_manager(server: S3Server, cache: Path) -> ModelManager:
    return ModelManager(
        {
            "model_management": {
                "finders": {
                    "s3": {"type": "REMOTE", "config": server.finder_config(cache)},
                    "multi": {
                        "type": "MULTI",
                        "config": {"finder_priority": ["default", "s3"]},
                    },
                },
                "initializers": {
                    "multi": {
                        "type": "MULTI",
                        "config": {"initializer_priority": ["default"]},
                    }
                },
            }
        }
    )


@pytest.fixture
def manager(s3_server: S3Server, tmp_path: Path) -> ModelManager:
    """The manager behind each instance; MULTI types reach their children
    through it, so it must outlive the test."""
    return storage_manager(s3_server, tmp_path / "cache")


@pytest.fixture
def stored_url(s3_server: S3Server, s3_bucket: str) -> str:
    for name, data in sm.model_files("conformance").items():
        s3_server.put(s3_bucket, f"models/conformance/{name}", data)
    return f"s3://{s3_bucket}/models/conformance"


class TestRemoteFinder(FinderConformance):
    @pytest.fixture
    def finder(self, manager: ModelManager) -> ModelFinder:
        return manager.get_finder("s3")

    @pytest.fixture
    def model_path(self, stored_url: str) -> str:
        return stored_url

    @pytest.fixture
    def missing_model_path(self, stored_url: str) -> str:
        return stored_url + "-missing"


class TestMultiFinder(FinderConformance):
    @pytest.fixture
    def finder(self, manager: ModelManager) -> ModelFinder:
        return manager.get_finder("multi")

    @pytest.fixture
    def model_path(self, stored_url: str) -> str:
        return stored_url

    @pytest.fixture
    def missing_model_path(self, tmp_path: Path) -> str:
        return str(tmp_path / "missing")


class TestMultiInitializer(InitializerConformance):
    @pytest.fixture
    def initializer(self, manager: ModelManager) -> ModelInitializer:
        return manager.get_initializer("multi")

    @pytest.fixture
    def module_config(self, tmp_path: Path) -> ModuleConfig:
        folder = sm.write_folder(tmp_path / "model", sm.model_files("init"))
        return ModuleConfig.load(folder)
