"""Training futures: the handle a trainer returns for one training job.

:class:`ModelFuture` is the interface. :class:`BaseModelFuture` implements the
parts every trainer type shares: the status machine in which a terminal status
never changes again, waiting, cancelling, ``load`` re-raising the job's own
error, and ``concurrent.futures``-style ``done``/``result``/``exception``/
``add_done_callback``. A trainer type subclasses it and reports progress with
``_mark_running``, ``_complete`` and ``_fail``.

Module code that runs inside a training job can call :func:`is_cancelled` to
stop early when the job is cancelled, or declare a ``cancel_event`` parameter
on its ``train`` to receive a :class:`threading.Event` that is set on cancel.

Trainer keyword contract: ``ModelManager.train`` calls a trainer's ``train``
with ``save_path``, ``save_with_id`` and ``model_name`` always, and adds
``training_id`` and ``overwrite`` only when the caller sets them.
"""

from __future__ import annotations

import abc
import datetime
import enum
import inspect
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..modules import ModuleBase

log = logging.getLogger(__name__)


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
        start_time: When the job started running (UTC), else ``None``.
    """

    status: TrainingStatus
    submission_time: datetime.datetime
    completion_time: datetime.datetime | None = None
    errors: list[str] = field(default_factory=list)
    start_time: datetime.datetime | None = None


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


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


DoneCallback = Callable[["BaseModelFuture"], object]


class BaseModelFuture(ModelFuture):
    """A :class:`ModelFuture` with the status machine every trainer type shares.

    The status moves QUEUED, then RUNNING, then one terminal status; once
    terminal it never changes, so cancelling a completed job leaves it
    COMPLETED and a job that reports success after a cancel stays CANCELED.
    Every method is thread-safe.

    A subclass implements :meth:`_load_model`, may override :meth:`_cancel_job`
    to stop its worker, and calls :meth:`_mark_running`, :meth:`_complete` and
    :meth:`_fail` from the thread that watches the job.

    Args:
        training_id: The job's id.
        save_path: The final folder of the model, or ``None``.
        trainer_name: The trainer instance that owns the job.
    """

    def __init__(
        self, training_id: str, save_path: str | None, trainer_name: str
    ) -> None:
        self._id = training_id
        self._save_path = save_path
        self.trainer_name = trainer_name
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._status = TrainingStatus.QUEUED
        self._submission_time = _utcnow()
        self._start_time: datetime.datetime | None = None
        self._completion_time: datetime.datetime | None = None
        self._error: BaseException | None = None
        self._callbacks: list[DoneCallback] = []
        self.cancel_event = threading.Event()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._id!r} {self._status.value}>"

    # ModelFuture ----------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

    @property
    def save_path(self) -> str | None:
        return self._save_path

    @property
    def status(self) -> TrainingStatus:
        return self._status

    def info(self) -> TrainingInfo:
        with self._lock:
            return TrainingInfo(
                status=self._status,
                submission_time=self._submission_time,
                completion_time=self._completion_time,
                errors=[] if self._error is None else [_describe(self._error)],
                start_time=self._start_time,
            )

    def wait(self, timeout: float | None = None) -> TrainingStatus:
        """Block until the job is terminal or ``timeout`` seconds pass.

        Returns:
            The terminal status.

        Raises:
            TimeoutError: The job is not terminal after ``timeout`` seconds; it
                keeps running.
        """
        if not self._done.wait(timeout):
            raise TimeoutError(
                f"training {self._id!r} is still {self._status.value} after "
                f"{timeout} s; call wait() again, or cancel() it."
            )
        return self._status

    def cancel(self) -> None:
        """Mark the job CANCELED at once and ask its worker to stop.

        A terminal job keeps its status. The worker may take a moment to stop;
        its result is discarded and never saved.
        """
        if not self._finish(TrainingStatus.CANCELED, None):
            return
        log.info("Training %s canceled", self._id)
        self.cancel_event.set()
        self._cancel_job()
        self._run_callbacks()

    def load(self, timeout: float | None = None) -> ModuleBase:
        """Wait for the job and return the trained model.

        Raises:
            TimeoutError: The job is not terminal after ``timeout`` seconds.
            TrainingError: The job was canceled.
            Exception: The job's own failure, with its original type and message.
        """
        status = self.wait(timeout)
        if status is TrainingStatus.COMPLETED:
            return self._load_model()
        if status is TrainingStatus.CANCELED:
            from ..errors import TrainingError

            raise TrainingError(
                f"training {self._id!r} was canceled, so it has no trained model."
            )
        assert self._error is not None
        raise self._error

    # concurrent.futures-style helpers -------------------------------------------

    def done(self) -> bool:
        """Tell whether the job is terminal."""
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> ModuleBase:
        """Return the trained model; the same as :meth:`load`."""
        return self.load(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the job and return the error that ended it, or ``None``.

        Raises:
            TimeoutError: The job is not terminal after ``timeout`` seconds.
        """
        self.wait(timeout)
        return self._error

    def add_done_callback(self, callback: DoneCallback) -> None:
        """Call ``callback(future)`` once the job is terminal.

        A callback added to a terminal job runs at once in this thread; others
        run in the thread that finishes the job. An exception from a callback is
        logged and ignored.
        """
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        _call(callback, self)

    # For subclasses -------------------------------------------------------------

    @property
    def is_canceled(self) -> bool:
        """Whether :meth:`cancel` ended the job."""
        return self._status is TrainingStatus.CANCELED

    def _mark_running(self) -> bool:
        """Move a QUEUED job to RUNNING; return ``False`` when it is terminal."""
        with self._lock:
            if self._status.is_terminal:
                return False
            if self._status is TrainingStatus.QUEUED:
                self._start_time = _utcnow()
                self._status = TrainingStatus.RUNNING
            return True

    def _complete(self, commit: Callable[[], object] | None = None) -> bool:
        """Mark the job COMPLETED, running ``commit`` first under the job's lock.

        ``commit`` (such as renaming the saved model into place) runs only while
        the job is not terminal, and a :meth:`cancel` waits for it, so a
        cancelled job never commits. If ``commit`` raises, the job is ERRORED
        with that error.

        Returns:
            Whether this call completed the job.
        """
        with self._lock:
            if self._status.is_terminal:
                return False
            try:
                if commit is not None:
                    commit()
            except Exception as exc:
                self._set_terminal(TrainingStatus.ERRORED, exc)
            else:
                self._set_terminal(TrainingStatus.COMPLETED, None)
        self._run_callbacks()
        return self._status is TrainingStatus.COMPLETED

    def _fail(self, error: BaseException) -> bool:
        """Mark the job ERRORED with ``error``; return whether this call did it."""
        if not self._finish(TrainingStatus.ERRORED, error):
            return False
        self._run_callbacks()
        return True

    def _finish(self, status: TrainingStatus, error: BaseException | None) -> bool:
        with self._lock:
            if self._status.is_terminal:
                return False
            self._set_terminal(status, error)
            return True

    def _set_terminal(
        self, status: TrainingStatus, error: BaseException | None
    ) -> None:
        # The caller holds self._lock. Status is written last, so a reader that
        # observes a terminal status also observes its time and error.
        self._error = error
        self._completion_time = _utcnow()
        self._status = status
        self._done.set()

    def _run_callbacks(self) -> None:
        with self._lock:
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            _call(callback, self)

    def _cancel_job(self) -> None:
        """Ask the worker to stop; ``cancel_event`` is already set.

        The default does nothing more, which suits workers that check
        ``cancel_event``.
        """

    @abc.abstractmethod
    def _load_model(self) -> ModuleBase:
        """Return the trained model of a COMPLETED job."""


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _call(callback: DoneCallback, future: BaseModelFuture) -> None:
    try:
        callback(future)
    except Exception:
        log.exception("Done callback %r of training %s raised", callback, future.id)


# Cancellation seen from module code -------------------------------------------------

_job = threading.local()


def is_cancelled() -> bool:
    """Tell whether the training job running in this thread has been cancelled.

    A module's ``train`` can call it between steps and return early; the
    trainer discards whatever it returns. Outside a training job, and in
    threads that ``train`` starts itself, it returns ``False``.
    """
    event: threading.Event | None = getattr(_job, "cancel_event", None)
    return event is not None and event.is_set()


@contextmanager
def cancellation_scope(event: threading.Event) -> Iterator[None]:
    """Make :func:`is_cancelled` in this thread follow ``event`` while inside."""
    previous = getattr(_job, "cancel_event", None)
    _job.cancel_event = event
    try:
        yield
    finally:
        _job.cancel_event = previous


_CANCEL_PARAMETER = "cancel_event"
_accepts_cancel: dict[Callable[..., Any], bool] = {}


def run_train(
    module_class: type[ModuleBase],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    cancel_event: threading.Event,
) -> ModuleBase:
    """Call ``module_class.train`` inside a cancellation scope and check the result.

    ``cancel_event`` is passed as the ``cancel_event`` keyword argument when
    ``train`` declares that parameter.

    Raises:
        TypeError: ``train`` returned something that is not a ``ModuleBase``.
        Exception: Whatever ``train`` raised, unchanged.
    """
    from ..modules import ModuleBase

    train = module_class.train
    if _accepts_cancel_event(train):
        kwargs = {**kwargs, _CANCEL_PARAMETER: cancel_event}
    with cancellation_scope(cancel_event):
        model = train(*args, **kwargs)
    if not isinstance(model, ModuleBase):
        raise TypeError(
            f"{module_class.__qualname__}.train returned "
            f"{type(model).__name__} ({model!r:.60}); train must return the "
            "trained model, an instance of a ModuleBase subclass."
        )
    return model


def _accepts_cancel_event(train: Callable[..., Any]) -> bool:
    key = getattr(train, "__func__", train)
    accepts = _accepts_cancel.get(key)
    if accepts is None:
        try:
            parameters = inspect.signature(train).parameters
        except (TypeError, ValueError):
            parameters = {}  # type: ignore[assignment]
        accepts = _accepts_cancel[key] = _CANCEL_PARAMETER in parameters
    return accepts
