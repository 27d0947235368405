"""Model storage: archives, object stores and their local cache.

``import caikit_mm`` imports nothing here. Loading the configuration imports
the small modules that check the LOCAL and REMOTE finders' keys, and only the
standard library. ``fsspec``, ``s3fs`` and ``filelock`` are imported when a URL
is first read; without them the REMOTE finder raises an ``ImportError`` that
names ``pip install 'caikit_mm[s3]'``.

Public helpers:

- :func:`upload_folder` copies a saved model folder to a URL;
- :func:`download_folder` copies a URL (a folder or one object) to a local folder;
- :func:`folder_exists` returns whether a URL contains objects;
- :func:`delete_folder` deletes the objects under a URL.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ArchiveLimits": "caikit_mm.storage._cache",
    "RemoteModelFinder": "caikit_mm.storage.remote",
    "default_cache_dir": "caikit_mm.storage._cache",
    "delete_folder": "caikit_mm.storage.transfer",
    "download_folder": "caikit_mm.storage.transfer",
    "extract_model_archive": "caikit_mm.storage.archive",
    "folder_exists": "caikit_mm.storage.transfer",
    "upload_folder": "caikit_mm.storage.transfer",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from ._cache import (
        ArchiveLimits,  # noqa: F401
        default_cache_dir,  # noqa: F401
    )
    from .archive import extract_model_archive  # noqa: F401
    from .remote import RemoteModelFinder  # noqa: F401
    from .transfer import (  # noqa: F401
        delete_folder,
        download_folder,
        folder_exists,
        upload_folder,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'caikit_mm.storage' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
