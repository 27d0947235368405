"""The three roles, their abstract base classes and their type registries."""

from typing import Any, Final

from ..registry import PluginRegistry
from .base import ModelFinder, ModelInitializer, ModelTrainer, ValidationContext
from .training import ModelFuture, TrainingInfo, TrainingStatus

_PACKAGE = "caikit_mm.model_management"

TRAINERS: Final[PluginRegistry[ModelTrainer]] = PluginRegistry(
    "trainer",
    "caikit_mm.trainers",
    ModelTrainer,
    {
        "LOCAL": f"{_PACKAGE}.local_trainer:LocalModelTrainer",
        "RAY": "caikit_mm.ray.trainer:RayModelTrainer",
    },
)
FINDERS: Final[PluginRegistry[ModelFinder]] = PluginRegistry(
    "finder",
    "caikit_mm.finders",
    ModelFinder,
    {
        "LOCAL": f"{_PACKAGE}.local_finder:LocalModelFinder",
        "MULTI": f"{_PACKAGE}.multi:MultiModelFinder",
        "REMOTE": "caikit_mm.storage.remote:RemoteModelFinder",
        "TRANSFORMERS": "caikit_mm.transformers.finder:TransformersFinder",
    },
)
INITIALIZERS: Final[PluginRegistry[ModelInitializer]] = PluginRegistry(
    "initializer",
    "caikit_mm.initializers",
    ModelInitializer,
    {
        "LOCAL": f"{_PACKAGE}.local_initializer:LocalModelInitializer",
        "MULTI": f"{_PACKAGE}.multi:MultiModelInitializer",
        "RAY": "caikit_mm.ray.initializer:RayModelInitializer",
    },
)

REGISTRIES: Final[dict[str, PluginRegistry[Any]]] = {
    "trainer": TRAINERS,
    "finder": FINDERS,
    "initializer": INITIALIZERS,
}

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
