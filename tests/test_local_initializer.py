"""The LOCAL initializer: backend priority, module lookup and load errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from plugin_dists import make_distribution

import caikit_mm
from caikit_mm import (
    BackendBase,
    ModelManager,
    ModuleBase,
    ModuleConfig,
    ModuleNotRegisteredError,
    NoMatchingBackendError,
)
from caikit_mm.modules import BACKENDS, MODULE_REGISTRY


class CountingBackend(BackendBase):
    name: ClassVar[str] = "TEST_COUNTING"
    starts = 0

    def _start(self) -> None:
        type(self).starts += 1


BACKENDS.register(CountingBackend)


@caikit_mm.module(id="init-test-plain")
class Plain(ModuleBase):
    loads = 0

    @classmethod
    def load(cls, model_path: str, **kwargs: Any) -> Plain:
        cls.loads += 1
        model = cls()
        model.kwargs = kwargs  # type: ignore[attr-defined]
        return model


@caikit_mm.module(backend_type="TEST_COUNTING", base_module=Plain)
class PlainOnCounting(ModuleBase):
    @classmethod
    def load(
        cls, model_path: str, module_config: ModuleConfig, load_backend: BackendBase
    ) -> PlainOnCounting:
        model = cls()
        model.backend = load_backend  # type: ignore[attr-defined]
        model.module_config = module_config  # type: ignore[attr-defined]
        return model


@caikit_mm.module(id="init-test-fails")
class Fails(ModuleBase):
    loads = 0

    @classmethod
    def load(cls, model_path: str, **kwargs: Any) -> Fails:
        cls.loads += 1
        raise ValueError(f"corrupt weights in {model_path}")


def make_model(folder: Path, module_id: str, extra: str = "") -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yml").write_text(
        f"module_id: {module_id}\n{extra}", encoding="utf-8"
    )
    return folder


def manager(priority: list[str]) -> ModelManager:
    backends = [{"type": name} for name in priority]
    return ModelManager(
        {
            "model_management": {
                "initializers": {"default": {"config": {"backend_priority": backends}}}
            }
        }
    )


def test_first_fitting_backend_wins(tmp_path: Path) -> None:
    folder = make_model(tmp_path / "m", "init-test-plain")
    model = manager(["TEST_COUNTING", "LOCAL"]).load(folder)
    assert isinstance(model, PlainOnCounting)
    assert isinstance(model.backend, CountingBackend)
    assert model.backend.is_started
    assert model.module_config.model_path == str(folder)
    assert isinstance(manager(["LOCAL", "TEST_COUNTING"]).load(folder), Plain)


def test_backend_starts_once(tmp_path: Path) -> None:
    mgr = manager(["TEST_COUNTING"])
    before = CountingBackend.starts
    for index in range(3):
        mgr.load(make_model(tmp_path / str(index), "init-test-plain"))
    assert CountingBackend.starts == before + 1


def test_model_backend_must_be_supported(tmp_path: Path) -> None:
    folder = make_model(
        tmp_path / "m", "init-test-plain", "model_backend: TEST_COUNTING\n"
    )
    assert isinstance(manager(["TEST_COUNTING", "LOCAL"]).load(folder), PlainOnCounting)
    with pytest.raises(NoMatchingBackendError) as info:
        manager(["LOCAL"]).load(folder)
    text = str(info.value)
    assert "init-test-plain" in text
    assert "'TEST_COUNTING'" in text
    assert "['LOCAL']" in text
    assert "LOCAL (loads ['LOCAL'])" in text


def test_module_load_error_propagates_once(tmp_path: Path) -> None:
    folder = make_model(tmp_path / "m", "init-test-fails")
    before = Fails.loads
    with pytest.raises(ValueError, match="corrupt weights in") as info:
        manager(["LOCAL"]).load(folder)
    assert type(info.value) is ValueError
    assert Fails.loads == before + 1


def test_kwargs_reach_module_load(tmp_path: Path) -> None:
    folder = make_model(tmp_path / "m", "init-test-plain")
    model = manager(["LOCAL"]).load(folder, device="cpu")
    assert model.kwargs == {"device": "cpu"}


def test_unregistered_module_id(tmp_path: Path) -> None:
    folder = make_model(tmp_path / "m", "init-test-nobody-registers-this")
    with pytest.raises(ModuleNotRegisteredError) as info:
        manager(["LOCAL"]).load(folder)
    assert "init-test-nobody-registers-this" in str(info.value)
    assert str(folder / "config.yml") in str(info.value)
    assert "Installed module libraries" in str(info.value)


def test_module_library_imported_through_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(
        site,
        "init-test-library",
        {"caikit_mm.modules": {"lib": "init_test_library"}},
        {
            "init_test_library.py": (
                "import caikit_mm\n\n"
                "@caikit_mm.module(id='init-test-from-library')\n"
                "class FromLibrary(caikit_mm.ModuleBase):\n"
                "    @classmethod\n"
                "    def load(cls, model_path):\n"
                "        return cls()\n"
            )
        },
    )
    monkeypatch.syspath_prepend(str(site))
    MODULE_REGISTRY.load_libraries(reload=True)
    try:
        model = manager(["LOCAL"]).load(
            make_model(tmp_path / "m", "init-test-from-library")
        )
        assert type(model).__name__ == "FromLibrary"
        assert "init_test_library" in sys.modules
    finally:
        sys.modules.pop("init_test_library", None)
        monkeypatch.undo()
        MODULE_REGISTRY.load_libraries(reload=True)


def test_describe_names_class_and_backend(tmp_path: Path) -> None:
    folder = make_model(tmp_path / "m", "init-test-plain")
    mgr = manager(["TEST_COUNTING"])
    described = mgr.get_initializer().describe(mgr.find(folder))
    assert described["backend"] == "TEST_COUNTING"
    assert described["module_class"].endswith("PlainOnCounting")
