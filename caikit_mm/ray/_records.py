"""Result and error records that a training job prints into its Ray job log.

The job entrypoint prints one record line when it ends; the submitting side
reads the job's log and finds the record of its training id. A job that exits
0 without a success record is not reported as completed, and an error record
brings back the original exception type and message.
"""

from __future__ import annotations

import base64
import json
import logging
import pickle
from typing import Any, Final

log = logging.getLogger(__name__)

PREFIX: Final = "caikit_mm.ray.record: "
# Log lines kept in an error whose job left no error record.
TAIL_LINES: Final = 20


def format_record(record: dict[str, Any]) -> str:
    """Return the log line that carries ``record``."""
    return PREFIX + json.dumps(record, ensure_ascii=True, separators=(",", ":"))


def success_record(training_id: str, save_path: str) -> dict[str, Any]:
    """Build the record of a job that saved its model at ``save_path``."""
    return {"training_id": training_id, "ok": True, "save_path": save_path}


def error_record(training_id: str, error: BaseException) -> dict[str, Any]:
    """Build the record of a job that failed with ``error``.

    The exception is pickled too when an unpickled copy has the same type and
    message, so the submitter can raise an exact copy.
    """
    from ..model_management._subprocess_worker import _error_result

    result = _error_result(error)
    pickled = result.pop("pickled")
    result.pop("ok", None)
    return {
        "training_id": training_id,
        "ok": False,
        **result,
        "pickled": base64.b64encode(pickled).decode("ascii") if pickled else None,
    }


def find_record(logs: str, training_id: str) -> dict[str, Any] | None:
    """Return the last record of ``training_id`` in a job's log, if any."""
    for line in reversed(logs.splitlines()):
        start = line.find(PREFIX)
        if start < 0:
            continue
        try:
            record = json.loads(line[start + len(PREFIX) :])
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("training_id") == training_id:
            return record
    return None


def rebuild_error(record: dict[str, Any]) -> BaseException | None:
    """Return the exception an error record describes, or ``None``.

    Only a pickled exact copy is rebuilt.
    """
    encoded = record.get("pickled")
    if not encoded:
        return None
    try:
        error = pickle.loads(base64.b64decode(encoded))
    except Exception:  # noqa: BLE001 - any failure means "cannot rebuild"
        log.debug("Cannot unpickle the error of training %s", record.get("training_id"))
        return None
    return error if isinstance(error, BaseException) else None


def log_tail(logs: str, lines: int = TAIL_LINES) -> str:
    """Return the last ``lines`` lines of a job's log, without record lines."""
    kept = [line for line in logs.splitlines() if PREFIX not in line]
    return "\n".join(kept[-lines:])
