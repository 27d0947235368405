"""The entrypoint of a RAY trainer's job: ``python -m caikit_mm.ray._job_entrypoint``.

Its argument is the payload file that the submitter wrote beside a folder
save path, or ``--py-module NAME`` for a payload that came in the package
``NAME`` of the job's ``py_modules`` (a save path that is a URL). It reads the
payload (and deletes a payload file) and trains. It saves the model into a
temporary folder beside the final one and renames it into place, or, for a
URL, saves it into a temporary folder on this node and uploads it. Its last line on
standard output is a record that the submitter reads from the job's log:
success with the save path, or the error with its type, message, traceback
and a pickled copy.

SIGTERM, which Ray sends when the job is stopped, sets the training's cancel
event and ends the process without committing the model. An upload that
SIGTERM interrupts deletes what it wrote to an empty URL.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pickle
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, Final

from . import _records

# Exit status after SIGTERM, as a shell reports it.
SIGTERM_EXIT: Final = 128 + signal.SIGTERM
USAGE_EXIT: Final = 2
USAGE: Final = (
    "usage: python -m caikit_mm.ray._job_entrypoint PAYLOAD_FILE | --py-module NAME"
)


class _Stop:
    """Cancellation state shared by the SIGTERM handler and the training."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.committing = False

    def handle(self, signum: int, frame: object) -> None:
        self.event.set()
        # Once the rename has started it finishes; the model is then saved.
        if not self.committing:
            raise SystemExit(SIGTERM_EXIT)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the training the payload file describes and return the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if len(arguments) == 2 and arguments[0] == "--py-module":
        path, owned = _package_payload_path(arguments[1]), False
    elif len(arguments) == 1 and not arguments[0].startswith("-"):
        path, owned = arguments[0], True
    else:
        print(USAGE, file=sys.stderr)
        return USAGE_EXIT
    stop = _Stop()
    signal.signal(signal.SIGTERM, stop.handle)
    payload = _read_payload(path, delete=owned)
    if payload.get("log_level") is not None:
        logging.basicConfig(
            level=payload["log_level"],
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    training_id = payload["training_id"]
    try:
        _train_and_commit(payload, stop)
    except Exception as exc:
        print(_records.format_record(_records.error_record(training_id, exc)))
        sys.stdout.flush()
        return 1
    record = _records.success_record(training_id, payload["final_path"])
    print(_records.format_record(record))
    sys.stdout.flush()
    return 0


def _package_payload_path(package: str) -> str:
    """Return the payload file of the ``py_modules`` package ``package``.

    Raises:
        FileNotFoundError: No such package on this job's ``sys.path``.
    """
    from ._job import PAYLOAD_FILE

    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise FileNotFoundError(
            f"The job's payload package {package!r} is not on sys.path. Ray puts "
            "it there from the job's runtime_env py_modules; check that the "
            "runtime_env was not replaced."
        )
    return os.path.join(locations[0], PAYLOAD_FILE)


def _read_payload(path: str, *, delete: bool) -> dict[str, Any]:
    with open(path, "rb") as stream:
        payload: dict[str, Any] = pickle.load(stream)
    if delete:
        try:
            os.remove(path)
        except OSError:
            pass
    return payload


def _train_and_commit(payload: dict[str, Any], stop: _Stop) -> None:
    from ..model_management._training_common import commit_folder, discard_folder
    from ..model_management.training import run_train
    from ._worker import save_to_temp

    final_path = payload["final_path"]
    model = run_train(
        payload["module_class"], payload["args"], payload["kwargs"], stop.event
    )
    upload = payload.get("upload")
    if upload is not None:
        _upload(payload["training_id"], model, upload, stop)
        return
    temp = save_to_temp(model, final_path)
    stop.committing = True
    try:
        if stop.event.is_set():
            raise SystemExit(SIGTERM_EXIT)
        commit_folder(temp, final_path, payload["overwrite"])
    except BaseException:
        discard_folder(temp)
        raise


def _upload(training_id: str, model: Any, upload: Any, stop: _Stop) -> None:
    """Upload the model; SIGTERM during the upload ends it, and the upload
    then deletes what it wrote to an empty URL."""
    from ._worker import delete_canceled_upload, save_to_url

    save_to_url(model, upload)
    # NOTE: a SIGTERM between the end of the upload and this line ends the
    # process with the model stored. The submitter deletes it only when the
    # success record below was printed.
    stop.committing = True
    if stop.event.is_set():
        delete_canceled_upload(training_id, upload)
        raise SystemExit(SIGTERM_EXIT)


if __name__ == "__main__":
    sys.exit(main())
