"""Fine-tuning a sequence classifier on labelled texts with a plain PyTorch loop."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class TrainingOptions:
    """Hyperparameters of :func:`fine_tune`.

    Attributes:
        num_epochs: Passes over the examples.
        learning_rate: AdamW learning rate.
        batch_size: Examples per optimizer step.
        weight_decay: AdamW weight decay.
        max_length: Token limit per text; longer texts are truncated.
        seed: Seed for the new classifier head, dropout and shuffling.
    """

    num_epochs: int = 3
    learning_rate: float = 5e-5
    batch_size: int = 8
    weight_decay: float = 0.0
    max_length: int | None = None
    seed: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` for a value outside its range."""
        for name in ("num_epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if not self.learning_rate > 0:
            raise ValueError(
                f"learning_rate must be positive, got {self.learning_rate!r}."
            )


def read_examples(train_data: Iterable[Any]) -> tuple[list[str], list[str]]:
    """Split ``train_data`` into texts and string labels.

    Each example is a ``(text, label)`` pair or a mapping with ``text`` and
    ``label`` keys. Labels are converted with ``str``.

    Raises:
        ValueError: No examples, or an example of another shape.
    """
    texts: list[str] = []
    labels: list[str] = []
    for index, example in enumerate(train_data):
        if isinstance(example, Mapping) and "text" in example and "label" in example:
            text, label = example["text"], example["label"]
        elif isinstance(example, (tuple, list)) and len(example) == 2:
            text, label = example
        else:
            raise ValueError(
                f"training example {index} must be a (text, label) pair or a mapping "
                f"with 'text' and 'label', got {example!r:.80}."
            )
        if not isinstance(text, str):
            raise ValueError(
                f"training example {index} has a text of type {type(text).__name__}; "
                "texts must be strings."
            )
        texts.append(text)
        labels.append(str(label))
    if not texts:
        raise ValueError("train_data contains no examples; pass (text, label) pairs.")
    return texts, labels


def fine_tune(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    label_ids: list[int],
    options: TrainingOptions,
    device: Any,
) -> list[float]:
    """Train ``model`` in place and return the mean loss of each epoch.

    Training stops after the current step when the training job is cancelled;
    the trainer then discards the model. The model is left in evaluation mode.
    """
    import torch

    from ..model_management.training import is_cancelled

    model.to(device)
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay
    )
    targets = torch.tensor(label_ids, dtype=torch.long)
    generator = torch.Generator().manual_seed(options.seed)
    losses: list[float] = []
    start = time.perf_counter()
    try:
        for epoch in range(options.num_epochs):
            order = torch.randperm(len(texts), generator=generator).tolist()
            total = 0.0
            for first in range(0, len(order), options.batch_size):
                batch = order[first : first + options.batch_size]
                encoded = tokenizer(
                    [texts[index] for index in batch],
                    padding=True,
                    truncation=options.max_length is not None,
                    max_length=options.max_length,
                    return_tensors="pt",
                ).to(device)
                loss = model(**encoded, labels=targets[batch].to(device)).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                total += float(loss.detach()) * len(batch)
                if is_cancelled():
                    log.info("Training cancelled in epoch %d", epoch + 1)
                    return losses
            losses.append(total / len(texts))
            log.debug(
                "Epoch %d/%d: mean loss %.4f", epoch + 1, options.num_epochs, losses[-1]
            )
    finally:
        model.eval()
    log.info(
        "Fine-tuned a classifier on %d examples for %d epochs in %.1f s; "
        "final loss %.4f",
        len(texts),
        options.num_epochs,
        time.perf_counter() - start,
        losses[-1],
    )
    return losses
