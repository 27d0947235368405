"""Modules, their saved configuration and the backends they run on."""

from .backends import BACKENDS, BackendBase, LocalBackend
from .base import (
    LOCAL_BACKEND,
    MODULE_REGISTRY,
    MODULES_GROUP,
    ModuleBase,
    ModuleRegistry,
    module,
    save_config,
)
from .config import CONFIG_FILE, AttrDict, ModuleConfig

__all__ = [
    "BACKENDS",
    "CONFIG_FILE",
    "LOCAL_BACKEND",
    "MODULES_GROUP",
    "MODULE_REGISTRY",
    "AttrDict",
    "BackendBase",
    "LocalBackend",
    "ModuleBase",
    "ModuleConfig",
    "ModuleRegistry",
    "module",
    "save_config",
]
