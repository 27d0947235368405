"""The entrypoint of a RAY trainer's job: ``python -m caikit_mm.ray._job_entrypoint``.

It reads the payload file that the submitter wrote beside the save path (and
deletes it), trains, saves the model into a temporary folder beside the final
one and renames it into place. Its last line on standard output is a record
that the submitter reads from the job's log: success with the save path, or
the error with its type, message, traceback and a pickled copy.

SIGTERM, which Ray sends when the job is stopped, sets the training's cancel
event and ends the process without committing the model.
"""

from __future__ import annotations

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
    if len(arguments) != 1:
        print(
            "usage: python -m caikit_mm.ray._job_entrypoint PAYLOAD_FILE",
            file=sys.stderr,
        )
        return USAGE_EXIT
    stop = _Stop()
    signal.signal(signal.SIGTERM, stop.handle)
    payload = _read_payload(arguments[0])
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


def _read_payload(path: str) -> dict[str, Any]:
    with open(path, "rb") as stream:
        payload: dict[str, Any] = pickle.load(stream)
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
    temp = save_to_temp(model, final_path)
    stop.committing = True
    try:
        if stop.event.is_set():
            raise SystemExit(SIGTERM_EXIT)
        commit_folder(temp, final_path, payload["overwrite"])
    except BaseException:
        discard_folder(temp)
        raise


if __name__ == "__main__":
    sys.exit(main())
