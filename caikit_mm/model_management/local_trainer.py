"""The LOCAL trainer (placeholder: training lands with the training futures)."""

from __future__ import annotations

from typing import Any, ClassVar

from .base import ModelTrainer


class LocalModelTrainer(ModelTrainer):
    """Train modules in this process, in a thread or a subprocess."""

    name: ClassVar[str] = "LOCAL"

    def train(self, module_class: Any, *args: Any, save_path: str | None = None, **kwargs: Any) -> Any:
        raise NotImplementedError("LOCAL trainer is not implemented yet")

    def get_model_future(self, training_id: str) -> Any:
        raise NotImplementedError("LOCAL trainer is not implemented yet")
