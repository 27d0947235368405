"""The child side of the LOCAL trainer's subprocess mode.

The parent writes a :class:`Job` to ``job.pickle`` in a work folder and starts a
process that calls :func:`run_job` with that folder. The child imports the
module's own Python module and what the job's arguments need, trains, saves the
model into the temporary folder the parent created beside ``save_path``, and
writes ``result.pickle``. The parent renames the folder into place.

With the ``spawn`` start method the process is a new interpreter started by
:data:`BOOTSTRAP`, which imports this file and nothing of the parent's main
script unless the job needs it. This file imports only the standard library at
the top, so the child starts fast.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Final

JOB_FILE: Final = "job.pickle"
RESULT_FILE: Final = "result.pickle"
MODEL_ARGS_FOLDER: Final = "model-args"

# Exit status when the child stops on SIGTERM, as a shell reports it.
SIGTERM_EXIT: Final = 128 + signal.SIGTERM
# Exit status when the parent process disappeared while the child trained.
ORPHAN_EXIT: Final = 75

# The program a spawned child runs: argv is [work folder, parent pipe fd, the
# parent's sys.path...]. It sets sys.path before importing caikit_mm, so the
# child finds the same code as the parent.
BOOTSTRAP: Final = (
    "import sys\n"
    "sys.path[:] = sys.argv[3:]\n"
    "from caikit_mm.model_management._subprocess_worker import run_job\n"
    "sys.exit(run_job(sys.argv[1], int(sys.argv[2])))\n"
)


@dataclass
class ModelArg:
    """Stands in for a model passed to ``train``; the child loads it again.

    Attributes:
        name: The model's subfolder in the job's model-arguments folder.
    """

    name: str


@dataclass
class Job:
    """Everything the child needs, written by the parent as ``job.pickle``.

    Attributes:
        training_id: The job's id, for messages.
        module: Import path of the module class: Python module name and
            qualified name.
        arguments: Pickled ``(args, kwargs)``, with :class:`ModelArg` in place
            of models.
        save_folder: Empty folder to save the trained model into.
        main: How to import the parent's ``__main__`` when the job needs it:
            ``("path", file)``, ``("module", name)`` or ``None``.
        model_args_folder: Folder of the models passed as arguments, each in
            the subfolder its :class:`ModelArg` names; ``None`` when there are
            none.
        manager_config: The parent manager's configuration, to load those
            models with the same finder and initializer.
        log_level: Level for ``logging.basicConfig`` in the child, or ``None``
            to leave logging unconfigured.
    """

    training_id: str
    module: tuple[str, str]
    arguments: bytes
    save_folder: str
    main: tuple[str, str] | None = None
    model_args_folder: str | None = None
    manager_config: dict[str, Any] | None = None
    log_level: int | None = None


def run_job_and_exit(work_folder: str) -> None:
    """Run the job and exit with its status: the target of a multiprocessing child."""
    sys.exit(run_job(work_folder))


def run_job(work_folder: str, parent_fd: int | None = None) -> int:
    """Run the job in ``work_folder`` in this process and return the exit status.

    Args:
        work_folder: Folder holding ``job.pickle``; ``result.pickle`` is
            written there.
        parent_fd: Read end of a pipe whose write end only the parent holds;
            end of file on it means the parent is gone. ``None`` uses
            ``multiprocessing.parent_process()``.
    """
    cancel_event = threading.Event()
    _watch_parent(parent_fd)
    _stop_on_sigterm(cancel_event)
    with open(os.path.join(work_folder, JOB_FILE), "rb") as stream:
        job: Job = pickle.load(stream)
    if job.log_level is not None:
        logging.basicConfig(
            level=job.log_level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    try:
        _train_and_save(job, cancel_event)
    except Exception as exc:
        _write_result(work_folder, _error_result(exc))
        return 1
    _write_result(work_folder, {"ok": True})
    return 0


def _train_and_save(job: Job, cancel_event: threading.Event) -> None:
    from .training import run_train

    if job.main is not None:
        _import_main(*job.main)
    module_class = resolve(*job.module)
    args, kwargs = pickle.loads(job.arguments)
    if job.model_args_folder is not None:
        args, kwargs = _load_model_args(job, args, kwargs)
    model = run_train(module_class, args, kwargs, cancel_event)
    model.save(job.save_folder)


def resolve(module_name: str, qualname: str) -> Any:
    """Import ``module_name`` and return the object at ``qualname`` inside it."""
    import importlib

    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def _import_main(kind: str, where: str) -> None:
    # The same fix-up multiprocessing's spawn does: run the parent's main script
    # as __mp_main__, so references to __main__ find its classes.
    import runpy
    import types

    if kind == "module":
        namespace = runpy.run_module(where, run_name="__mp_main__", alter_sys=True)
    else:
        namespace = runpy.run_path(where, run_name="__mp_main__")
    main = types.ModuleType("__mp_main__")
    main.__dict__.update(namespace)
    sys.modules["__main__"] = sys.modules["__mp_main__"] = main


def _load_model_args(
    job: Job, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    from ..manager import ModelManager

    assert job.model_args_folder is not None
    folder = job.model_args_folder
    manager = ModelManager(config=job.manager_config)

    def load(value: Any) -> Any:
        if isinstance(value, ModelArg):
            return manager.load(os.path.join(folder, value.name), cache=False)
        return value

    return map_nested(args, load), map_nested(kwargs, load)


def map_nested(value: Any, function: Any) -> Any:
    """Apply ``function`` to every item inside lists, tuples and dict values.

    Containers are rebuilt with the same type (named tuples included), and
    dict keys are kept. Anything else is passed to ``function`` as a whole.
    """
    if isinstance(value, list):
        return [map_nested(item, function) for item in value]
    if isinstance(value, tuple):
        items = [map_nested(item, function) for item in value]
        if hasattr(type(value), "_fields"):
            return type(value)(*items)
        return type(value)(items) if type(value) is not tuple else tuple(items)
    if isinstance(value, dict):
        mapped = {key: map_nested(item, function) for key, item in value.items()}
        return mapped if type(value) is dict else _rebuild_dict(value, mapped)
    return function(value)


def _rebuild_dict(original: dict[Any, Any], mapped: dict[Any, Any]) -> Any:
    try:
        return type(original)(mapped)
    except TypeError:
        return mapped


def _error_result(exc: BaseException) -> dict[str, Any]:
    error_type = type(exc)
    result: dict[str, Any] = {
        "ok": False,
        "type": f"{error_type.__module__}.{error_type.__qualname__}",
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
        "pickled": None,
    }
    try:
        pickled = pickle.dumps(exc)
        copy = pickle.loads(pickled)
    except Exception:
        return result
    # Some exceptions pickle but come back with other arguments; only an exact
    # copy may stand in for the original.
    if type(copy) is error_type and str(copy) == str(exc):
        result["pickled"] = pickled
    return result


def _write_result(work_folder: str, result: dict[str, Any]) -> None:
    # Written under another name and renamed, so the parent never reads half
    # a result from a child killed while writing.
    path = os.path.join(work_folder, RESULT_FILE)
    partial = path + ".partial"
    with open(partial, "wb") as stream:
        pickle.dump(result, stream, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(partial, path)


def _stop_on_sigterm(cancel_event: threading.Event) -> None:
    # The parent cancels with SIGTERM. Raising SystemExit unwinds the training
    # code, so its finally blocks and context managers still run; the parent
    # kills the process if that takes longer than the grace period.
    def stop(signum: int, frame: object) -> None:
        cancel_event.set()
        raise SystemExit(SIGTERM_EXIT)

    signal.signal(signal.SIGTERM, stop)


def _watch_parent(parent_fd: int | None) -> None:
    # A training must not outlive the process that waits for its result.
    if parent_fd is None:
        import multiprocessing

        parent = multiprocessing.parent_process()
        if parent is None or parent.sentinel is None:
            return
        parent_fd = parent.sentinel

    def watch(fd: int) -> None:
        try:
            while os.read(fd, 1):
                pass
        except OSError:
            pass
        os._exit(ORPHAN_EXIT)

    threading.Thread(
        target=watch, args=(parent_fd,), name="caikit-mm-parent-watch", daemon=True
    ).start()
