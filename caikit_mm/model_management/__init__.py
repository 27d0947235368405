"""The three roles, their abstract base classes and their type registries."""

from typing import Final

from ..registry import PluginRegistry
from .base import ModelFinder, ModelInitializer, ModelTrainer, ValidationContext
from .training import ModelFuture, TrainingInfo, TrainingStatus

_PACKAGE = "caikit_mm.model_management"

TRAINERS: Final = PluginRegistry(
    "trainer",
    "caikit_mm.trainers",
    ModelTrainer,
    {"LOCAL": f"{_PACKAGE}.local_trainer:LocalModelTrainer"},
)
FINDERS: Final = PluginRegistry(
    "finder",
    "caikit_mm.finders",
    ModelFinder,
    {"LOCAL": f"{_PACKAGE}.local_finder:LocalModelFinder"},
)
INITIALIZERS: Final = PluginRegistry(
    "initializer",
    "caikit_mm.initializers",
    ModelInitializer,
    {"LOCAL": f"{_PACKAGE}.local_initializer:LocalModelInitializer"},
)

REGISTRIES: Final = {"trainer": TRAINERS, "finder": FINDERS, "initializer": INITIALIZERS}

__all__ = [
    "FINDERS",
    "INITIALIZERS",
    "REGISTRIES",
    "TRAINERS",
    "ModelFinder",
    "ModelFuture",
    "ModelInitializer",
    "ModelTrainer",
    "TrainingInfo",
    "TrainingStatus",
    "ValidationContext",
]
