"""The MULTI finder and initializer: order, failures, release and config checks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
import storage_models as sm

from caikit_mm import (
    ConfigError,
    InitializationFailedError,
    ModelInitializer,
    ModelManager,
    ModelNotFoundError,
    ModuleConfig,
)
from caikit_mm.model_management import INITIALIZERS


class FailingInitializer(ModelInitializer):
    """An initializer type that always fails, to test what MULTI does next."""

    name: ClassVar[str] = "ALWAYS_FAILS_FOR_MULTI_TESTS"

    def init(self, module_config: ModuleConfig, **kwargs: Any) -> Any:
        raise RuntimeError(f"initializer {self.instance_name} cannot load models")


class RecordingInitializer(ModelInitializer):
    """Loads through the LOCAL initializer and records what it releases."""

    name: ClassVar[str] = "RECORDING_FOR_MULTI_TESTS"
    released: ClassVar[list[tuple[str, Any]]] = []

    def init(self, module_config: ModuleConfig, **kwargs: Any) -> Any:
        model = sm.StoredModel.load(module_config.model_path or "")
        model.loaded_by = self.instance_name
        return model

    def release(self, model: Any) -> None:
        self.released.append((self.instance_name, model))


INITIALIZERS.register(FailingInitializer)
INITIALIZERS.register(RecordingInitializer)


def multi_config(
    finders: Mapping[str, Any] | None = None,
    initializers: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "model_management": {
            "finders": dict(finders or {}),
            "initializers": dict(initializers or {}),
        }
    }


def local_finder(load_path: Path) -> dict[str, Any]:
    return {"type": "LOCAL", "config": {"load_path": str(load_path)}}


def multi(key: str, names: Any) -> dict[str, Any]:
    return {"type": "MULTI", "config": {key: names}}


@pytest.fixture
def two_folders(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "first", tmp_path / "second"
    sm.write_folder(first / "both", sm.model_files("first"))
    sm.write_folder(second / "both", sm.model_files("second"))
    sm.write_folder(second / "only-second", sm.model_files("second-only"))
    return first, second


def finder_manager(first: Path, second: Path) -> ModelManager:
    return ModelManager(
        multi_config(
            finders={
                "a": local_finder(first),
                "b": local_finder(second),
                "multi": multi("finder_priority", ["a", "b"]),
            }
        )
    )


# Finder ---------------------------------------------------------------------------


def test_multi_finder_first_wins(two_folders: tuple[Path, Path]) -> None:
    first, second = two_folders
    model = finder_manager(first, second).load("both", finder="multi")
    assert model.path == str(first / "both")


def test_multi_finder_falls_through(two_folders: tuple[Path, Path]) -> None:
    first, second = two_folders
    model = finder_manager(first, second).load("only-second", finder="multi")
    assert model.path == str(second / "only-second")


def test_multi_finder_lists_every_failure(two_folders: tuple[Path, Path]) -> None:
    first, second = two_folders
    with pytest.raises(ModelNotFoundError) as caught:
        finder_manager(first, second).load("absent", finder="multi")
    error = caught.value
    message = str(error)
    assert "'multi'" in message
    assert "a: ModelNotFoundError" in message
    assert "b: ModelNotFoundError" in message
    assert str(first / "absent") in message
    assert str(second / "absent") in message
    assert [name for name, _ in error.attempts] == ["a", "b"]  # type: ignore[attr-defined]
    assert error.finder == "multi"


def test_multi_finder_cache_key_follows_child(two_folders: tuple[Path, Path]) -> None:
    first, second = two_folders
    mgr = finder_manager(first, second)
    one = mgr.load("only-second", finder="multi")
    two = mgr.load(second / "only-second", finder="multi")
    assert one is two


def test_multi_finder_over_archives_and_folders(tmp_path: Path) -> None:
    data = sm.zip_bytes(sm.model_files("archive"))
    config = multi_config(
        finders={
            "default": {"type": "LOCAL", "config": {"cache_dir": str(tmp_path)}},
            "multi": multi("finder_priority", ["default"]),
        }
    )
    model = ModelManager(config).load(data, finder="multi")
    assert model.files["config.yml"] == sm.config_bytes("archive")


# Initializer ------------------------------------------------------------------------


def initializer_manager(*names: str) -> ModelManager:
    return ModelManager(
        multi_config(
            initializers={
                "fails": {"type": FailingInitializer.name},
                "also_fails": {"type": FailingInitializer.name},
                "recording": {"type": RecordingInitializer.name},
                "multi": multi("initializer_priority", list(names)),
            }
        )
    )


def test_multi_initializer_falls_through(tmp_path: Path) -> None:
    folder = sm.write_folder(tmp_path / "m", sm.model_files("init"))
    model = initializer_manager("fails", "recording").load(folder, initializer="multi")
    assert model.loaded_by == "recording"


def test_multi_initializer_first_wins(tmp_path: Path) -> None:
    folder = sm.write_folder(tmp_path / "m", sm.model_files("init"))
    mgr = initializer_manager("default", "recording")
    model = mgr.load(folder, initializer="multi")
    assert not hasattr(model, "loaded_by")


def test_multi_initializer_lists_every_failure(tmp_path: Path) -> None:
    folder = sm.write_folder(tmp_path / "m", sm.model_files("init"))
    mgr = initializer_manager("fails", "also_fails")
    with pytest.raises(InitializationFailedError) as caught:
        mgr.load(folder, initializer="multi")
    message = str(caught.value)
    assert "fails: RuntimeError: initializer fails cannot load models" in message
    assert "also_fails: RuntimeError: initializer also_fails cannot" in message
    assert sm.MODULE_ID in message
    assert [name for name, _ in caught.value.attempts] == ["fails", "also_fails"]


def test_multi_initializer_release_reaches_owner(tmp_path: Path) -> None:
    folder = sm.write_folder(tmp_path / "m", sm.model_files("release"))
    mgr = initializer_manager("fails", "recording")
    model = mgr.load(folder, initializer="multi")
    RecordingInitializer.released.clear()
    assert mgr.unload(folder, initializer="multi")
    assert RecordingInitializer.released == [("recording", model)]


def test_multi_initializer_describe_names_choice(tmp_path: Path) -> None:
    folder = sm.write_folder(tmp_path / "m", sm.model_files("describe"))
    mgr = initializer_manager("default")
    described = mgr.get_initializer("multi").describe(mgr.find(folder))
    assert described["type"] == "MULTI"
    assert described["selected"] == "default"
    assert described["selected_description"]["type"] == "LOCAL"


# Configuration checks -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ([], "non-empty list"),
        ("default", "non-empty list"),
        (None, "non-empty list"),
        (["default", "nowhere"], "'nowhere' is not a configured finder"),
        ([3], "3 is not a configured finder"),
        (["multi"], "cycle: multi -> multi"),
    ],
)
def test_multi_finder_config_rejected(names: Any, expected: str) -> None:
    config = multi_config(finders={"multi": multi("finder_priority", names)})
    with pytest.raises(ConfigError) as caught:
        ModelManager(config)
    assert expected in str(caught.value)
    assert "model_management.finders.multi.config.finder_priority" in str(caught.value)


def test_multi_cycle_through_other_multi() -> None:
    config = multi_config(
        finders={
            "one": multi("finder_priority", ["default", "two"]),
            "two": multi("finder_priority", ["three"]),
            "three": multi("finder_priority", ["default", "one"]),
        }
    )
    with pytest.raises(ConfigError, match="cycle: one -> two -> three -> one"):
        ModelManager(config)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ([], "non-empty list"),
        (["nowhere"], "'nowhere' is not a configured initializer"),
        (["default", "multi"], "cycle: multi -> multi"),
    ],
)
def test_multi_initializer_config_rejected(names: Any, expected: str) -> None:
    config = multi_config(initializers={"multi": multi("initializer_priority", names)})
    with pytest.raises(ConfigError, match=expected):
        ModelManager(config)


def test_multi_initializer_indirect_cycle() -> None:
    config = multi_config(
        initializers={
            "outer": multi("initializer_priority", ["inner"]),
            "inner": multi("initializer_priority", ["default", "outer"]),
        }
    )
    with pytest.raises(ConfigError, match="cycle: .* -> .* -> "):
        ModelManager(config)


@pytest.mark.parametrize(
    ("section", "key", "typo"),
    [
        ("finders", "finder_priority", "finder_priorty"),
        ("initializers", "initializer_priority", "initializers_priority"),
    ],
)
def test_multi_unknown_key_rejected(section: str, key: str, typo: str) -> None:
    entry = {"type": "MULTI", "config": {key: ["default"], typo: ["default"]}}
    with pytest.raises(ConfigError) as caught:
        ModelManager({"model_management": {section: {"multi": entry}}})
    message = str(caught.value)
    assert f"model_management.{section}.multi.config.{typo}" in message
    assert f"Did you mean {key!r}?" in message
