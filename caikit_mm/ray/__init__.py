"""Distribution on Ray: the ``RAY`` trainer and the ``RAY`` initializer.

The trainer runs a module's ``train`` on a Ray cluster, as a Ray task or as a
Ray job; the initializer loads a model inside a Ray actor and returns a
:class:`RemoteModel` whose calls go to that actor. Both are selected by
configuration (``trainer="ray"``, ``initializer="ray"``).

Importing this package does not import Ray: Ray is imported when a RAY trainer
or initializer first needs it, and a missing installation raises an
``ImportError`` that names ``pip install 'caikit_mm[ray]'``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "RayModelInitializer": "caikit_mm.ray.initializer",
    "RayModelTrainer": "caikit_mm.ray.trainer",
    "RemoteModel": "caikit_mm.ray.initializer",
}

__all__ = ["RayModelInitializer", "RayModelTrainer", "RemoteModel"]

if TYPE_CHECKING:
    from .initializer import RayModelInitializer, RemoteModel
    from .trainer import RayModelTrainer


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'caikit_mm.ray' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)


def __dir__() -> list[str]:
    return __all__
