"""Configuration loading: sources, precedence, env overrides and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from caikit_mm import (
    ConfigError,
    ModelFinder,
    ModelManager,
    ModelNotFoundError,
    ModuleConfig,
    load_config,
)
from caikit_mm.config import global_config
from caikit_mm.model_management import FINDERS

REPO_ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_have_default_instance_per_role() -> None:
    config = load_config()
    for role in ("trainer", "finder", "initializer"):
        assert config.section(role)["default"]["type"] == "LOCAL"


def test_env_files_merge_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write(
        tmp_path / "first.yml",
        "model_management:\n  finders:\n    default:\n      config:\n"
        "        load_path: /first\n    extra:\n      type: LOCAL\n",
    )
    second = write(
        tmp_path / "second.yml",
        "model_management:\n  finders:\n    default:\n      config:\n"
        "        load_path: /second\n",
    )
    monkeypatch.setenv("CAIKIT_MM_CONFIG_FILES", f"{first}, {second}")
    config = load_config()
    finders = config.section("finder")
    assert finders["default"]["config"]["load_path"] == "/second"
    assert finders["extra"]["type"] == "LOCAL"
    assert config.sources[1:] == [str(first), str(second)]


def test_env_var_overrides_existing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_MANAGEMENT_FINDERS_DEFAULT_CONFIG_LOAD_PATH", "/models")
    config = load_config()
    assert config.section("finder")["default"]["config"]["load_path"] == "/models"
    assert "MODEL_MANAGEMENT_FINDERS_DEFAULT_CONFIG_LOAD_PATH" in config.source_of(
        "model_management.finders.default.config.load_path"
    )


def test_env_var_cannot_add_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_MANAGEMENT_FINDERS_DEFAULT_CONFIG_NEW_KEY", "x")
    monkeypatch.setenv("MODEL_MANAGEMENT_FINDERS_NEWFINDER_TYPE", "LOCAL")
    config = load_config()
    assert "new_key" not in config.section("finder")["default"]["config"]
    assert "newfinder" not in config.section("finder")


def test_env_var_cannot_change_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "MODEL_MANAGEMENT_INITIALIZERS_DEFAULT_CONFIG_BACKEND_PRIORITY", "x"
    )
    config = load_config()
    priority = config.section("initializer")["default"]["config"]["backend_priority"]
    assert priority == [{"type": "LOCAL"}]


def test_manager_config_beats_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_MANAGEMENT_FINDERS_DEFAULT_CONFIG_LOAD_PATH", "/from-env")
    manager = ModelManager(
        {
            "model_management": {
                "finders": {"default": {"config": {"load_path": "/mine"}}}
            }
        }
    )
    assert manager.config.section("finder")["default"]["config"]["load_path"] == "/mine"


def test_manager_config_leaves_global_alone() -> None:
    before = global_config().section("finder")["default"]["config"]["load_path"]
    ModelManager(
        {"model_management": {"finders": {"default": {"config": {"load_path": "/x"}}}}}
    )
    assert global_config().section("finder")["default"]["config"]["load_path"] == before


class _OtherFinder(ModelFinder):
    name = "CONFIG_TEST_FINDER"

    def find_model(self, model_path: object, **kwargs: object) -> ModuleConfig:
        raise ModelNotFoundError("never finds anything")


def test_type_change_replaces_instance() -> None:
    FINDERS.register(_OtherFinder)
    config = load_config(
        {"model_management": {"finders": {"default": {"type": "CONFIG_TEST_FINDER"}}}}
    )
    assert config.section("finder")["default"] == {
        "type": "CONFIG_TEST_FINDER",
        "config": {},
    }


def test_same_type_merges_instance_config() -> None:
    config = load_config(
        {"model_management": {"trainers": {"default": {"type": "LOCAL"}}}}
    )
    assert config.section("trainer")["default"]["config"]["use_subprocess"] is False


def test_manager_accepts_yaml_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "mine.yml",
        "model_management:\n  finders:\n    other:\n      type: LOCAL\n",
    )
    assert "other" in ModelManager(path).config.section("finder")


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "config").glob("*.yml")))
def test_example_deployment_files_load(path: Path) -> None:
    config = load_config(path)
    assert str(path) in config.sources


def test_example_deployment_files_exist() -> None:
    assert sorted((REPO_ROOT / "config").glob("*.yml"))


BAD_CONFIGS = [
    ("finders: [1, 2]", "model_management.finders", "expected a mapping"),
    (
        "finders:\n    other:\n      type: LOCAL\n    default: null",
        "model_management.finders.default",
        "expected a mapping",
    ),
    (
        "finders:\n    x:\n      config: {}",
        "model_management.finders.x.type",
        "no 'type'",
    ),
    (
        "finders:\n    x:\n      type: NOPE",
        "model_management.finders.x.type",
        "Unknown type 'NOPE'",
    ),
    (
        "finders:\n    x:\n      type: LOCAL\n      config: [1]",
        "model_management.finders.x.config",
        "expected a mapping",
    ),
    (
        "finders:\n    x:\n      type: LOCAL\n      config: {load_path: 3}",
        "model_management.finders.x.config.load_path",
        "load_path must be",
    ),
    (
        "initializers:\n    x:\n      type: LOCAL\n      config:\n"
        "        backend_priority: [{type: NOPE}]",
        "backend_priority.0.type",
        "unknown backend type 'NOPE'",
    ),
]


@pytest.mark.parametrize(("body", "key_path", "message"), BAD_CONFIGS)
def test_invalid_file_names_file_and_key(
    tmp_path: Path, body: str, key_path: str, message: str
) -> None:
    path = write(tmp_path / "bad.yml", "model_management:\n  " + body + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert str(path) in text
    assert key_path in text
    assert message in text


def test_unknown_type_lists_known_types(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bad.yml",
        "model_management:\n  finders:\n    x:\n      type: NOPE\n",
    )
    with pytest.raises(ConfigError, match="known types: .*LOCAL"):
        load_config(path)


def test_missing_default_is_rejected() -> None:
    config = load_config().data
    finders = config["model_management"]["finders"]
    finders["other"] = finders.pop("default")
    from caikit_mm.config import ManagerConfig, validate

    with pytest.raises(ConfigError, match="no 'default' finder") as info:
        validate(ManagerConfig(config, ["test"]))
    assert "model_management.finders" in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("- a\n- b\n", "contains a list, not a mapping"),
        ("key: [unclosed\n", "not valid YAML"),
        ("!!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ],
)
def test_unreadable_file_is_rejected(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "bad.yml", text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert list(tmp_path.iterdir()) == [path]


def test_missing_env_file_names_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing.yml"
    monkeypatch.setenv("CAIKIT_MM_CONFIG_FILES", str(missing))
    with pytest.raises(ConfigError, match="CAIKIT_MM_CONFIG_FILES") as info:
        load_config()
    assert str(missing) in str(info.value)


def test_config_of_wrong_type_is_rejected() -> None:
    with pytest.raises(ConfigError, match="mapping or the path of a YAML file"):
        ModelManager(42)  # type: ignore[arg-type]


def test_missing_manager_file_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yml"
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_config(missing)
    assert str(missing) in str(info.value)
    assert "CAIKIT_MM_CONFIG_FILES" not in str(info.value)


@pytest.mark.parametrize(
    ("role", "key", "suggestion"),
    [
        ("finders", "load_pth", "load_path"),
        ("initializers", "backend_priorities", "backend_priority"),
    ],
)
def test_misspelled_key_is_rejected(role: str, key: str, suggestion: str) -> None:
    layer = {"model_management": {role: {"default": {"config": {key: "x"}}}}}
    with pytest.raises(ConfigError) as info:
        load_config(layer)
    message = str(info.value)
    assert f"unknown key {key!r}" in message
    assert f"Did you mean {suggestion!r}" in message
    assert f"model_management.{role}.default.config.{key}" in message


def test_misspelled_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path / "typo.yml", "model_managment:\n  finders: {}\n")
    with pytest.raises(ConfigError, match="Rename it to 'model_management'") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_other_top_level_keys_allowed() -> None:
    config = load_config({"runtime": {"port": 8080}})
    assert config.data["runtime"] == {"port": 8080}


def test_env_type_change_drops_old_config(monkeypatch: pytest.MonkeyPatch) -> None:
    FINDERS.register(_OtherFinder)
    monkeypatch.setenv("MODEL_MANAGEMENT_FINDERS_DEFAULT_TYPE", "CONFIG_TEST_FINDER")
    config = load_config()
    assert config.section("finder")["default"] == {
        "type": "CONFIG_TEST_FINDER",
        "config": {},
    }


def test_bad_env_value_names_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    variable = "MODEL_MANAGEMENT_FINDERS_DEFAULT_CONFIG_MAX_ARCHIVE_FILES"
    monkeypatch.setenv(variable, "-3")
    with pytest.raises(ConfigError) as info:
        load_config()
    message = str(info.value)
    assert f"environment variable {variable}" in message
    assert "defaults.yml" not in message
