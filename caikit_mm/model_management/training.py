"""Training futures: the handle a trainer returns for one training job."""

from __future__ import annotations

import abc
import datetime
import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..modules import ModuleBase


class TrainingStatus(enum.Enum):
    """Lifecycle of a training job; a terminal status never changes again."""

    QUEUED = "QUEUED"  # accepted, not started
    RUNNING = "RUNNING"  # the module's train is executing
    COMPLETED = "COMPLETED"  # trained, and saved when a save path was given
    ERRORED = "ERRORED"  # train, save or the worker failed
    CANCELED = "CANCELED"  # stopped by cancel() before it completed

    @property
    def is_terminal(self) -> bool:
        """Whether the job has finished and its status is final."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {TrainingStatus.COMPLETED, TrainingStatus.ERRORED, TrainingStatus.CANCELED}
)


@dataclass
class TrainingInfo:
    """A snapshot of a training job.

    Attributes:
        status: The job's status when the snapshot was taken.
        submission_time: When ``train`` was called (UTC).
        completion_time: When the job reached a terminal status, else ``None``.
        errors: Messages of the errors that ended the job.
    """

    status: TrainingStatus
    submission_time: datetime.datetime
    completion_time: datetime.datetime | None = None
    errors: list[str] = field(default_factory=list)


class ModelFuture(abc.ABC):
    """Handle of one training job, returned by :meth:`ModelTrainer.train`."""

    @property
    @abc.abstractmethod
    def id(self) -> str:
        """The training id, unique within its manager."""

    @property
    @abc.abstractmethod
    def save_path(self) -> str | None:
        """Where the trained model is saved, or ``None`` when it is not saved."""

    @property
    def status(self) -> TrainingStatus:
        """The job's current status."""
        return self.info().status

    @abc.abstractmethod
    def info(self) -> TrainingInfo:
        """Return a snapshot of the job's status, times and errors."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> TrainingStatus:
        """Block until the job is terminal or ``timeout`` seconds pass.

        Raises:
            TimeoutError: The job is still running after ``timeout`` seconds.
        """

    @abc.abstractmethod
    def cancel(self) -> None:
        """Stop the job; a job that is already terminal keeps its status."""

    @abc.abstractmethod
    def load(self) -> ModuleBase:
        """Wait for the job and return the trained model.

        Raises:
            Exception: The job's own failure, with its original type and message.
        """
