"""Task mode of the RAY trainer: the module's ``train`` runs as one Ray task.

The task is a streaming generator: it yields a marker when it starts, which
moves the future from QUEUED to RUNNING, and then its outcome. A daemon thread
per running job watches the task and records the outcome on the future. The
watcher learns that a value is ready from ``ray.wait`` and usually fetches
only the outcome. It fetches the marker too when the outcome does not follow
at once, because only then can the first value be an error that ended the
task before ``train`` ran.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ..errors import TrainingProcessError
from ..model_management._training_common import commit_folder, discard_folder
from ..model_management.training import BaseModelFuture, TrainingStatus
from ._cluster import import_ray, remote_cause
from ._placement import WarningSchedule
from ._worker import delete_canceled_upload

if TYPE_CHECKING:
    from ..modules import ModuleBase
    from ._worker import UploadTarget
    from .trainer import RayModelTrainer

log = logging.getLogger(__name__)

# How often the watcher wakes up while it waits, to force a cancel in time.
WATCH_INTERVAL_SECONDS: Final = 0.5
# How long the watcher waits for the outcome after the first value, before it
# fetches that value. A short training then costs one fetch instead of two.
FAST_FINISH_SECONDS: Final = 0.005
# How long an idle watcher thread waits for another training before it exits.
WATCHER_IDLE_SECONDS: Final = 60.0


class WatcherThreads:
    """Daemon threads that watch training tasks, reused from one to the next.

    Starting a new thread for each training is a visible share of the
    overhead of a short training (see ``benchmarks/bench_ray.py``), so an idle
    watcher takes the next training instead. A watcher with nothing to do for
    ``idle_seconds`` exits.
    """

    def __init__(self, idle_seconds: float = WATCHER_IDLE_SECONDS) -> None:
        self._idle_seconds = idle_seconds
        self._jobs: queue.SimpleQueue[tuple[Callable[[], None], str]] = (
            queue.SimpleQueue()
        )
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, watch: Callable[[], None], name: str) -> None:
        """Run ``watch`` in an idle watcher, or in a new one if none is idle."""
        with self._lock:
            reuse = self._idle > 0
            if reuse:
                self._idle -= 1
        self._jobs.put((watch, name))
        if not reuse:
            threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                watch, name = self._jobs.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:
                        self._idle -= 1
                        return
                # A submit counted on this thread just now: its job is queued.
                continue
            threading.current_thread().name = name
            try:
                watch()
            except Exception:
                log.exception("Watcher %s failed", name)
            threading.current_thread().name = "caikit-mm-ray-watcher-idle"
            with self._lock:
                self._idle += 1


_WATCHERS: Final = WatcherThreads()


@functools.lru_cache(maxsize=1)
def _task_function() -> Any:
    ray = import_ray()
    from ._worker import train_in_task

    return ray.remote(num_returns="streaming")(train_in_task)


class RayTaskFuture(BaseModelFuture):
    """A training job that runs as a Ray task.

    Cancelling marks the job CANCELED at once and cancels the task, which
    raises ``KeyboardInterrupt`` in ``train``; a task still running after the
    trainer's ``cancel_grace_period`` is cancelled with ``force=True``, which
    kills its worker process. A result that arrives after a cancel is
    discarded and never saved, and a model uploaded to a URL by then is
    deleted.
    """

    def __init__(
        self,
        trainer: RayModelTrainer,
        module_class: type[ModuleBase],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        training_id: str,
        save_path: str | None,
        overwrite: bool,
        upload: UploadTarget | None = None,
    ) -> None:
        super().__init__(training_id, save_path, trainer.instance_name)
        self._upload = upload
        self.module_class = module_class
        self._trainer = trainer
        self._arguments: tuple[tuple[Any, ...], dict[str, Any]] | None = (args, kwargs)
        self._overwrite = overwrite
        self._grace_period = trainer.cancel_grace_period
        self._generator: Any = None
        self._force_at: float | None = None
        self._model: ModuleBase | None = None
        self._load_lock = threading.Lock()
        self._pending: WarningSchedule | None = None

    def start(self) -> None:
        """Submit the task and hand it to a watcher thread.

        Raises:
            TypeError: The module class or an argument cannot be serialized.
        """
        assert self._arguments is not None
        args, kwargs = self._arguments
        self._arguments = None
        options = {
            **self._trainer.cluster.ray_resources(),
            "name": f"caikit_mm.train:{self.id}",
            "max_retries": self._trainer.max_retries,
            "retry_exceptions": False,
        }
        if self._trainer.cluster.runtime_env:
            options["runtime_env"] = self._trainer.cluster.runtime_env
        function = _task_function().options(**options)
        self._pending = WarningSchedule(time.monotonic())
        try:
            self._generator = function.remote(
                self.module_class,
                args,
                kwargs,
                None if self._upload else self.save_path,
                self._upload,
            )
        except TypeError as exc:
            raise TypeError(
                f"training {self.id!r} cannot send {self.module_class.__qualname__} "
                f"or its arguments to Ray ({exc}). Pass serializable values such "
                "as data, paths and models."
            ) from exc
        _WATCHERS.submit(self._watch, f"caikit-mm-ray-train-{self.id}")

    # The watcher thread -----------------------------------------------------------

    def _watch(self) -> None:
        from ray.exceptions import RayError, RayTaskError, TaskCancelledError

        started = time.perf_counter()
        try:
            outcome = self._wait_for_outcome()
        except RayTaskError as exc:
            cause = remote_cause(exc)
            if isinstance(cause, TaskCancelledError):
                self._canceled_outside()
            else:
                self._fail(self._task_error(exc, cause))
        except TaskCancelledError:
            self._canceled_outside()
        except RayError as exc:
            self._fail(
                TrainingProcessError(
                    f"training {self.id!r} failed: its Ray task or worker died "
                    f"({type(exc).__name__}: {exc}). max_retries of trainer "
                    f"{self.trainer_name!r} is {self._trainer.max_retries}."
                )
            )
        except Exception as exc:  # noqa: BLE001 - any failure ends the job
            self._fail(exc)
        else:
            self._finish_with(outcome)
        self._log_outcome(started)

    def _wait_for_outcome(self) -> Any:
        """Wait for the task's outcome and mark the job RUNNING once it starts.

        The task yields the start marker and then the outcome; a task that
        failed before ``train`` ran yields only its error. So a second value
        proves that the first was the marker, and the marker is fetched only
        when the second value is not there within ``FAST_FINISH_SECONDS``.

        Raises:
            RayError: The task failed, was cancelled or its worker died.
            TrainingProcessError: The task ended without an outcome.
        """
        ray = import_ray()
        self._wait_for_next_value(self._pending)
        first = next(self._generator)
        ready, _ = ray.wait([self._generator], timeout=FAST_FINISH_SECONDS)
        if not ready:
            ray.get(first)  # raises the error of a task that never started
            self._mark_started()
            self._wait_for_next_value()
        try:
            outcome = next(self._generator)
        except StopIteration:
            marker = ray.get(first)  # raises the error of a task that never started
            raise TrainingProcessError(
                f"training {self.id!r} ended its Ray task after yielding {marker!r} "
                "and no outcome."
            ) from None
        self._mark_started()
        return ray.get(outcome)

    def _mark_started(self) -> None:
        """Mark the job RUNNING, and log the wait if it was warned about."""
        pending, self._pending = self._pending, None
        if self._mark_running() and pending is not None and pending.warned:
            log.info(
                "Training %s started on Ray after %.1f s",
                self.id,
                time.monotonic() - pending.since,
            )

    def _wait_for_next_value(self, pending: WarningSchedule | None = None) -> None:
        """Wait until the generator's next value is ready, or the task ended.

        With ``pending``, the task has not started yet, and a warning that
        explains the wait is logged on its schedule until the task starts or the job
        is cancelled. A cancelled task still running after the grace period
        is cancelled again with ``force=True``.
        """
        ray = import_ray()
        while True:
            ready, _ = ray.wait([self._generator], timeout=WATCH_INTERVAL_SECONDS)
            if ready:
                return
            if pending is not None and not self.done():
                if pending.due(time.monotonic()):
                    log.warning("%s", self._pending_message(ray, pending.since))
            if self._force_at is not None and time.monotonic() >= self._force_at:
                self._force_at = None
                log.warning(
                    "Training %s still runs %.1f s after cancel; killing its worker",
                    self.id,
                    self._grace_period,
                )
                ray.cancel(self._generator, force=True)

    def _pending_message(self, ray: Any, since: float) -> str:
        from ._placement import describe_resources, requested_resources

        requested = requested_resources(self._trainer.cluster.ray_resources())
        return (
            f"Training {self.id} of {self.module_class.__qualname__} has not "
            f"started after {time.monotonic() - since:.0f} s: Ray has not "
            f"scheduled its task. {describe_resources(ray, requested, 'task')} "
            "The training stays QUEUED until the task starts. Cancel it, or "
            f"change num_cpus, num_gpus, memory or resources of "
            f"{self._trainer.cluster.owner}."
        )

    def _finish_with(self, outcome: Any) -> None:
        if self.save_path is None:
            self._model = outcome
            self._complete()
            return
        if self._upload is not None:
            if not self._complete():
                delete_canceled_upload(self.id, self._upload)
            return
        temp = outcome["temp_path"]
        save_path = self.save_path

        def commit() -> None:
            try:
                commit_folder(temp, save_path, self._overwrite)
            except BaseException:
                discard_folder(temp)
                raise

        if not self._complete(commit):
            discard_folder(temp)

    def _canceled_outside(self) -> None:
        # cancel() already made the job CANCELED, unless someone cancelled the
        # Ray task directly (for example from the dashboard).
        if self._finish(TrainingStatus.CANCELED, None):
            self._run_callbacks()

    def _task_error(
        self, error: BaseException, cause: BaseException | None
    ) -> BaseException:
        from ray.exceptions import RayError

        traceback_text = str(getattr(error, "traceback_str", "") or error)
        if cause is None or isinstance(cause, RayError):
            return TrainingProcessError(
                f"training {self.id!r} failed in its Ray task, and the error could "
                f"not be sent back as it is: {error}",
                child_traceback=traceback_text,
            )
        if hasattr(cause, "add_note"):
            cause.add_note(f"Traceback in the Ray worker:\n{traceback_text}")
        return cause

    def _log_outcome(self, started: float) -> None:
        status = self.status
        if status is TrainingStatus.COMPLETED:
            log.info(
                "Training %s of %s completed on Ray in %.3f s%s",
                self.id,
                self.module_class.__qualname__,
                time.perf_counter() - started,
                f", saved to {self.save_path}" if self.save_path else "",
            )
        elif status is TrainingStatus.ERRORED:
            log.warning("Training %s failed on Ray: %s", self.id, self.info().errors[0])

    # Cancel and load --------------------------------------------------------------

    def _cancel_job(self) -> None:
        if self._generator is None:
            return
        ray = import_ray()
        self._force_at = time.monotonic() + self._grace_period
        ray.cancel(self._generator, force=False)

    def _load_model(self) -> ModuleBase:
        if self.save_path is None:
            assert self._model is not None
            return self._model
        with self._load_lock:
            if self._model is None:
                finder = self._trainer.storage_finder if self._upload else None
                self._model = self._trainer.manager.load(
                    self.save_path, finder=finder, cache=False
                )
            return self._model
