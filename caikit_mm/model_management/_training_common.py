"""Pieces every trainer type shares: training ids, save paths, durations, jobs.

A trainer type builds on these so that its jobs behave like the LOCAL trainer's:

- :func:`new_training_id` and :func:`trainer_name_from_id`: a generated id is
  ``<trainer instance name>-<uuid4 hex>``, so the id names the trainer that owns
  the job. :func:`check_training_id` validates an id that a caller supplies.
- :func:`build_save_path`: the final folder of a model from ``save_path``,
  ``save_with_id`` and ``model_name``.
- :func:`check_save_path`, :func:`make_temp_folder`, :func:`commit_folder` and
  :func:`discard_folder`: atomic saving. A module saves into a temporary folder
  beside the final one, on the same file system, and the folder is renamed into
  place only after ``save`` returns.
- :func:`parse_duration`: durations such as ``1d12h3m0.5s``, used for
  ``retention_duration`` and ``cancel_grace_period``.
- :class:`TrainingJobs`: the futures a trainer instance started, with the rule
  that a training id is reused only once its earlier job is terminal, and with
  retention of finished futures. :class:`TrainingIndex` is the manager's view
  across trainer instances.
- :data:`SAVE_PATH_CLAIMS`: the final save paths of the unfinished jobs in this
  process, so that two jobs never write one path at once.
"""

from __future__ import annotations

import datetime
import heapq
import itertools
import logging
import os
import re
import shutil
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from ..errors import SavePathExistsError, TrainingError, TrainingIdInUseError
from .training import BaseModelFuture, ModelFuture

if TYPE_CHECKING:
    from .base import ModelTrainer

log = logging.getLogger(__name__)

F = TypeVar("F", bound=ModelFuture)

ID_SEPARATOR: Final = "-"
_UUID_HEX = re.compile(r"[0-9a-f]{32}")
MAX_ID_LENGTH: Final = 200

# Temporary folders are hidden siblings of the final folder, so a listing of the
# save folder does not show them, and a crash leaves them recognizable.
TEMP_MARKER: Final = ".tmp-"
OLD_MARKER: Final = ".old-"
_SUFFIX_HEX_LENGTH: Final = 12
# Bytes that make_temp_folder and commit_folder add to the final folder's name:
# a leading dot, the marker and the random hex.
SIBLING_NAME_EXTRA: Final = 1 + len(TEMP_MARKER) + _SUFFIX_HEX_LENGTH


# Training ids -----------------------------------------------------------------


def new_training_id(trainer_name: str) -> str:
    """Generate a training id for a job of the trainer instance ``trainer_name``.

    The id is ``<trainer_name>-<uuid4 hex>``, so :func:`trainer_name_from_id`
    can name the owning trainer from the id alone.
    """
    return f"{trainer_name}{ID_SEPARATOR}{uuid.uuid4().hex}"


def trainer_name_from_id(training_id: str) -> str | None:
    """Return the trainer instance name inside a generated training id.

    Returns:
        The name, or ``None`` when ``training_id`` was not made by
        :func:`new_training_id` (for example, a caller-supplied id).
    """
    name, separator, suffix = training_id.rpartition(ID_SEPARATOR)
    if separator and name and _UUID_HEX.fullmatch(suffix):
        return name
    return None


def check_training_id(training_id: object) -> str:
    """Validate a caller-supplied training id and return it.

    An id may become a folder name through ``save_with_id``, so it must be one
    path component.

    Raises:
        ValueError: The id is not a non-empty string, is longer than 200
            characters, contains a path separator or a NUL byte, or is ``.`` or
            ``..``.
    """
    if not isinstance(training_id, str) or not training_id:
        raise ValueError(
            f"training_id must be a non-empty string, got {training_id!r}. Pass a "
            "name such as 'nightly-2024-05-01', or None to generate one."
        )
    if len(training_id) > MAX_ID_LENGTH:
        raise ValueError(
            f"training_id is {len(training_id)} characters long; the maximum is "
            f"{MAX_ID_LENGTH}. Use a shorter id."
        )
    if (
        training_id in (".", "..")
        or "/" in training_id
        or "\\" in training_id
        or "\0" in training_id
    ):
        raise ValueError(
            f"training_id {training_id!r} is not usable as a folder name: it must "
            "not be '.' or '..' or contain '/', '\\' or a NUL byte."
        )
    return training_id


# Save paths -------------------------------------------------------------------


def build_save_path(
    save_path: str | os.PathLike[str] | None,
    training_id: str,
    save_with_id: bool = False,
    model_name: str | None = None,
) -> str | None:
    """Return the absolute folder where a job's model is saved.

    The rule is ``save_path[/<training_id>][/<model_name>]``: ``save_path`` is
    the base folder, ``save_with_id`` adds a folder named after the training id,
    and ``model_name`` names the model's own folder last. ``~`` is expanded and
    a relative path is resolved against the working directory now, so a later
    ``chdir`` does not move the model.

    Returns:
        The folder, or ``None`` when ``save_path`` is ``None`` (the model is not
        saved).

    Raises:
        ValueError: ``save_path`` is an URL, ``save_with_id`` or ``model_name``
            is given without ``save_path``, or ``model_name`` is not a single
            folder name.
    """
    if save_path is None:
        if save_with_id or model_name:
            raise ValueError(
                "save_with_id and model_name build the folder under save_path, but "
                "save_path is None. Pass save_path as well."
            )
        return None
    path = check_save_path_type(save_path)
    if "://" in path:
        raise ValueError(
            f"save_path {path!r} is an URL; this trainer saves to a local folder. "
            "Save locally and upload the folder, or use a trainer that writes to "
            "object storage."
        )
    if not path:
        raise ValueError("save_path is an empty string; pass a folder path or None.")
    parts = [os.path.abspath(os.path.expanduser(path))]
    if save_with_id:
        parts.append(training_id)
    if model_name is not None:
        parts.append(_check_model_name(model_name))
    return os.path.join(*parts)


def check_save_path_type(save_path: object) -> str:
    """Return ``save_path`` as a ``str`` path, rejecting other types.

    Raises:
        TypeError: ``save_path`` is not a ``str`` or an ``os.PathLike`` of
            ``str`` (bytes paths are rejected too).
    """
    path = save_path
    if isinstance(save_path, os.PathLike):
        path = os.fspath(save_path)
    if not isinstance(path, str):
        raise TypeError(
            f"save_path must be a str or os.PathLike path such as "
            f"'/data/models/m', got {type(save_path).__name__} {save_path!r}. "
            "Pass the folder as text (decode bytes paths first), or None."
        )
    return path


def check_local_save_folder(final_path: str) -> None:
    """Check, before training starts, that this process can save to ``final_path``.

    The model is saved into a temporary folder beside ``final_path``, so every
    folder name still to be created must fit the file system's name limit
    (the last one with room for the temporary suffix), and the nearest
    existing parent must be a folder that this process can write to.

    Raises:
        ValueError: A folder name in ``final_path`` is too long.
        NotADirectoryError: The nearest existing parent is not a folder.
        PermissionError: This process cannot create folders in that parent.
    """
    existing = _nearest_existing_parent(final_path)
    _check_name_lengths(final_path, existing)
    if not os.path.isdir(existing):
        raise NotADirectoryError(
            f"save path {final_path!r} cannot be created: {existing!r} exists "
            "and is not a folder. Choose a save path under a folder."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(
            f"save path {final_path!r} cannot be created: this process cannot "
            f"write to {existing!r}, its nearest existing parent folder. Choose a "
            "save path in a folder you can write to, or change that folder's "
            "permissions."
        )


def _nearest_existing_parent(final_path: str) -> str:
    parent = os.path.dirname(final_path)
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    return parent


def _name_max(folder: str) -> int | None:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        # NOTE: without a reported limit nothing is checked here, and a name
        # that is too long still fails when the model is saved.
        return None


def _check_name_lengths(final_path: str, existing: str) -> None:
    name_max = _name_max(existing) if os.path.isdir(existing) else None
    if name_max is None:
        return
    names = os.path.relpath(final_path, existing).split(os.sep)
    for index, name in enumerate(names):
        last = index == len(names) - 1
        limit = name_max - SIBLING_NAME_EXTRA if last else name_max
        size = len(os.fsencode(name))
        if size > limit:
            shown = name if len(name) <= 40 else f"{name[:40]}..."
            extra = (
                f" ({name_max} minus {SIBLING_NAME_EXTRA} for the temporary "
                "folder's suffix)"
                if last
                else ""
            )
            raise ValueError(
                f"folder name {shown!r} of the save path is {size} bytes long; "
                f"the file system at {existing!r} allows at most {limit} "
                f"bytes{extra}. Use a shorter model_name, training_id or save_path."
            )


def _check_model_name(model_name: object) -> str:
    if (
        not isinstance(model_name, str)
        or not model_name
        or model_name in (".", "..")
        or "/" in model_name
        or "\\" in model_name
        or "\0" in model_name
    ):
        raise ValueError(
            f"model_name must be a single folder name, got {model_name!r}. Put "
            "parent folders in save_path instead."
        )
    return model_name


def check_save_path(final_path: str, overwrite: bool = False) -> None:
    """Check, before training starts, that a model may be saved at ``final_path``.

    A path that does not exist, or an empty folder, is free. With ``overwrite``
    an existing folder is replaced when the new model is committed.

    Raises:
        SavePathExistsError: An unfinished job in this process saves to
            ``final_path``, to a folder inside it or to a folder around it, even
            with ``overwrite``. Or ``final_path`` exists and is not an empty
            folder, and ``overwrite`` is false; or it is a file.
    """
    SAVE_PATH_CLAIMS.check(final_path)
    if os.path.isdir(final_path):
        if overwrite or not _has_entries(final_path):
            return
        raise SavePathExistsError(
            f"save path {final_path!r} already exists and is not empty. Choose a "
            "new path, use save_with_id=True for a folder per training, or pass "
            "overwrite=True to replace it when the new model is saved.",
            path=final_path,
        )
    if os.path.lexists(final_path):
        raise SavePathExistsError(
            f"save path {final_path!r} exists and is not a folder. Remove the file "
            "or choose another save path.",
            path=final_path,
        )


def _has_entries(folder: str) -> bool:
    with os.scandir(folder) as entries:
        return any(True for _ in entries)


def make_temp_folder(final_path: str) -> str:
    """Create and return an empty temporary folder beside ``final_path``.

    The folder is ``<parent>/.<name>.tmp-<random hex>``, on the same file system
    as ``final_path`` so that :func:`commit_folder` is a rename. Missing parent
    folders are created.

    Raises:
        OSError: The folder cannot be created; the message names ``final_path``.
    """
    parent, name = os.path.split(final_path)
    suffix = uuid.uuid4().hex[:_SUFFIX_HEX_LENGTH]
    temp = os.path.join(parent, f".{name}{TEMP_MARKER}{suffix}")
    try:
        os.makedirs(parent, exist_ok=True)
        os.mkdir(temp)
    except OSError as exc:
        # The temporary folder's name would only confuse the caller, who
        # passed the save path.
        raise type(exc)(
            exc.errno,
            f"cannot save the model to {final_path!r}: {exc.strerror} while "
            "creating its temporary folder beside it. Choose a save path in a "
            "folder you can write to",
        ) from exc
    return temp


def commit_folder(temp_path: str, final_path: str, overwrite: bool = False) -> None:
    """Move a saved model from ``temp_path`` to ``final_path`` by renaming it.

    The rename is atomic when ``final_path`` does not exist or is an empty
    folder: a reader sees either no model or the whole model. With ``overwrite``
    an existing model is first renamed aside and deleted once the new one is in
    place, so for a moment neither folder is at ``final_path``.

    Raises:
        SavePathExistsError: ``final_path`` was filled by someone else after
            the job started and ``overwrite`` is false. ``temp_path`` is left
            for the caller to discard.
    """
    try:
        os.rename(temp_path, final_path)
        return
    except OSError as exc:
        if not os.path.lexists(final_path):
            raise
        if not overwrite:
            raise SavePathExistsError(
                f"save path {final_path!r} was created by someone else while the "
                "model trained, so the new model was not saved there. Train again "
                "with a new save path, or pass overwrite=True.",
                path=final_path,
            ) from exc
    parent, name = os.path.split(final_path)
    suffix = uuid.uuid4().hex[:_SUFFIX_HEX_LENGTH]
    old = os.path.join(parent, f".{name}{OLD_MARKER}{suffix}")
    os.rename(final_path, old)
    os.rename(temp_path, final_path)
    discard_folder(old)


def discard_folder(path: str | None) -> None:
    """Delete a temporary folder and everything in it; a missing one is fine."""
    if path is None:
        return
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        log.warning("Could not delete temporary training folder %s", path)


# Save paths of unfinished jobs ------------------------------------------------


class SavePathClaims:
    """The final save paths of the unfinished training jobs in this process.

    :meth:`TrainingJobs.add` claims a job's ``save_path`` and the job releases
    it once it is terminal. The table is shared by every trainer instance of
    every manager, because a model folder on disk is shared too. Two paths
    conflict when they are equal or one is inside the other, since committing
    one model would move or fill the folder of the other.

    Local paths are compared after :func:`os.path.realpath`, so a symbolic link
    or ``..`` does not hide a conflict. URLs are compared as text, without
    trailing slashes.
    """

    def __init__(self) -> None:
        # Weak keys, so a future that was dropped without ever finishing does
        # not hold its path forever.
        self._claims: weakref.WeakKeyDictionary[ModelFuture, str] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def check(self, save_path: str | None) -> None:
        """Raise when any unfinished job saves to or around ``save_path``.

        Raises:
            SavePathExistsError: Such a job exists; the message names its id.
        """
        if save_path is None:
            return
        key = _claim_key(save_path)
        with self._lock:
            owner = self._find_conflict(key, None)
        if owner is not None:
            raise path_in_use(save_path, owner)

    def claim(self, future: ModelFuture) -> None:
        """Record that ``future`` saves to its ``save_path`` until it is terminal.

        A claimed future with the same training id does not conflict, because
        both futures follow one job. A trainer that submits jobs to a cluster
        creates such a second future when another manager submits the same
        training id again. Such a trainer calls :meth:`check` (through
        :func:`check_save_path`) before it submits a new job, and that check
        rejects every claimed path.

        Raises:
            SavePathExistsError: Another unfinished job saves to or around that
                path; nothing is recorded.
        """
        save_path = future.save_path
        if save_path is None:
            return
        key = _claim_key(save_path)
        with self._lock:
            owner = self._find_conflict(key, future.id)
            if owner is None:
                self._claims[future] = key
        if owner is not None:
            raise path_in_use(save_path, owner)

    def release(self, future: ModelFuture) -> None:
        """Forget the path that ``future`` claimed, if any."""
        with self._lock:
            self._claims.pop(future, None)

    def _find_conflict(self, key: str, training_id: str | None) -> ModelFuture | None:
        # The caller holds self._lock. Only unfinished jobs are listed, so the
        # scan is short. A terminal owner is dropped here, because its release
        # may not have run yet or its future type may have no done callback.
        for owner, claimed in list(self._claims.items()):
            if owner.status.is_terminal:
                del self._claims[owner]
            elif owner.id != training_id and (
                _nested(claimed, key) or _nested(key, claimed)
            ):
                return owner
        return None


def _claim_key(save_path: str) -> str:
    if "://" in save_path:
        return save_path.rstrip("/")
    return os.path.realpath(save_path)


def _nested(outer: str, inner: str) -> bool:
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


def path_in_use(save_path: str, owner: ModelFuture) -> SavePathExistsError:
    """Build the error for a save path that the unfinished job ``owner`` saves to."""
    where = (
        "saves to the same path"
        if _claim_key(save_path) == _claim_key(owner.save_path or "")
        else f"saves to {owner.save_path!r}, which overlaps it"
    )
    return SavePathExistsError(
        f"save path {save_path!r} is in use: training {owner.id!r}, still "
        f"{owner.status.value}, {where}. Two trainings cannot write one folder at "
        "once, even with overwrite. Choose another save path, use "
        "save_with_id=True for a folder per training, or wait for that training "
        "to end.",
        path=save_path,
    )


SAVE_PATH_CLAIMS: Final = SavePathClaims()


# Durations --------------------------------------------------------------------

_DURATION = re.compile(
    r"(?:(?P<days>\d+(?:\.\d*)?)d)?"
    r"(?:(?P<hours>\d+(?:\.\d*)?)h)?"
    r"(?:(?P<minutes>\d+(?:\.\d*)?)m(?!s))?"
    r"(?:(?P<seconds>\d+(?:\.\d*)?|\.\d+)s)?"
    r"(?:(?P<milliseconds>\d+(?:\.\d*)?)ms)?"
)


def parse_duration(value: object) -> datetime.timedelta:
    """Parse a duration such as ``1d12h3m0.5s`` into a ``timedelta``.

    The units are ``d``, ``h``, ``m``, ``s`` and ``ms``, each at most once and in
    that order, each with an integer or decimal count. A bare number, or a
    string holding one, is a count of seconds. ``0`` and ``0s`` are zero.

    Raises:
        ValueError: The value is negative, empty or not in this form.
    """
    if isinstance(value, bool):
        raise ValueError(_duration_message(value))
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_duration_text(value.strip().lower(), value)
    else:
        raise ValueError(_duration_message(value))
    if seconds < 0 or seconds != seconds:
        raise ValueError(_duration_message(value))
    return datetime.timedelta(seconds=seconds)


def _parse_duration_text(text: str, original: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    match = _DURATION.fullmatch(text)
    if not text or match is None or not any(match.groupdict().values()):
        raise ValueError(_duration_message(original))
    parts = {unit: float(count) for unit, count in match.groupdict().items() if count}
    return datetime.timedelta(**parts).total_seconds()


def _duration_message(value: object) -> str:
    return (
        f"invalid duration {value!r}: expected a number of seconds or a string such "
        "as '7d', '1d12h3m0.5s', '90s' or '250ms' (units d, h, m, s, ms, in that "
        "order)."
    )


# Jobs of one trainer ----------------------------------------------------------


class TrainingJobs(Generic[F]):
    """The futures one trainer instance started, by training id.

    A finished future stays listed for ``retention`` after it reached a terminal
    status, then is forgotten at the next call that touches the table. Retention
    never deletes a saved model. ``None`` keeps finished futures forever.

    Args:
        trainer_name: The owning trainer instance, for error messages.
        retention: How long finished futures stay listed.
    """

    def __init__(self, trainer_name: str, retention: datetime.timedelta | None) -> None:
        self.trainer_name = trainer_name
        self.retention = retention
        self._futures: dict[str, F] = {}
        # A heap of (monotonic expiry, tie-breaker, training id, future), so a
        # purge looks only at the entries that are due, not at every finished
        # job. An entry whose id now lists another future is skipped.
        self._expiry: list[tuple[float, int, str, weakref.ref[F]]] = []
        self._tie_breaker = itertools.count()
        self._lock = threading.Lock()

    def add(self, future: F) -> None:
        """List ``future`` under its id, replacing a terminal job with that id.

        The future's ``save_path`` is claimed in :data:`SAVE_PATH_CLAIMS` until
        the future is terminal.

        Raises:
            TrainingIdInUseError: A job with the same id is not terminal yet; it
                is left untouched.
            SavePathExistsError: An unfinished job in this process saves to the
                same path, or to a folder inside or around it.
        """
        self.purge()
        with self._lock:
            current = self._futures.get(future.id)
            if current is not None and not current.status.is_terminal:
                raise id_in_use(current, self.trainer_name)
            SAVE_PATH_CLAIMS.claim(future)
            self._futures[future.id] = future
        if isinstance(future, BaseModelFuture):
            future.add_done_callback(self.finished)

    def get(self, training_id: str) -> F | None:
        """Return the future listed under ``training_id``, or ``None``."""
        self.purge()
        future = self._futures.get(training_id)
        if future is None or self._expired(future):
            return None
        return future

    def __iter__(self) -> Iterator[F]:
        self.purge()
        with self._lock:
            futures = list(self._futures.values())
        return iter([future for future in futures if not self._expired(future)])

    def _expired(self, future: F) -> bool:
        # The retention clock starts in a done callback, which may run just
        # after a waiter wakes up; the completion time settles that race.
        if self.retention is None or not future.status.is_terminal:
            return False
        completed = future.info().completion_time
        now = datetime.datetime.now(datetime.timezone.utc)
        return completed is not None and completed + self.retention <= now

    def __len__(self) -> int:
        return len(self._futures)

    def finished(self, future: ModelFuture) -> None:
        """Start the retention clock of ``future``; call it once it is terminal.

        :meth:`add` arranges the call for a :class:`BaseModelFuture`. It also
        releases the future's save path.
        """
        SAVE_PATH_CLAIMS.release(future)
        if self.retention is None:
            return
        expiry = time.monotonic() + self.retention.total_seconds()
        with self._lock:
            listed = self._futures.get(future.id)
            if listed is future:
                tie_breaker = next(self._tie_breaker)
                entry = (expiry, tie_breaker, future.id, weakref.ref(listed))
                heapq.heappush(self._expiry, entry)

    def purge(self) -> None:
        """Forget the finished futures whose retention has passed."""
        expiry = self._expiry
        if not expiry or expiry[0][0] > time.monotonic():
            return
        now = time.monotonic()
        forgotten = 0
        with self._lock:
            while expiry and expiry[0][0] <= now:
                _, _, training_id, future_ref = heapq.heappop(expiry)
                listed = self._futures.get(training_id)
                if listed is not None and listed is future_ref():
                    del self._futures[training_id]
                    forgotten += 1
        if forgotten:
            log.debug(
                "Trainer %r forgot %d finished training(s)",
                self.trainer_name,
                forgotten,
            )


def unknown_training(training_id: str, trainers: list[str]) -> TrainingError:
    """Build the :class:`TrainingNotFoundError` for an id that no trainer lists."""
    from ..errors import TrainingNotFoundError

    asked = ", ".join(repr(name) for name in trainers) or "(none)"
    return TrainingNotFoundError(
        f"No training with id {training_id!r}; trainers asked: {asked}. The id may "
        "be mistyped, belong to another process, or have been forgotten after the "
        "trainer's retention_duration."
    )


class TrainingIndex:
    """The trainings a manager started: training id to future and trainer.

    Both are held weakly, so an entry goes away once the trainer forgets the
    future (after its retention) and the caller drops it.
    """

    def __init__(self) -> None:
        import weakref

        self._futures: weakref.WeakValueDictionary[str, ModelFuture] = (
            weakref.WeakValueDictionary()
        )
        self._owners: weakref.WeakKeyDictionary[ModelFuture, ModelTrainer] = (
            weakref.WeakKeyDictionary()
        )
        self.lock = threading.RLock()

    def record(self, future: ModelFuture, trainer: ModelTrainer) -> None:
        """Remember that ``trainer`` runs ``future``."""
        with self.lock:
            self._futures[future.id] = future
            self._owners[future] = trainer

    def owner(self, training_id: str) -> ModelTrainer | None:
        """Return the trainer of the recorded job ``training_id``, or ``None``."""
        with self.lock:
            future = self._futures.get(training_id)
            return None if future is None else self._owners.get(future)

    def check_free(self, training_id: str) -> None:
        """Raise when a job with ``training_id`` is recorded and not terminal.

        Raises:
            TrainingIdInUseError: That job is still queued or running.
        """
        with self.lock:
            future = self._futures.get(training_id)
            trainer = None if future is None else self._owners.get(future)
        if future is not None and not future.status.is_terminal:
            owner = trainer.instance_name if trainer is not None else "(unknown)"
            raise id_in_use(future, owner)


def id_in_use(future: ModelFuture, trainer_name: str) -> TrainingIdInUseError:
    """Build the error for a training id whose job ``future`` is not terminal."""
    return TrainingIdInUseError(
        f"training id {future.id!r} belongs to a job of trainer {trainer_name!r} "
        f"that is still {future.status.value}. Wait for it or cancel it before "
        "reusing the id, or pass another training_id."
    )
