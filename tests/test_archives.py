"""Model archives: layouts, inputs, unsafe entries, limits and the cache."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
import storage_models as sm
import yaml

from caikit_mm import (
    ArchiveError,
    ConfigError,
    ModelManager,
    ModelNotFoundError,
    UnsafeArchiveError,
)
from caikit_mm.storage import ArchiveLimits, extract_model_archive

TESTS = Path(__file__).resolve().parent

FORMATS = ["zip", "tar", "tar.gz", "tgz"]


def archive_bytes(fmt: str, files: dict[str, bytes], prefix: str = "") -> bytes:
    if fmt == "zip":
        return sm.zip_bytes(files, prefix)
    compression = "gz" if fmt in ("tar.gz", "tgz") else ""
    return sm.tar_bytes(files, prefix, compression)


def write_archive(folder: Path, fmt: str, data: bytes, stem: str = "model") -> Path:
    path = folder / f"{stem}.{fmt}"
    path.write_bytes(data)
    return path


def manager(cache_dir: Path, **config: Any) -> ModelManager:
    finder_config = {"cache_dir": str(cache_dir), **config}
    return ModelManager(
        {"model_management": {"finders": {"default": {"config": finder_config}}}}
    )


def files_on_disk(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() or p.is_symlink()]


# Layouts --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("prefix", ["", "my-model/"])
def test_archive_layout_loads(tmp_path: Path, fmt: str, prefix: str) -> None:
    files = sm.model_files("layout")
    path = write_archive(tmp_path, fmt, archive_bytes(fmt, files, prefix))
    model = manager(tmp_path / "cache").load(path)
    assert isinstance(model, sm.StoredModel)
    assert model.files == files
    assert Path(model.path).is_relative_to(tmp_path / "cache" / "archives")


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_macos_and_dot_entries_ignored(tmp_path: Path, fmt: str) -> None:
    files = sm.model_files("mac")
    extra = {"__MACOSX/model/._config.yml": b"junk", ".DS_Store": b"junk"}
    data = archive_bytes(fmt, {**{f"model/{k}": v for k, v in files.items()}, **extra})
    model = manager(tmp_path / "cache").load(write_archive(tmp_path, fmt, data))
    assert model.files == files


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_two_top_folders_rejected(tmp_path: Path, fmt: str) -> None:
    files = {"a/config.yml": sm.config_bytes(), "b/readme.txt": b"x", "notes.txt": b"x"}
    path = write_archive(tmp_path, fmt, archive_bytes(fmt, files))
    with pytest.raises(ArchiveError) as caught:
        manager(tmp_path / "cache").load(path)
    message = str(caught.value)
    assert "a/, b/, notes.txt" in message
    assert "config.yml" in message
    assert files_on_disk(tmp_path / "cache") == []


@pytest.mark.parametrize(
    "files",
    [
        {"weights.bin": b"x"},
        {"outer/inner/config.yml": sm.config_bytes()},
        {"folder/weights.bin": b"x"},
    ],
)
def test_archive_without_config_rejected(
    tmp_path: Path, files: dict[str, bytes]
) -> None:
    path = write_archive(tmp_path, "zip", sm.zip_bytes(files))
    with pytest.raises(ArchiveError, match="contains no model") as caught:
        manager(tmp_path / "cache").load(path)
    top = sorted({name.split("/")[0] for name in files})[0]
    assert top in str(caught.value)


def test_not_an_archive_rejected(tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    path.write_text("just text, not an archive\n")
    with pytest.raises(ArchiveError, match="not a valid model archive"):
        manager(tmp_path / "cache").load(path)


def test_damaged_zip_rejected(tmp_path: Path) -> None:
    data = sm.zip_bytes(sm.model_files(size=5000))
    damaged = bytearray(data)
    damaged[40:60] = b"\x00" * 20  # inside the first member's compressed data
    with pytest.raises(ArchiveError):
        manager(tmp_path / "cache").load(bytes(damaged))
    assert files_on_disk(tmp_path / "cache") == []


def test_missing_archive_path_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        manager(tmp_path / "cache").load(tmp_path / "absent.zip")


# Inputs ---------------------------------------------------------------------------


def test_archive_bytes_load(tmp_path: Path) -> None:
    files = sm.model_files("bytes")
    model = manager(tmp_path / "cache").load(sm.zip_bytes(files))
    assert model.files == files


def test_archive_file_object_loads(tmp_path: Path) -> None:
    files = sm.model_files("fileobj")
    stream = io.BytesIO(sm.tar_bytes(files, compression="gz"))
    model = manager(tmp_path / "cache").load(stream)
    assert model.files == files
    assert not stream.closed


def test_unseekable_stream_loads(tmp_path: Path) -> None:
    files = sm.model_files("pipe", size=200_000)
    data = sm.zip_bytes(files)
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with open(write_fd, "wb") as writer:
            writer.write(data)

    feeder = threading.Thread(target=feed)
    feeder.start()
    with open(read_fd, "rb") as reader:
        assert not reader.seekable()
        model = manager(tmp_path / "cache").load(reader, cache=False)
    feeder.join()
    assert model.files == files


def test_find_archive_explains(tmp_path: Path) -> None:
    path = write_archive(tmp_path, "zip", sm.zip_bytes(sm.model_files("find")))
    config = manager(tmp_path / "cache").find(path)
    assert config.module_id == sm.MODULE_ID
    assert Path(config.model_path or "").parent == tmp_path / "cache" / "archives"


# Unsafe entries ---------------------------------------------------------------------


def unsafe_zip(name: str, mode: int = 0o100644, data: bytes = b"x") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.yml", sm.config_bytes())
        info = zipfile.ZipInfo(name)
        info.external_attr = mode << 16
        archive.writestr(info, data)
    return buffer.getvalue()


def unsafe_tar(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        sm.add_tar_member(archive, "config.yml", sm.config_bytes())
        sm.add_tar_member(archive, name, b"x", kind, link)
    return buffer.getvalue()


UNSAFE_ZIPS = {
    "parent": ("../evil.txt", unsafe_zip("../evil.txt")),
    "nested parent": ("data/../../evil.txt", unsafe_zip("data/../../evil.txt")),
    "absolute": ("/tmp/evil.txt", unsafe_zip("/tmp/evil.txt")),
    "windows absolute": ("C:\\evil.txt", unsafe_zip("C:\\evil.txt")),
    "backslash parent": ("..\\evil.txt", unsafe_zip("..\\evil.txt")),
    "symlink out": ("link", unsafe_zip("link", stat.S_IFLNK | 0o777, b"../../etc")),
    "symlink absolute": (
        "link",
        unsafe_zip("link", stat.S_IFLNK | 0o777, b"/etc/passwd"),
    ),
    "device": ("dev", unsafe_zip("dev", stat.S_IFCHR | 0o644)),
    "fifo": ("pipe", unsafe_zip("pipe", stat.S_IFIFO | 0o644)),
}
UNSAFE_TARS = {
    "parent": ("../evil.txt", unsafe_tar("../evil.txt")),
    "absolute": ("/tmp/evil.txt", unsafe_tar("/tmp/evil.txt")),
    "symlink out": ("link", unsafe_tar("link", tarfile.SYMTYPE, "../../etc/passwd")),
    "symlink absolute": ("link", unsafe_tar("link", tarfile.SYMTYPE, "/etc/passwd")),
    "hardlink out": ("hard", unsafe_tar("hard", tarfile.LNKTYPE, "../outside.txt")),
    "hardlink absolute": ("hard", unsafe_tar("hard", tarfile.LNKTYPE, "/etc/passwd")),
    "char device": ("dev", unsafe_tar("dev", tarfile.CHRTYPE)),
    "block device": ("blk", unsafe_tar("blk", tarfile.BLKTYPE)),
    "fifo": ("pipe", unsafe_tar("pipe", tarfile.FIFOTYPE)),
}


@pytest.mark.parametrize(
    "case", [*(("zip", k) for k in UNSAFE_ZIPS), *(("tar", k) for k in UNSAFE_TARS)]
)
def test_unsafe_entry_rejected(tmp_path: Path, case: tuple[str, str]) -> None:
    fmt, key = case
    entry, data = (UNSAFE_ZIPS if fmt == "zip" else UNSAFE_TARS)[key]
    work = tmp_path / "work"
    work.mkdir()
    path = write_archive(work, fmt, data)
    with pytest.raises(UnsafeArchiveError) as caught:
        manager(tmp_path / "cache").load(path)
    assert caught.value.entry == entry
    assert repr(entry) in str(caught.value)
    assert files_on_disk(tmp_path) == [path]


def test_entry_through_symlink_rejected(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        sm.add_tar_member(archive, "config.yml", sm.config_bytes())
        sm.add_tar_member(archive, "sub", kind=tarfile.SYMTYPE, link=".")
        sm.add_tar_member(archive, "sub/file.txt", b"x")
    with pytest.raises(UnsafeArchiveError, match="through the link") as caught:
        manager(tmp_path / "cache").load(buffer.getvalue())
    assert caught.value.entry == "sub/file.txt"


def test_links_inside_model_kept(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        sm.add_tar_member(archive, "m/config.yml", sm.config_bytes())
        sm.add_tar_member(archive, "m/data/a.txt", b"hello")
        sm.add_tar_member(archive, "m/soft", kind=tarfile.SYMTYPE, link="data/a.txt")
        sm.add_tar_member(archive, "m/hard", kind=tarfile.LNKTYPE, link="m/data/a.txt")
    model = manager(tmp_path / "cache").load(buffer.getvalue())
    root = Path(model.path)
    assert (root / "soft").is_symlink()
    assert os.readlink(root / "soft") == "data/a.txt"
    assert model.files["soft"] == b"hello"
    assert model.files["hard"] == b"hello"


def test_duplicate_entry_rejected(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        sm.add_tar_member(archive, "config.yml", sm.config_bytes())
        sm.add_tar_member(archive, "a.txt", b"one")
        sm.add_tar_member(archive, "a.txt", b"two")
    with pytest.raises(UnsafeArchiveError, match="more than once"):
        manager(tmp_path / "cache").load(buffer.getvalue())


# Limits -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_too_many_files_rejected(tmp_path: Path, fmt: str) -> None:
    data = archive_bytes(fmt, sm.model_files(extra=5))
    with pytest.raises(UnsafeArchiveError, match="limit of 3 files"):
        manager(tmp_path / "cache", max_archive_files=3).load(data)
    assert files_on_disk(tmp_path / "cache") == []


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_too_large_rejected(tmp_path: Path, fmt: str) -> None:
    data = archive_bytes(fmt, sm.model_files(extra=2, size=3000))
    with pytest.raises(UnsafeArchiveError, match="limit of 4000 bytes"):
        manager(tmp_path / "cache", max_archive_bytes=4000).load(data)
    assert files_on_disk(tmp_path / "cache") == []


def test_zip_bomb_rejected_before_writing(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.yml", sm.config_bytes())
        for index in range(4):
            archive.writestr(f"zeros-{index}.bin", bytes(50 * 1024 * 1024))
    data = buffer.getvalue()
    assert len(data) < 2 * 1024 * 1024
    with pytest.raises(UnsafeArchiveError, match="over the limit"):
        manager(tmp_path / "cache", max_archive_bytes="100MiB").load(data)
    assert files_on_disk(tmp_path / "cache") == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_archive_bytes", "lots"),
        ("max_archive_bytes", -1),
        ("max_archive_files", 0),
        ("max_archive_files", "many"),
        ("cache_dir", 5),
    ],
)
def test_archive_config_validated(key: str, value: Any) -> None:
    config = {"finders": {"default": {"config": {key: value}}}}
    with pytest.raises(ConfigError) as caught:
        ModelManager({"model_management": config})
    assert f"finders.default.config.{key}" in str(caught.value)


@pytest.mark.parametrize(("size", "limit"), [("1KiB", 1024), ("1.5kB", 1500)])
def test_limits_accept_units(tmp_path: Path, size: str, limit: int) -> None:
    data = sm.zip_bytes(sm.model_files(extra=1, size=2000))
    with pytest.raises(UnsafeArchiveError, match=f"limit of {limit} bytes"):
        manager(tmp_path / "cache", max_archive_bytes=size).load(data)


# The cache --------------------------------------------------------------------------


def test_second_load_reuses_extraction(tmp_path: Path) -> None:
    path = write_archive(tmp_path, "zip", sm.zip_bytes(sm.model_files("reuse")))
    first = manager(tmp_path / "cache").load(path)
    marker = Path(first.path) / "marker-left-by-test"
    marker.write_text("still here")
    second = manager(tmp_path / "cache").load(path)
    assert second is not first
    assert second.path == first.path
    assert marker.exists()


def test_other_process_reuses_extraction(tmp_path: Path) -> None:
    path = write_archive(
        tmp_path, "tgz", sm.tar_bytes(sm.model_files("proc"), "", "gz")
    )
    first = manager(tmp_path / "cache").load(path)
    marker = Path(first.path) / "marker-left-by-test"
    marker.write_text("still here")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from caikit_mm.storage import extract_model_archive\n"
        "print(extract_model_archive(sys.argv[2], sys.argv[3]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(TESTS), str(path), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == first.path
    assert marker.exists()


def test_unfinished_extraction_not_trusted(tmp_path: Path) -> None:
    files = sm.model_files("partial")
    data = sm.zip_bytes(files)
    archives = tmp_path / "cache" / "archives"
    # What a process killed mid-extraction leaves: a temporary folder holding
    # config.yml but not the data files.
    leftover = archives / ".tmp-0123456789ab-deadbeef0000"
    sm.write_folder(leftover, {"config.yml": files["config.yml"]})
    model = manager(tmp_path / "cache").load(data)
    assert model.files == files
    assert Path(model.path).parent == archives
    assert not Path(model.path).name.startswith(".tmp-")


def test_old_temp_folders_removed(tmp_path: Path) -> None:
    archives = tmp_path / "cache" / "archives"
    stale = sm.write_folder(archives / ".tmp-stale-000000000000", {"a": b"x"})
    os.utime(stale, (1, 1))
    manager(tmp_path / "cache").load(sm.zip_bytes(sm.model_files("stale")))
    assert not stale.exists()


def test_extract_returns_same_folder_for_same_content(tmp_path: Path) -> None:
    data = sm.zip_bytes(sm.model_files("same"))
    first = extract_model_archive(data, tmp_path, ArchiveLimits())
    second = extract_model_archive(io.BytesIO(data), tmp_path)
    assert first == second
    other = extract_model_archive(sm.zip_bytes(sm.model_files("other")), tmp_path)
    assert other != first


# Archives saved by another project ----------------------------------------------------


def test_caikit_zip_fixtures_load(caikit_fixtures: Path, tmp_path: Path) -> None:
    import fixture_modules  # noqa: F401 - registers the fixture module ids

    archives = sorted(caikit_fixtures.rglob("*.zip"))
    assert len(archives) >= 3
    mgr = manager(tmp_path / "cache")
    for archive in archives:
        model = mgr.load(archive)
        with zipfile.ZipFile(archive) as opened:
            expected = yaml.safe_load(opened.read("config.yml"))
        assert model.config.to_dict() == expected, archive
        assert model.MODULE_ID == expected["module_id"], archive


def test_caikit_dummy_zip_keeps_artifacts(
    caikit_fixtures: Path, tmp_path: Path
) -> None:
    import json

    import fixture_modules  # noqa: F401 - registers the fixture module ids

    model = manager(tmp_path / "cache").load(caikit_fixtures / "dummy_module.zip")
    with zipfile.ZipFile(caikit_fixtures / "dummy_module.zip") as opened:
        assert model.data == json.loads(opened.read("data.json"))
    assert (Path(model.config.model_path) / "data.pkl").is_file()


def test_cache_dir_expands_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    model = manager(Path("~/model-cache")).load(sm.zip_bytes(sm.model_files("home")))
    assert Path(model.path).parent == tmp_path / "model-cache" / "archives"


def test_default_cache_dir_per_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    config = {"finders": {"default": {"config": {"cache_dir": ""}}}}
    model = ModelManager({"model_management": config}).load(
        sm.zip_bytes(sm.model_files("xdg"))
    )
    assert Path(model.path).parent == tmp_path / "xdg" / "caikit_mm" / "archives"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    model = ModelManager({"model_management": config}).load(
        sm.zip_bytes(sm.model_files("home-default"))
    )
    expected = tmp_path / "home" / ".cache" / "caikit_mm" / "archives"
    assert Path(model.path).parent == expected
