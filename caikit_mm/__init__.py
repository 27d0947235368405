"""caikit_mm: pluggable model management for ML models.

Three roles, each a named and configured plugin: trainers turn raw materials into
saved models, finders turn a model identifier into a :class:`ModuleConfig`, and
initializers turn that config into a model ready for inference.
``ModelManager().load(path)`` chains a finder and an initializer.

Attributes are imported on first access, so ``import caikit_mm`` stays cheap.
"""

from __future__ import annotations

import importlib
import logging

# typing costs more to import than the rest of this file; type checkers treat
# this name as typing.TYPE_CHECKING.
TYPE_CHECKING = False

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

_EXPORTS = {
    "BackendBase": "caikit_mm.modules",
    "ModelFinder": "caikit_mm.model_management",
    "ModelFuture": "caikit_mm.model_management",
    "ModelInitializer": "caikit_mm.model_management",
    "ModelManager": "caikit_mm.manager",
    "ModelTrainer": "caikit_mm.model_management",
    "ModuleBase": "caikit_mm.modules",
    "ModuleConfig": "caikit_mm.modules",
    "TrainingStatus": "caikit_mm.model_management",
    "load_config": "caikit_mm.config",
    "module": "caikit_mm.modules",
}
_ERRORS = (
    "ArchiveError",
    "CaikitMMError",
    "ConfigError",
    "InitializationFailedError",
    "LocalStorageError",
    "ModelFormatError",
    "ModelNotFoundError",
    "ModuleNotRegisteredError",
    "ModuleRegistrationError",
    "NoMatchingBackendError",
    "PluginConflictError",
    "PluginError",
    "PluginImportError",
    "RemoteModelError",
    "RemoteStorageError",
    "SavePathExistsError",
    "TrainingError",
    "TrainingIdInUseError",
    "TrainingNotFoundError",
    "TrainingProcessError",
    "UnknownInstanceError",
    "UnknownTypeError",
    "UnsafeArchiveError",
)
_EXPORTS.update({name: "caikit_mm.errors" for name in _ERRORS})

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:
    from typing import Any

    # "X as X" marks each name as re-exported for type checkers in strict mode.
    from .config import load_config as load_config
    from .errors import *  # noqa: F403
    from .manager import ModelManager as ModelManager
    from .model_management import ModelFinder as ModelFinder
    from .model_management import ModelFuture as ModelFuture
    from .model_management import ModelInitializer as ModelInitializer
    from .model_management import ModelTrainer as ModelTrainer
    from .model_management import TrainingStatus as TrainingStatus
    from .modules import BackendBase as BackendBase
    from .modules import ModuleBase as ModuleBase
    from .modules import ModuleConfig as ModuleConfig
    from .modules import module as module

def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'caikit_mm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
