"""The LOCAL trainer: train modules on this machine, in a thread or a subprocess."""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol

from ..errors import TrainingProcessError
from . import _subprocess_worker as worker
from ._training_common import (
    TrainingJobs,
    build_save_path,
    check_local_save_folder,
    check_save_path,
    check_training_id,
    commit_folder,
    discard_folder,
    make_temp_folder,
    new_training_id,
    parse_duration,
    unknown_training,
)
from .base import ModelTrainer, ValidationContext
from .training import BaseModelFuture, TrainingStatus, run_train

if TYPE_CHECKING:
    from ..manager import ModelManager
    from ..modules import ModuleBase

log = logging.getLogger(__name__)

CONFIG_KEYS: Final = (
    "use_subprocess",
    "subprocess_start_method",
    "retention_duration",
    "cancel_grace_period",
)
DEFAULT_START_METHOD: Final = "spawn"
DEFAULT_GRACE_PERIOD: Final = 5.0  # seconds


class LocalModelTrainer(ModelTrainer):
    """Train modules on this machine, each job in a thread or a child process.

    Config:
        use_subprocess: Run each job in a child process instead of a thread
            (default ``false``). A child can be killed, and its memory is
            returned when it ends; it needs a ``save_path``.
        subprocess_start_method: ``spawn`` (default), ``fork`` or
            ``forkserver``, as in :mod:`multiprocessing`. ``spawn`` starts a
            new interpreter that imports only the module's own code.
        retention_duration: How long finished futures stay listed, such as
            ``7d`` or ``1d12h3m0.5s``; empty keeps them forever.
        cancel_grace_period: How long a cancelled child process may take to
            stop after SIGTERM before it is killed (default ``5s``).
    """

    name: ClassVar[str] = "LOCAL"

    def __init__(self, config: Mapping[str, Any], instance_name: str) -> None:
        super().__init__(config, instance_name)
        self.use_subprocess = bool(config.get("use_subprocess", False))
        self.start_method = str(
            config.get("subprocess_start_method") or DEFAULT_START_METHOD
        )
        retention = config.get("retention_duration")
        self.retention = None if retention in (None, "") else parse_duration(retention)
        grace = config.get("cancel_grace_period")
        self.grace_period = (
            DEFAULT_GRACE_PERIOD
            if grace in (None, "")
            else parse_duration(grace).total_seconds()
        )
        self._jobs: TrainingJobs[LocalModelFuture] = TrainingJobs(
            instance_name, self.retention
        )

    @classmethod
    def validate_config(
        cls, config: Mapping[str, Any], context: ValidationContext
    ) -> None:
        unknown = sorted(set(config) - set(CONFIG_KEYS))
        if unknown:
            raise context.error(
                f"unknown key(s) {', '.join(map(repr, unknown))} for a LOCAL "
                f"trainer; known keys: {', '.join(CONFIG_KEYS)}. Check the spelling.",
                str(unknown[0]),
            )
        use_subprocess = config.get("use_subprocess", False)
        if not isinstance(use_subprocess, bool):
            raise context.error(
                f"use_subprocess must be true or false, got {use_subprocess!r}.",
                "use_subprocess",
            )
        _validate_start_method(config.get("subprocess_start_method"), context)
        for key in ("retention_duration", "cancel_grace_period"):
            value = config.get(key)
            if value in (None, ""):
                continue
            try:
                parse_duration(value)
            except ValueError as exc:
                raise context.error(str(exc), key) from None

    # ModelTrainer -----------------------------------------------------------------

    def train(
        self,
        module_class: type[ModuleBase],
        *args: Any,
        save_path: str | os.PathLike[str] | None = None,
        save_with_id: bool = False,
        model_name: str | None = None,
        training_id: str | None = None,
        overwrite: bool = False,
        **kwargs: Any,
    ) -> LocalModelFuture:
        """Start training ``module_class`` and return its future at once.

        Args:
            module_class: The module whose ``train`` runs.
            *args: Positional arguments of ``module_class.train``.
            save_path: Base folder of the saved model; ``None`` keeps the model
                in memory only (thread mode).
            save_with_id: Save under ``save_path/<training id>``.
            model_name: Name of the model's own folder, last in the path.
            training_id: The job's id; generated as
                ``<trainer name>-<uuid4 hex>`` when ``None``.
            overwrite: Replace a model that already exists at the final path
                once the new one is saved. Without it an existing non-empty
                folder is an error, raised before training starts.
            **kwargs: Keyword arguments of ``module_class.train``.

        Raises:
            ValueError: Subprocess mode without ``save_path``, or an invalid
                ``training_id``, ``save_path`` or ``model_name``, or a folder
                name longer than the file system allows.
            PermissionError: This process cannot write to the nearest existing
                folder of the save path.
            SavePathExistsError: The final path contains something and
                ``overwrite`` is false, or another unfinished job in this
                process saves to it (or to a folder inside or around it),
                whatever ``overwrite`` says.
            TrainingIdInUseError: ``training_id`` belongs to a job that is not
                terminal.
            TypeError: In subprocess mode, the module class or an argument
                cannot be sent to the child process.
        """
        if training_id is None:
            training_id = new_training_id(self.instance_name)
        else:
            check_training_id(training_id)
        final_path = build_save_path(save_path, training_id, save_with_id, model_name)
        if final_path is not None:
            check_save_path(final_path, overwrite)
            check_local_save_folder(final_path)
        if self.use_subprocess:
            future: LocalModelFuture = self._subprocess_future(
                module_class, args, kwargs, training_id, final_path, overwrite
            )
        else:
            future = _ThreadFuture(
                self, module_class, args, kwargs, training_id, final_path, overwrite
            )
        self._jobs.add(future)
        log.debug(
            "Starting training %s of %s on trainer %r (%s)",
            training_id,
            module_class.__qualname__,
            self.instance_name,
            f"subprocess, {self.start_method}" if self.use_subprocess else "thread",
        )
        try:
            future.start()
        except BaseException as exc:
            # A job that never started must not keep its id and save path.
            future._fail(exc)
            raise
        return future

    def get_model_future(self, training_id: str) -> LocalModelFuture:
        """Return the future of a job this trainer started and still lists.

        Raises:
            TrainingNotFoundError: No such job, or it was forgotten after
                ``retention_duration``.
        """
        future = self._jobs.get(training_id)
        if future is None:
            raise unknown_training(training_id, [self.instance_name])
        return future

    def list_futures(self) -> list[LocalModelFuture]:
        """List the futures this trainer still holds, running and finished."""
        return list(self._jobs)

    def _subprocess_future(
        self,
        module_class: type[ModuleBase],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        training_id: str,
        final_path: str | None,
        overwrite: bool,
    ) -> LocalModelFuture:
        if final_path is None:
            raise ValueError(
                f"trainer {self.instance_name!r} trains in a subprocess "
                "(use_subprocess: true), which returns the model by saving and "
                "loading it, so it needs a save_path. Pass save_path, or use a "
                "trainer with use_subprocess: false."
            )
        return _SubprocessFuture(
            self, module_class, args, kwargs, training_id, final_path, overwrite
        )


def _validate_start_method(method: object, context: ValidationContext) -> None:
    if method in (None, ""):
        return
    available = multiprocessing.get_all_start_methods()
    if method not in available:
        raise context.error(
            f"subprocess_start_method {method!r} is not available on this platform; "
            f"available: {', '.join(available)}. spawn is the safest choice.",
            "subprocess_start_method",
        )


class LocalModelFuture(BaseModelFuture):
    """A training job of the LOCAL trainer, in a thread or a child process.

    Both kinds run their job from one daemon thread each, so the interpreter
    does not wait for unfinished trainings at exit: call :meth:`wait` or
    :meth:`load` for the ones you need.
    """

    def __init__(
        self,
        trainer: LocalModelTrainer,
        module_class: type[ModuleBase],
        training_id: str,
        save_path: str | None,
        overwrite: bool,
    ) -> None:
        super().__init__(training_id, save_path, trainer.instance_name)
        self.module_class = module_class
        self._overwrite = overwrite
        self._worker: threading.Thread | None = None
        self._model: ModuleBase | None = None

    def start(self) -> None:
        """Start the job's thread; the trainer calls it once."""
        self._worker = threading.Thread(
            target=self._run, name=f"caikit-mm-train-{self.id}", daemon=True
        )
        self._worker.start()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the job's worker, thread or process, has exited.

        A cancelled job is CANCELED at once, but its worker may take a moment
        to stop.

        Returns:
            Whether the worker has stopped.
        """
        if self._worker is None:
            return True
        self._worker.join(timeout)
        return not self._worker.is_alive()

    @property
    def pid(self) -> int | None:
        """The child process id in subprocess mode, else ``None``."""
        return None

    def _run(self) -> None:
        raise NotImplementedError

    def _commit(self, temp: str) -> None:
        """Rename the model saved in ``temp`` into place and complete the job.

        A job cancelled meanwhile, or a commit that fails, leaves nothing at
        ``save_path``, and ``temp`` is deleted.
        """
        assert self.save_path is not None
        save_path = self.save_path

        def commit() -> None:
            commit_folder(temp, save_path, self._overwrite)

        if not self._complete(commit):
            discard_folder(temp)

    def _log_outcome(self, started: float) -> None:
        if self.status is TrainingStatus.COMPLETED:
            log.info(
                "Training %s of %s completed in %.3f s%s",
                self.id,
                self.module_class.__qualname__,
                time.perf_counter() - started,
                f", saved to {self.save_path}" if self.save_path else "",
            )
        elif self.status is TrainingStatus.ERRORED:
            log.warning("Training %s failed: %s", self.id, self.info().errors[0])


class _ThreadFuture(LocalModelFuture):
    """A job that runs the module's ``train`` in a thread of this process.

    A thread cannot be stopped from outside, so cancelling is cooperative: the
    job is CANCELED at once, :func:`~.training.is_cancelled` and the
    ``cancel_event`` turn true, and whatever ``train`` returns later is
    discarded and not saved.
    """

    def __init__(
        self,
        trainer: LocalModelTrainer,
        module_class: type[ModuleBase],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        training_id: str,
        save_path: str | None,
        overwrite: bool,
    ) -> None:
        super().__init__(trainer, module_class, training_id, save_path, overwrite)
        self._args = args
        self._kwargs = kwargs

    def _run(self) -> None:
        if not self._mark_running():
            return
        started = time.perf_counter()
        try:
            self._train_and_save()
        except BaseException as exc:  # noqa: BLE001 - any failure ends the job
            self._fail(exc)
        self._log_outcome(started)

    def _train_and_save(self) -> None:
        args, kwargs = self._args, self._kwargs
        self._args, self._kwargs = (), {}
        model = run_train(self.module_class, args, kwargs, self.cancel_event)
        if self.is_canceled:
            return
        self._model = model
        if self.save_path is None:
            self._complete()
            return
        temp = make_temp_folder(self.save_path)
        try:
            model.save(temp)
        except BaseException:
            discard_folder(temp)
            raise
        self._commit(temp)

    def _load_model(self) -> ModuleBase:
        assert self._model is not None
        return self._model


class _SubprocessFuture(LocalModelFuture):
    """A job that runs the module's ``train`` in a child process.

    The module class and the arguments are pickled when the job is submitted;
    models among the arguments are saved into the job's work folder and loaded
    again in the child. The child saves into a temporary folder beside
    ``save_path``, this side renames it into place, and :meth:`load` loads the
    model from ``save_path`` through the manager's default finder and
    initializer. Cancelling sends SIGTERM, then SIGKILL after the trainer's
    ``cancel_grace_period``.
    """

    def __init__(
        self,
        trainer: LocalModelTrainer,
        module_class: type[ModuleBase],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        training_id: str,
        save_path: str,
        overwrite: bool,
    ) -> None:
        super().__init__(trainer, module_class, training_id, save_path, overwrite)
        self._start_method = trainer.start_method
        self._grace_period = trainer.grace_period
        self._manager: ModelManager = trainer.manager
        self._model_args: list[ModuleBase] = []
        self._arguments = self._pickle_arguments(args, kwargs)
        self._main = self._main_reference(args, kwargs)
        self._child: _Child | None = None
        self._temp: str | None = None
        self._load_lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        child = self._child
        return None if child is None else child.pid

    # Submission, in the caller's thread -------------------------------------------

    def _pickle_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        from ..modules import ModuleBase

        def stand_in(value: Any) -> Any:
            if isinstance(value, ModuleBase):
                self._model_args.append(value)
                return worker.ModelArg(str(len(self._model_args) - 1))
            return value

        arguments = worker.map_nested((args, kwargs), stand_in)
        try:
            return pickle.dumps(arguments, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise TypeError(
                f"the arguments of training {self.id!r} cannot be pickled for the "
                f"training subprocess ({type(exc).__name__}: {exc}). Pass picklable "
                "values such as data, paths and models, or use a trainer without "
                "use_subprocess."
            ) from exc

    def _main_reference(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[str, str] | None:
        """Say how a spawned child imports ``__main__``, when the job needs it.

        multiprocessing's ``fork`` and ``forkserver`` take care of ``__main__``
        themselves; a spawned child runs it only when the module class or an
        argument is defined there.
        """
        cls = self.module_class
        if cls.__module__ != "__main__":
            _check_importable(cls)
        if self._start_method != "spawn":
            return None
        if cls.__module__ != "__main__" and not _refers_to_main(
            self._arguments, (args, kwargs)
        ):
            return None
        main = sys.modules["__main__"]
        name = getattr(getattr(main, "__spec__", None), "name", "") or ""
        path = getattr(main, "__file__", None)
        if name and not name.endswith("__main__"):
            return ("module", name)
        if not name and path:
            return ("path", os.path.abspath(path))
        raise TypeError(
            f"training {self.id!r} uses {cls.__qualname__} or arguments defined in "
            "__main__, which a spawned training process cannot import here (an "
            "interactive session or a package's __main__). Move the code into an "
            "importable module, or set subprocess_start_method: fork."
        )

    # The job, in its thread --------------------------------------------------------

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            self._run_child()
        except BaseException as exc:  # noqa: BLE001 - any failure ends the job
            discard_folder(self._temp)
            self._fail(exc)
        self._log_outcome(started)

    def _run_child(self) -> None:
        # Every temporary folder is deleted before the job turns COMPLETED or
        # ERRORED. A cancelled job turns CANCELED at once, and this thread
        # deletes its folders once the child has stopped; _finish_canceled_jobs
        # waits for that when the interpreter exits.
        work_folder = tempfile.mkdtemp(prefix="caikit-mm-train-")
        try:
            self._write_job(work_folder)
            child = self._launch(work_folder)
            if child is None:
                discard_folder(self._temp)
                return
            exit_code = child.wait()
            result = _read_result(work_folder)
        finally:
            discard_folder(work_folder)
        if self.is_canceled:
            discard_folder(self._temp)
        elif result is not None and result["ok"] and exit_code == 0:
            assert self._temp is not None
            self._commit(self._temp)
        else:
            discard_folder(self._temp)
            if result is not None and not result["ok"]:
                self._fail(_child_error(self.id, result))
            else:
                self._fail(_exit_error(self.id, child.pid, exit_code))

    def _write_job(self, work_folder: str) -> None:
        models_folder = os.path.join(work_folder, worker.MODEL_ARGS_FOLDER)
        for index, model in enumerate(self._model_args):
            model.save(os.path.join(models_folder, str(index)))
        has_model_args = bool(self._model_args)
        self._model_args = []
        assert self.save_path is not None
        self._temp = make_temp_folder(self.save_path)
        job = worker.Job(
            training_id=self.id,
            module=(self.module_class.__module__, self.module_class.__qualname__),
            arguments=self._arguments,
            save_folder=self._temp,
            main=self._main,
            model_args_folder=models_folder if has_model_args else None,
            manager_config=self._manager.config.data if has_model_args else None,
            log_level=_child_log_level(),
        )
        with open(os.path.join(work_folder, worker.JOB_FILE), "wb") as stream:
            pickle.dump(job, stream, protocol=pickle.HIGHEST_PROTOCOL)

    def _launch(self, work_folder: str) -> _Child | None:
        # RUNNING is set before the child starts, so a reader who observes the
        # child's first output or side effect also reads RUNNING.
        if not self._mark_running():
            return None
        child: _Child
        if self._start_method == "spawn":
            child = _SpawnedChild(work_folder)
        else:
            child = _MultiprocessingChild(work_folder, self._start_method)
        with self._lock:
            self._child = child
            canceled = self._status.is_terminal
        if canceled:
            # cancel() ran before the child was known, so it could not stop it.
            self._stop(child)
        else:
            log.debug("Training %s runs in process %s", self.id, child.pid)
        return child

    # Cancel and load ----------------------------------------------------------------

    def _cancel_job(self) -> None:
        with self._lock:
            child = self._child
        _CANCELED_JOBS.add(self)
        if child is not None:
            self._stop(child)

    def _stop(self, child: _Child) -> None:
        if child.poll() is not None:
            return
        child.terminate()
        timer = threading.Timer(self._grace_period, self._kill_after_grace, (child,))
        timer.daemon = True
        timer.start()

    def _kill_after_grace(self, child: _Child) -> None:
        if child.poll() is None:
            log.warning(
                "Training %s: process %s still runs %.1f s after SIGTERM; killing it",
                self.id,
                child.pid,
                self._grace_period,
            )
            child.kill()

    def _load_model(self) -> ModuleBase:
        with self._load_lock:
            if self._model is None:
                self._model = self._manager.load(self.save_path, cache=False)
            return self._model


# Cancelled subprocess jobs whose thread may still be stopping the child and
# deleting the temporary folder. The status turns CANCELED before that ends,
# so wait() can return first, and an exit right after it would kill the
# daemon thread and leave the folder behind.
_CANCELED_JOBS: weakref.WeakSet[_SubprocessFuture] = weakref.WeakSet()
_EXIT_MARGIN: Final = 5.0  # seconds to wait at exit beyond the grace period


@atexit.register
def _finish_canceled_jobs() -> None:
    for future in list(_CANCELED_JOBS):
        if not future.join(future._grace_period + _EXIT_MARGIN):
            log.warning(
                "Training %s: its process did not stop at exit; its temporary "
                "folder beside %s may remain",
                future.id,
                future.save_path,
            )


def _check_importable(cls: type[Any]) -> None:
    try:
        found = worker.resolve(cls.__module__, cls.__qualname__)
    except Exception:
        found = None
    if found is not cls:
        raise TypeError(
            f"{cls.__module__}.{cls.__qualname__} cannot be imported by that name, "
            "so the training subprocess cannot find it. Define the module class at "
            "the top level of an importable Python module."
        )


class _MainFinder(pickle.Pickler):
    """Pickles to nowhere, noting whether any object comes from ``__main__``."""

    def __init__(self) -> None:
        super().__init__(_NullWriter(), protocol=pickle.HIGHEST_PROTOCOL)
        self.found = False

    def persistent_id(self, obj: Any) -> None:
        owner = obj if isinstance(obj, type) or callable(obj) else type(obj)
        if getattr(owner, "__module__", None) == "__main__":
            self.found = True
        return None


class _NullWriter:
    def write(self, data: bytes) -> int:
        return len(data)


def _refers_to_main(pickled: bytes, arguments: Any) -> bool:
    # The substring test is cheap and rules out almost every job. The second
    # pass separates a class from __main__ from a string containing "__main__".
    if b"__main__" not in pickled:
        return False
    finder = _MainFinder()
    finder.dump(arguments)
    return finder.found


def _child_log_level() -> int | None:
    root = logging.getLogger()
    return root.getEffectiveLevel() if root.handlers else None


def _read_result(work_folder: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(work_folder, worker.RESULT_FILE), "rb") as stream:
            result: dict[str, Any] = pickle.load(stream)
    except FileNotFoundError:
        return None
    return result


def _child_error(training_id: str, result: dict[str, Any]) -> BaseException:
    """Rebuild the child's exception, or describe it when it cannot be rebuilt."""
    note = f"Traceback in the training subprocess:\n{result['traceback']}"
    error: BaseException | None = None
    if result["pickled"] is not None:
        try:
            error = pickle.loads(result["pickled"])
        except Exception:
            log.debug("Cannot unpickle the error of training %s", training_id)
    if error is None:
        error = TrainingProcessError(
            f"training {training_id!r} failed in its subprocess with "
            f"{result['type']}: {result['message']} (the exception could not be "
            "sent back as it is; its traceback is attached)",
            original_type=result["type"],
            child_traceback=result["traceback"],
        )
    if hasattr(error, "add_note"):
        error.add_note(note)
    return error


def _exit_error(
    training_id: str, pid: int | None, exit_code: int
) -> TrainingProcessError:
    """Describe a child that ended without reporting a result."""
    if exit_code < 0:
        name = _signal_name(-exit_code)
        hint = (
            " SIGKILL is also what the kernel sends when memory runs out."
            if -exit_code == signal.SIGKILL
            else ""
        )
        return TrainingProcessError(
            f"training {training_id!r} failed: its process {pid} was killed by "
            f"signal {name} before it reported a result.{hint}",
            exit_code=exit_code,
            signal_name=name,
        )
    detail = ""
    if exit_code > 128:
        signal_name = _signal_name(exit_code - 128)
        detail = f" (exit codes above 128 usually mean signal {signal_name})"
    return TrainingProcessError(
        f"training {training_id!r} failed: its process {pid} exited with code "
        f"{exit_code}{detail} without reporting a result. The module may have "
        "called sys.exit() or os._exit(); see the process's output above.",
        exit_code=exit_code,
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class _Child(Protocol):
    """A started child process, whichever start method made it."""

    pid: int | None

    def wait(self) -> int: ...

    def poll(self) -> int | None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


class _SpawnedChild:
    """A new interpreter that runs the worker's bootstrap, in its own session.

    Its own session means that a Ctrl-C in the terminal reaches only the
    parent, which then cancels the job, and that signals reach the whole
    process group, including processes the training started. The pipe's
    write end stays here, so the child sees end of file if this process dies.
    """

    def __init__(self, work_folder: str) -> None:
        read_fd, self._write_fd = os.pipe()
        command = [
            sys.executable,
            "-c",
            worker.BOOTSTRAP,
            work_folder,
            str(read_fd),
            *sys.path,
        ]
        try:
            self._popen = subprocess.Popen(
                command, pass_fds=(read_fd,), start_new_session=True
            )
        except BaseException:
            os.close(self._write_fd)
            raise
        finally:
            os.close(read_fd)
        self.pid: int | None = self._popen.pid

    def wait(self) -> int:
        try:
            return self._popen.wait()
        finally:
            os.close(self._write_fd)

    def poll(self) -> int | None:
        return self._popen.poll()

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        # returncode is set only once the child is reaped, so until then its
        # pid, which is also its process group id, cannot have been reused.
        if self._popen.returncode is None:
            try:
                os.killpg(self._popen.pid, signum)
            except ProcessLookupError:
                pass


class _MultiprocessingChild:
    """A child made by :mod:`multiprocessing` with ``fork`` or ``forkserver``."""

    def __init__(self, work_folder: str, start_method: str) -> None:
        context = multiprocessing.get_context(start_method)
        self._process = context.Process(  # type: ignore[attr-defined]
            target=worker.run_job_and_exit, args=(work_folder,), name="caikit-mm-train"
        )
        self._process.start()
        self.pid: int | None = self._process.pid

    def wait(self) -> int:
        self._process.join()
        exit_code: int = self._process.exitcode
        return exit_code

    def poll(self) -> int | None:
        exit_code: int | None = self._process.exitcode
        return exit_code

    def terminate(self) -> None:
        if self._process.exitcode is None:
            self._process.terminate()

    def kill(self) -> None:
        if self._process.exitcode is None:
            self._process.kill()
