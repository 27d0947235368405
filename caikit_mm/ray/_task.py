"""Task mode of the RAY trainer: the module's ``train`` runs as one Ray task.

The task is a streaming generator: it yields a marker when it starts, which
moves the future from QUEUED to RUNNING, and then its outcome. A daemon thread
per job watches the task and records the outcome on the future.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Final

from ..errors import TrainingProcessError
from ..model_management._training_common import commit_folder, discard_folder
from ..model_management.training import BaseModelFuture, TrainingStatus
from ._cluster import import_ray, remote_cause

if TYPE_CHECKING:
    from ..modules import ModuleBase
    from .trainer import RayModelTrainer

log = logging.getLogger(__name__)

# How often the watcher wakes up while it waits, to force a cancel in time.
WATCH_INTERVAL_SECONDS: Final = 0.5


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
    discarded and never saved.
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
    ) -> None:
        super().__init__(training_id, save_path, trainer.instance_name)
        self.module_class = module_class
        self._trainer = trainer
        self._arguments: tuple[tuple[Any, ...], dict[str, Any]] | None = (args, kwargs)
        self._overwrite = overwrite
        self._grace_period = trainer.cancel_grace_period
        self._generator: Any = None
        self._force_at: float | None = None
        self._model: ModuleBase | None = None
        self._load_lock = threading.Lock()

    def start(self) -> None:
        """Submit the task and start the thread that watches it.

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
        try:
            self._generator = function.remote(
                self.module_class, args, kwargs, self.save_path
            )
        except TypeError as exc:
            raise TypeError(
                f"training {self.id!r} cannot send {self.module_class.__qualname__} "
                f"or its arguments to Ray ({exc}). Pass serializable values such "
                "as data, paths and models."
            ) from exc
        threading.Thread(
            target=self._watch, name=f"caikit-mm-ray-train-{self.id}", daemon=True
        ).start()

    # The watcher thread -----------------------------------------------------------

    def _watch(self) -> None:
        from ray.exceptions import RayError, RayTaskError, TaskCancelledError

        started = time.perf_counter()
        try:
            marker = self._next_value()
            log.debug("Training %s started in Ray: %s", self.id, marker)
            self._mark_running()
            outcome = self._next_value()
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

    def _next_value(self) -> Any:
        """Wait for the generator's next value, forcing a cancel after the grace."""
        ray = import_ray()
        while True:
            ready, _ = ray.wait([self._generator], timeout=WATCH_INTERVAL_SECONDS)
            if ready:
                return ray.get(next(self._generator))
            if self._force_at is not None and time.monotonic() >= self._force_at:
                self._force_at = None
                log.warning(
                    "Training %s still runs %.1f s after cancel; killing its worker",
                    self.id,
                    self._grace_period,
                )
                ray.cancel(self._generator, force=True)

    def _finish_with(self, outcome: Any) -> None:
        if self.save_path is None:
            self._model = outcome
            self._complete()
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
                self._model = self._trainer.manager.load(self.save_path, cache=False)
            return self._model
