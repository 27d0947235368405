"""The ``caikit-mm train`` subcommand: train a module and follow the job to its end.

The training runs inside this command, in a thread or in a child process as
the trainer's configuration selects, so the command always waits for it. While it
runs, a progress indicator goes to standard error on a terminal, or one line
per status change (and one every 30 seconds) otherwise. At the end the job's id,
final status and save path print as JSON on standard output. Ctrl-C cancels the
job, and the exit status is 0 only for a COMPLETED job.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, TextIO

from .cli import command, make_manager, print_json
from .errors import SavePathExistsError

POLL_SECONDS: Final = 0.1
HEARTBEAT_SECONDS: Final = 30.0
INTERRUPTED_EXIT: Final = 130
# After a cancel, the command waits up to STOP_WAIT_SECONDS for the job's worker
# to stop. It prints the wait when the worker still runs after QUIET_STOP_SECONDS.
STOP_WAIT_SECONDS: Final = 60.0
QUIET_STOP_SECONDS: Final = 1.0
SPINNER: Final = "|/-\\"


def add_parser(sub: Any) -> None:
    """Add the ``train`` subcommand to the parser."""
    train = sub.add_parser(
        "train",
        help="train a module, save the model and report where",
        description=(
            "Train MODULE with the configured trainer and save the model to the "
            "save path. The job runs inside this command, which waits for it; "
            "Ctrl-C cancels it."
        ),
    )
    train.add_argument(
        "module",
        metavar="MODULE",
        help="module id registered by an installed module library, or "
        "package.module:Class such as caikit_mm_examples.iris:IrisClassifier; "
        "an unknown MODULE lists the registered ones",
    )
    train.add_argument(
        "--save-path", required=True, metavar="DIR", help="folder to save the model to"
    )
    train.add_argument("--trainer", help="trainer instance name (default: default)")
    train.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keyword argument of the module's train; VALUE is parsed as JSON when "
        "it is valid JSON, else taken as a string; repeat for more",
    )
    train.add_argument(
        "--save-with-id",
        action="store_true",
        help="save under DIR/<training id>",
    )
    train.add_argument(
        "--model-name", help="name of the model's folder, last in the path"
    )
    train.add_argument("--training-id", help="the job's id (default: generated)")
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a model that already exists at the save path",
    )
    train.add_argument(
        "--wait",
        action="store_true",
        help="wait for the job to finish; this is always done, because the job "
        "runs inside this command",
    )
    train.add_argument(
        "--timeout",
        type=positive_seconds,
        metavar="SECONDS",
        help="cancel the job if it has not finished after SECONDS",
    )


@command("train")
def _train(args: argparse.Namespace) -> int:
    from .model_management.training import TrainingStatus

    params = parse_params(args.param)
    module_class = resolve_module(args.module)
    manager = make_manager(args)
    with _sigint_as_flag() as sigint:
        try:
            future = manager.train(
                module_class,
                trainer=args.trainer,
                save_path=args.save_path,
                save_with_id=args.save_with_id,
                model_name=args.model_name,
                training_id=args.training_id,
                overwrite=args.overwrite,
                **params,
            )
        except SavePathExistsError as exc:
            raise SavePathExistsError(cli_wording(str(exc)), path=exc.path) from None
        interrupted = _follow(future, args.timeout, sigint, sys.stderr)
    trainer = manager.get_trainer(args.trainer)
    info = future.info()
    print_json(
        {
            "training_id": future.id,
            "trainer": trainer.instance_name,
            "module_id": module_class.MODULE_ID,
            "status": info.status.value,
            "save_path": future.save_path,
            "submission_time": info.submission_time.isoformat(),
            "completion_time": (
                info.completion_time.isoformat() if info.completion_time else None
            ),
            "errors": info.errors,
        }
    )
    if interrupted:
        return INTERRUPTED_EXIT
    if info.status is not TrainingStatus.COMPLETED:
        detail = f": {cli_wording(info.errors[0])}" if info.errors else ""
        print(
            f"caikit-mm train: training {future.id} {info.status.value}{detail}",
            file=sys.stderr,
        )
        return 1
    return 0


# Keyword arguments that library error messages suggest, and the flags of this
# command that set them.
CLI_FLAGS: Final = (
    ("save_with_id=True", "--save-with-id"),
    ("overwrite=True", "--overwrite"),
)


def cli_wording(message: str) -> str:
    """Replace the Python keyword arguments in ``message`` with this command's flags."""
    for keyword, flag in CLI_FLAGS:
        message = message.replace(keyword, flag)
    return message


def positive_seconds(text: str) -> float:
    """Parse ``--timeout``: a number of seconds greater than zero."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: give a number of seconds greater than 0, "
            "such as 600, or leave --timeout out to wait without a limit"
        )
    return seconds


def parse_params(items: list[str]) -> dict[str, Any]:
    """Turn ``KEY=VALUE`` strings into keyword arguments.

    Raises:
        ValueError: An item has no ``=``, its key is not a Python identifier, or
            a key repeats.
    """
    params: dict[str, Any] = {}
    for item in items:
        key, separator, text = item.partition("=")
        key = key.strip()
        if not separator or not key.isidentifier():
            raise ValueError(
                f"--param {item!r} is not KEY=VALUE with KEY a Python identifier; "
                "for example --param C=0.5 or --param 'layers=[64, 32]'."
            )
        if key in params:
            raise ValueError(f"--param {key} is given twice; give each key once.")
        params[key] = _parse_value(text)
    return params


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


MODULE_FORMS: Final = (
    "MODULE is a module id that an installed module library registers, or "
    "package.module:Class naming a module class, such as "
    "caikit_mm_examples.iris:IrisClassifier"
)


def resolve_module(name: str) -> Any:
    """Return the module class for a registered module id or ``package.module:Class``.

    Raises:
        ValueError: ``name`` is neither a registered id nor a ``module:Class``
            path that imports, or the path names something that is not a module
            class. The message lists the registered modules.
    """
    from .errors import ModuleNotRegisteredError
    from .modules import MODULE_REGISTRY

    try:
        return MODULE_REGISTRY.get(name)
    except ModuleNotRegisteredError:
        module_name, separator, qualname = name.partition(":")
        if not separator or not module_name or not qualname:
            raise ValueError(
                f"MODULE {name!r} is not a registered module id. {MODULE_FORMS}. "
                f"Registered modules: {describe_modules()}."
            ) from None
    return _import_module_class(name, module_name, qualname)


def _import_module_class(name: str, module_name: str, qualname: str) -> Any:
    from .model_management._subprocess_worker import resolve
    from .modules import ModuleBase

    try:
        target = resolve(module_name, qualname)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or ""
        if missing and not _is_parent_or_self(missing, module_name):
            fix = f"Install the package that provides {missing!r}."
        else:
            fix = "Check the spelling, or add the package's folder to PYTHONPATH."
        raise ValueError(
            f"MODULE {name!r}: cannot import {module_name!r} ({exc}). {fix} "
            f"{MODULE_FORMS}."
        ) from None
    except AttributeError:
        found = _module_classes_in(module_name)
        raise ValueError(
            f"MODULE {name!r}: {module_name!r} has no attribute {qualname!r}. "
            f"Module classes in {module_name!r}: {', '.join(found) or '(none)'}."
        ) from None
    if not (isinstance(target, type) and issubclass(target, ModuleBase)):
        raise ValueError(
            f"MODULE {name!r} is {target!r:.80}, not a ModuleBase subclass. Name a "
            f"module class, or pass a registered module id. {MODULE_FORMS}."
        )
    return target


def _is_parent_or_self(package: str, module_name: str) -> bool:
    return module_name == package or module_name.startswith(package + ".")


def describe_modules() -> str:
    """List the registered modules as ``id (name, package.module:Class)``."""
    from .modules import MODULE_REGISTRY

    MODULE_REGISTRY.load_libraries()
    entries = []
    for module_id in MODULE_REGISTRY.ids():
        cls = _local_class(module_id)
        where = f"{cls.__module__}:{cls.__qualname__}"
        entries.append(f"{module_id} ({cls.MODULE_NAME}, {where})")
    return "; ".join(entries) or "(none; install a module library)"


def _local_class(module_id: str) -> Any:
    from .modules import MODULE_REGISTRY
    from .modules.base import LOCAL_BACKEND

    implementations = MODULE_REGISTRY.implementations(module_id)
    return implementations.get(LOCAL_BACKEND) or next(iter(implementations.values()))


def _module_classes_in(module_name: str) -> list[str]:
    from .modules import MODULE_REGISTRY

    names = []
    for module_id in MODULE_REGISTRY.ids():
        for cls in MODULE_REGISTRY.implementations(module_id).values():
            if cls.__module__ == module_name:
                names.append(cls.__qualname__)
    return sorted(names)


@contextmanager
def _sigint_as_flag() -> Iterator[threading.Event]:
    """Turn Ctrl-C into an event that :func:`_follow` checks at every poll.

    A ``KeyboardInterrupt`` can arrive between any two statements, such as
    just after the job started and before anything could cancel it, whereas
    the event is always seen. A second Ctrl-C raises ``KeyboardInterrupt``,
    to stop waiting for a cancelled job. A SIGINT that this process ignores, as
    a background job of a shell does, stays ignored.
    """
    pressed = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        if pressed.is_set():
            raise KeyboardInterrupt
        pressed.set()

    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    ):
        yield pressed
        return
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def _follow(
    future: Any, timeout: float | None, sigint: threading.Event, stream: TextIO
) -> bool:
    """Show the job's status until it is terminal; return whether Ctrl-C stopped it."""
    display = _make_display(future.id, stream)
    started = time.monotonic()
    while not future.done():
        if sigint.is_set():
            display.close()
            print(
                f"caikit-mm train: interrupted; canceling training {future.id}",
                file=stream,
            )
            _cancel(future, stream, "press Ctrl-C again to stop waiting")
            print(f"caikit-mm train: training {future.id} canceled", file=stream)
            return True
        elapsed = time.monotonic() - started
        if timeout is not None and elapsed >= timeout:
            display.close()
            print(
                f"caikit-mm train: timed out after {timeout:g} s; canceling "
                f"training {future.id}",
                file=stream,
            )
            _cancel(future, stream)
            return False
        display.update(future.status.value, elapsed)
        try:
            future.wait(POLL_SECONDS)
        except TimeoutError:
            continue
    # A short job can end between two polls, so the final status is shown too.
    display.update(future.status.value, time.monotonic() - started)
    display.close()
    return False


def _cancel(future: Any, stream: TextIO, hint: str = "") -> None:
    """Cancel the job and wait, up to ``STOP_WAIT_SECONDS``, for its worker to stop.

    Waiting lets a child process end, and lets a thread that is still saving
    remove its temporary folder, so nothing outlives the command. A thread whose
    ``train`` ignores the cancel keeps running until it returns, so the wait is
    announced when the worker does not stop at once.
    """
    future.cancel()
    join = getattr(future, "join", None)
    if not callable(join) or join(timeout=QUIET_STOP_SECONDS):
        return
    note = f" ({hint})" if hint else ""
    print(
        f"caikit-mm train: waiting up to {STOP_WAIT_SECONDS:g} s for training "
        f"{future.id} to stop{note}",
        file=stream,
    )
    stream.flush()
    if not join(timeout=STOP_WAIT_SECONDS - QUIET_STOP_SECONDS):
        print(
            f"caikit-mm train: training {future.id} did not stop within "
            f"{STOP_WAIT_SECONDS:g} s; exiting anyway",
            file=stream,
        )


class _Lines:
    """Status lines for a log or a pipe: one per change, one per heartbeat."""

    def __init__(self, training_id: str, stream: TextIO) -> None:
        self._id = training_id
        self._stream = stream
        self._status = ""
        self._last = 0.0

    def update(self, status: str, elapsed: float) -> None:
        if status != self._status or elapsed - self._last >= HEARTBEAT_SECONDS:
            suffix = f" ({elapsed:.0f} s)" if status == self._status else ""
            print(f"caikit-mm train: {self._id} {status}{suffix}", file=self._stream)
            self._stream.flush()
            self._status, self._last = status, elapsed

    def close(self) -> None:
        return None


class _Spinner:
    """A one-line indicator for a terminal: status and elapsed time, redrawn."""

    def __init__(self, training_id: str, stream: TextIO) -> None:
        self._id = training_id
        self._stream = stream
        self._ticks = 0
        self._width = 0

    def update(self, status: str, elapsed: float) -> None:
        frame = SPINNER[self._ticks % len(SPINNER)]
        self._ticks += 1
        line = f"{frame} training {self._id}: {status} {elapsed:.1f} s"
        self._stream.write("\r" + line.ljust(self._width))
        self._stream.flush()
        self._width = len(line)

    def close(self) -> None:
        if self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0


class _Tqdm:
    """The indicator drawn by tqdm, when the ``progress`` extra is installed."""

    def __init__(self, training_id: str, stream: TextIO) -> None:
        from tqdm import tqdm

        self._id = training_id
        self._bar = tqdm(
            total=None,
            desc=f"training {training_id}",
            bar_format="{desc} {elapsed}",
            file=stream,
            leave=False,
        )

    def update(self, status: str, elapsed: float) -> None:
        self._bar.set_description_str(f"training {self._id}: {status}", refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def _make_display(training_id: str, stream: TextIO) -> _Lines | _Spinner | _Tqdm:
    if not stream.isatty():
        return _Lines(training_id, stream)
    try:
        return _Tqdm(training_id, stream)
    except ImportError:
        return _Spinner(training_id, stream)
