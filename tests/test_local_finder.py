"""The LOCAL finder on the many ways a user writes a folder path."""

from __future__ import annotations

from pathlib import Path

import pytest

from caikit_mm import ModelManager, ModelNotFoundError


def make_model(folder: Path, module_id: str = "finder-test") -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yml").write_text(f"module_id: {module_id}\n", encoding="utf-8")
    return folder


def manager(load_path: str = "") -> ModelManager:
    return ModelManager(
        {
            "model_management": {
                "finders": {"default": {"config": {"load_path": load_path}}}
            }
        }
    )


def test_absolute_path_with_and_without_slash(tmp_path: Path) -> None:
    folder = make_model(tmp_path / "model")
    for given in (str(folder), f"{folder}/", folder):
        assert manager().find(given).model_path == str(folder)


def test_home_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = make_model(tmp_path / "models" / "m")
    assert manager().find("~/models/m").model_path == str(folder)


def test_relative_to_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = make_model(tmp_path / "work" / "m")
    monkeypatch.chdir(tmp_path / "work")
    assert manager().find("m").model_path == str(folder)
    monkeypatch.chdir(tmp_path)
    assert manager().find("work/m").model_path == str(folder)


def test_relative_to_load_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_model(tmp_path / "base" / "m")
    monkeypatch.chdir(tmp_path)
    assert manager(str(tmp_path / "base")).find("m").model_path == str(folder)


def test_load_path_expands_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = make_model(tmp_path / "base" / "m")
    assert manager("~/base").find("m").model_path == str(folder)


def test_symlinks_resolve(tmp_path: Path) -> None:
    make_model(tmp_path / "real" / "m", "through-link")
    (tmp_path / "absolute-link").symlink_to(tmp_path / "real" / "m")
    links = tmp_path / "links"
    links.mkdir()
    (links / "relative-link").symlink_to(Path("..") / "real" / "m")
    found = manager().find(tmp_path / "absolute-link")
    assert found.module_id == "through-link"
    assert found.model_path == str(tmp_path / "absolute-link")
    assert manager().find(links / "relative-link").module_id == "through-link"


def test_dotdot_after_symlink_follows_link(tmp_path: Path) -> None:
    make_model(tmp_path / "real" / "m", "beside-target")
    (tmp_path / "deep" / "inner").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "deep" / "inner")
    make_model(tmp_path / "deep" / "m", "beside-link-target")
    # The OS resolves "link/.." to "deep", not to tmp_path as a lexical join would.
    found = manager().find(f"{tmp_path}/link/../m")
    assert found.module_id == "beside-link-target"
    assert found.model_path == str(tmp_path / "deep" / "m")


@pytest.mark.parametrize("name", ["with space", "人工智能 模型", "ünïcödé"])
def test_unusual_names(tmp_path: Path, name: str) -> None:
    folder = make_model(tmp_path / name)
    assert manager().find(str(folder)).model_path == str(folder)


def test_missing_path_names_path_and_finder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ModelNotFoundError) as info:
        manager().find(str(missing))
    assert str(missing) in str(info.value)
    assert "'default'" in str(info.value)
    assert info.value.finder == "default"
    assert isinstance(info.value, FileNotFoundError)


def test_relative_missing_lists_every_candidate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFoundError) as info:
        manager(str(tmp_path / "base")).find("m")
    assert str(tmp_path / "base" / "m") in str(info.value)
    assert str(tmp_path / "m") in str(info.value)


def test_folder_without_config_yml(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="holds no config.yml"):
        manager().find(tmp_path / "empty")


def test_broken_symlink_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    with pytest.raises(ModelNotFoundError, match="not found"):
        manager().find(tmp_path / "dangling")


def test_non_path_identifier_is_rejected() -> None:
    with pytest.raises(ModelNotFoundError, match="got int"):
        manager().find(42)


def test_hugging_face_folder_gets_hint(tmp_path: Path) -> None:
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ModelNotFoundError, match="finder='transformers'"):
        manager().find(folder)


@pytest.mark.parametrize("url", ["s3://bucket/models/iris", "https://host/model"])
def test_url_points_to_remote_finder(url: str) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        manager().find(url)
    assert repr(url) in str(info.value)
    assert "finder='s3'" in str(info.value)


def test_empty_path_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_model(tmp_path / "cwd-model")
    monkeypatch.chdir(tmp_path / "cwd-model")
    with pytest.raises(ModelNotFoundError, match="empty model path"):
        manager().find("")


def test_config_yml_path_names_folder(tmp_path: Path) -> None:
    folder = make_model(tmp_path / "model")
    with pytest.raises(ModelNotFoundError) as info:
        manager().find(folder / "config.yml")
    assert f"Pass the folder that holds it: {str(folder)!r}" in str(info.value)


def test_text_mode_file_is_rejected(tmp_path: Path) -> None:
    archive = tmp_path / "model.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    with open(archive, encoding="latin-1") as stream:
        with pytest.raises(ModelNotFoundError, match="open\\(path, 'rb'\\)"):
            manager().find(stream)


def test_nul_in_path_is_rejected() -> None:
    with pytest.raises(ModelNotFoundError, match="NUL character"):
        manager().find("models/a\x00b")
