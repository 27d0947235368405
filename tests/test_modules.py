"""ModuleConfig parsing and writing, and module registration."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

import caikit_mm
from caikit_mm import (
    ModelFormatError,
    ModelNotFoundError,
    ModuleBase,
    ModuleConfig,
    ModuleRegistrationError,
)
from caikit_mm.modules import MODULE_REGISTRY


def write_config(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yml").write_text(text, encoding="utf-8")
    return folder


def test_module_config_keeps_module_keys(tmp_path: Path) -> None:
    folder = write_config(
        tmp_path / "m",
        "module_id: abc\nnested:\n  inner: [1, {deep: true}]\n"
        "labels:\n  0: negative\n  1: positive\ntext: 人工智能\n",
    )
    config = ModuleConfig.load(folder)
    assert config.module_id == "abc"
    assert config.model_path == str(folder)
    assert config.nested.inner[1].deep is True
    assert config["labels"] == {0: "negative", 1: "positive"}
    assert config.text == "人工智能"
    assert config.to_dict()["nested"] == {"inner": [1, {"deep": True}]}


@pytest.mark.parametrize("legacy", ["block_id", "workflow_id", "resource_id"])
def test_legacy_id_keys_read_as_module_id(tmp_path: Path, legacy: str) -> None:
    config = ModuleConfig.load(write_config(tmp_path / "m", f"{legacy}: old-id\n"))
    assert config.module_id == "old-id"
    assert legacy not in config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("name: no id here\n", "has no 'module_id'"),
        ("module_id: 12345\n", "module_id must be a string"),
        ("module_id: [a]\n", "module_id must be a string"),
        ("module_id: x\nmodel_path: /elsewhere\n", "reserved key 'model_path'"),
        ("module_id: !!python/name:os.system\n", "not valid YAML"),
        ("module_id: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_config_yml_is_rejected(tmp_path: Path, text: str, message: str) -> None:
    folder = write_config(tmp_path / "m", text)
    with pytest.raises(ModelFormatError, match=message) as info:
        ModuleConfig.load(folder)
    assert str(folder / "config.yml") in str(info.value)
    assert sorted(p.name for p in folder.iterdir()) == ["config.yml"]


def test_load_without_config_yml(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="holds no config.yml"):
        ModuleConfig.load(tmp_path)


def test_save_round_trip_leaves_no_temp_files(tmp_path: Path) -> None:
    config = ModuleConfig({"module_id": "x", "utf": "人工智能", "n": {"k": [1, 2]}})
    config.save(tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["config.yml"]
    again = ModuleConfig.load(tmp_path / "out")
    assert again.to_dict() == config.to_dict()
    first_line = (
        (tmp_path / "out" / "config.yml").read_text(encoding="utf-8").split("\n")[0]
    )
    assert first_line == "module_id: x"


def test_saved_config_mode_follows_umask(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        ModuleConfig({"module_id": "x"}).save(tmp_path / "out")
    finally:
        os.umask(previous)
    mode = (tmp_path / "out" / "config.yml").stat().st_mode & 0o777
    assert mode == 0o640


def test_module_config_pickles(tmp_path: Path) -> None:
    config = ModuleConfig({"module_id": "x", "a": {"b": 1}}, tmp_path)
    copy = pickle.loads(pickle.dumps(config))
    assert copy == config
    assert copy.model_path == str(tmp_path)
    assert copy.a.b == 1


def test_missing_attribute_names_keys() -> None:
    config = ModuleConfig({"module_id": "x"})
    with pytest.raises(AttributeError, match="no key 'missing'"):
        _ = config.missing


def test_module_registers_and_rejects_reuse() -> None:
    @caikit_mm.module(id="test-modules-reuse", name="First")
    class First(ModuleBase):
        pass

    assert MODULE_REGISTRY.get("test-modules-reuse") is First
    assert First.MODULE_NAME == "First"
    with pytest.raises(ModuleRegistrationError, match="already registered"):

        @caikit_mm.module(id="test-modules-reuse")
        class Second(ModuleBase):
            pass


@pytest.mark.parametrize("bad_id", [None, "", 7])
def test_module_requires_string_id(bad_id: object) -> None:
    with pytest.raises(ModuleRegistrationError, match="non-empty string id"):

        @caikit_mm.module(id=bad_id)  # type: ignore[arg-type]
        class NoId(ModuleBase):
            pass


def test_module_requires_module_base() -> None:
    with pytest.raises(ModuleRegistrationError, match="ModuleBase subclasses"):
        caikit_mm.module(id="test-not-a-module")(object)  # type: ignore[type-var]


def test_backend_implementation_shares_id() -> None:
    @caikit_mm.module(id="test-modules-backends")
    class Base(ModuleBase):
        pass

    @caikit_mm.module(backend_type="FAST", base_module=Base)
    class Fast(ModuleBase):
        pass

    assert Fast.MODULE_ID == "test-modules-backends"
    assert MODULE_REGISTRY.implementations("test-modules-backends") == {
        "LOCAL": Base,
        "FAST": Fast,
    }


def test_module_config_of_saved_module_has_standard_keys() -> None:
    @caikit_mm.module(id="test-modules-saved", name="Saved", version="2.0")
    class Saved(ModuleBase):
        pass

    config = Saved().module_config(extra={"k": 1})
    for key in ("module_id", "module_class", "name", "version", "created", "saved"):
        assert key in config
    assert config.module_id == "test-modules-saved"
    assert config.extra == {"k": 1}
    assert config.module_class.endswith("Saved")
