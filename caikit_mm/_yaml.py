"""Safe YAML reading and writing, with PyYAML's C loader when it is built."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import yaml

try:
    from yaml import CSafeDumper as _SafeDumper
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeDumper as _SafeDumper  # type: ignore[assignment,unused-ignore]
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment,unused-ignore]

YAMLError = yaml.YAMLError


def loads(text: str | bytes) -> Any:
    """Parse YAML text with the safe loader, so no tag can construct an object."""
    return yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - the loader is safe


def load_file(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file with the safe loader."""
    with open(path, "rb") as stream:
        return loads(stream.read())


def dumps(data: Any) -> str:
    """Serialize plain data to block-style YAML, keeping key order and Unicode."""
    text: str = yaml.dump(
        data,
        Dumper=_SafeDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
    )
    return text


def write_file_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write text to a temporary file beside ``path``, then rename it into place."""
    target = Path(path)
    tmp_name = target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
    # Unlike mkstemp's 0600, mode 0666 lets the umask decide, as open() does.
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
