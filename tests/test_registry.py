"""Plugin registries: built-ins, entry points, conflicts and broken plugins."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from plugin_dists import make_distribution

from caikit_mm import (
    ConfigError,
    ModelFinder,
    ModelManager,
    ModuleConfig,
    PluginConflictError,
    PluginError,
    PluginImportError,
    UnknownTypeError,
)
from caikit_mm.model_management import FINDERS
from caikit_mm.registry import PluginRegistry

GROUP = "caikit_mm_test.finders"

FINDER_SOURCE = """
from caikit_mm import ModelFinder, ModuleConfig

class {cls}(ModelFinder):
    name = "{name}"

    def find_model(self, model_path, **kwargs):
        return ModuleConfig({{"module_id": "found-by-{name}"}}, model_path)
"""


def finder_module(cls: str, name: str) -> str:
    return FINDER_SOURCE.format(cls=cls, name=name)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A site folder on sys.path; modules imported from it are dropped afterwards."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if name.startswith("rt_plugin"):
            del sys.modules[name]


def registry(builtins: dict[str, str] | None = None) -> PluginRegistry[ModelFinder]:
    return PluginRegistry("finder", GROUP, ModelFinder, builtins or {})


def test_entry_point_imports_only_selected(site: Path) -> None:
    make_distribution(
        site,
        "rt-plugins",
        {GROUP: {"ONE": "rt_plugin_one:One", "TWO": "rt_plugin_two:Two"}},
        {
            "rt_plugin_one.py": finder_module("One", "ONE"),
            "rt_plugin_two.py": finder_module("Two", "TWO"),
        },
    )
    plugins = registry()
    assert plugins.names() == ["ONE", "TWO"]
    assert "rt_plugin_one" not in sys.modules
    cls = plugins.get("ONE")
    assert cls.__name__ == "One"
    assert "rt_plugin_one" in sys.modules
    assert "rt_plugin_two" not in sys.modules
    assert plugins.source_of("ONE") == "rt-plugins 1.0"


def test_broken_plugin_breaks_nothing_else(site: Path) -> None:
    make_distribution(
        site,
        "rt-broken",
        {GROUP: {"BROKEN": "rt_plugin_broken:Broken", "GOOD": "rt_plugin_good:Good"}},
        {
            "rt_plugin_broken.py": "raise RuntimeError('boom at import')\n",
            "rt_plugin_good.py": finder_module("Good", "GOOD"),
        },
    )
    plugins = registry()
    with pytest.raises(PluginImportError) as info:
        plugins.get("BROKEN")
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "boom at import" in str(info.value.__cause__)
    assert "RuntimeError: boom at import" in str(info.value)
    assert "rt-broken 1.0" in str(info.value)
    assert "rt_plugin_broken:Broken" in str(info.value)
    assert plugins.get("GOOD").__name__ == "Good"
    described = {p.name: p for p in plugins.describe()}
    assert "boom at import" in described["BROKEN"].error
    assert described["GOOD"].error == ""


def test_unknown_type_lists_known_and_broken(site: Path) -> None:
    make_distribution(
        site,
        "rt-broken",
        {GROUP: {"BROKEN": "rt_plugin_broken2:Broken"}},
        {"rt_plugin_broken2.py": "import not_a_real_module_xyz\n"},
    )
    plugins = registry(
        {"LOCAL": "caikit_mm.model_management.local_finder:LocalModelFinder"}
    )
    with pytest.raises(UnknownTypeError) as info:
        plugins.get("MISSING")
    assert info.value.known == ["BROKEN", "LOCAL"]
    assert "not_a_real_module_xyz" in info.value.broken["BROKEN"]
    assert "not_a_real_module_xyz" in str(info.value)


def test_two_distributions_same_name_conflict(site: Path) -> None:
    make_distribution(
        site, "rt-first", {GROUP: {"SAME": "rt_plugin_a:A"}}, {"rt_plugin_a.py": ""}
    )
    make_distribution(
        site, "rt-second", {GROUP: {"SAME": "rt_plugin_b:B"}}, {"rt_plugin_b.py": ""}
    )
    with pytest.raises(PluginConflictError) as info:
        registry().get("SAME")
    assert "rt-first 1.0" in str(info.value)
    assert "rt-second 1.0" in str(info.value)


def test_plugin_reusing_builtin_name_conflicts(site: Path) -> None:
    make_distribution(
        site,
        "rt-shadow",
        {GROUP: {"LOCAL": "rt_plugin_shadow:Shadow"}},
        {"rt_plugin_shadow.py": finder_module("Shadow", "LOCAL")},
    )
    plugins = registry(
        {"LOCAL": "caikit_mm.model_management.local_finder:LocalModelFinder"}
    )
    with pytest.raises(PluginConflictError) as info:
        plugins.get("LOCAL")
    assert "built-in caikit_mm.model_management.local_finder" in str(info.value)
    assert "rt-shadow 1.0 rt_plugin_shadow:Shadow" in str(info.value)


def test_builtin_listed_again_by_entry_point_is_fine(site: Path) -> None:
    target = "caikit_mm.model_management.local_finder:LocalModelFinder"
    make_distribution(site, "rt-same", {GROUP: {"LOCAL": target}})
    assert registry({"LOCAL": target}).get("LOCAL").__name__ == "LocalModelFinder"


def test_register_and_conflict() -> None:
    plugins = registry()

    class Mine(ModelFinder):
        name = "MINE"

        def find_model(self, model_path: object, **kwargs: object) -> ModuleConfig:
            return ModuleConfig({"module_id": "x"})

    class Other(Mine):
        name = "MINE"

    assert plugins.register(Mine) is Mine
    assert plugins.register(Mine) is Mine
    assert plugins.get("MINE") is Mine
    with pytest.raises(PluginConflictError, match="MINE"):
        plugins.register(Other)


def test_register_requires_name_and_subclass() -> None:
    plugins = registry()

    class Nameless(ModelFinder):
        def find_model(self, model_path: object, **kwargs: object) -> ModuleConfig:
            return ModuleConfig({"module_id": "x"})

    with pytest.raises(PluginError, match="no string class attribute 'name'"):
        plugins.register(Nameless)
    with pytest.raises(PluginError, match="not a subclass of ModelFinder"):
        plugins.register(int, "INT")  # type: ignore[arg-type]


def test_entry_point_to_wrong_class_is_rejected(site: Path) -> None:
    make_distribution(
        site,
        "rt-wrong",
        {GROUP: {"WRONG": "rt_plugin_wrong:Wrong"}},
        {"rt_plugin_wrong.py": "class Wrong:\n    pass\n"},
    )
    with pytest.raises(PluginError, match="not a subclass of ModelFinder"):
        registry().get("WRONG")


@pytest.fixture
def global_finders_site(site: Path) -> Iterator[Path]:
    """The process-wide finder registry, reading entry points from ``site``."""
    FINDERS.refresh()
    yield site
    FINDERS.refresh()


def test_manager_uses_installed_finder_plugin(global_finders_site: Path) -> None:
    make_distribution(
        global_finders_site,
        "rt-manager-plugin",
        {"caikit_mm.finders": {"RT_PLUGIN": "rt_plugin_mgr:Mine"}},
        {"rt_plugin_mgr.py": finder_module("Mine", "RT_PLUGIN")},
    )
    manager = ModelManager(
        {"model_management": {"finders": {"mine": {"type": "RT_PLUGIN"}}}}
    )
    found = manager.find("anything", finder="mine")
    assert found.module_id == "found-by-RT_PLUGIN"


def test_config_with_unknown_type_names_broken_plugin(
    global_finders_site: Path,
) -> None:
    make_distribution(
        global_finders_site,
        "rt-broken-global",
        {"caikit_mm.finders": {"RT_BROKEN": "rt_plugin_gb:Broken"}},
        {"rt_plugin_gb.py": "raise ImportError('missing native library')\n"},
    )
    with pytest.raises(ConfigError) as info:
        ModelManager({"model_management": {"finders": {"x": {"type": "RT_TYPO"}}}})
    text = str(info.value)
    assert "model_management.finders.x.type" in text
    assert "RT_BROKEN" in text
    assert "missing native library" in text


def test_configured_broken_plugin_fails_only_when_used(
    global_finders_site: Path,
) -> None:
    make_distribution(
        global_finders_site,
        "rt-broken-used",
        {"caikit_mm.finders": {"RT_BROKEN_USED": "rt_plugin_bu:Broken"}},
        {"rt_plugin_bu.py": "raise ImportError('cannot load me')\n"},
    )
    manager = ModelManager(
        {"model_management": {"finders": {"bad": {"type": "RT_BROKEN_USED"}}}}
    )
    assert manager.get_finder("default").name == "LOCAL"
    with pytest.raises(PluginImportError) as info:
        manager.get_finder("bad")
    assert "cannot load me" in str(info.value.__cause__)
