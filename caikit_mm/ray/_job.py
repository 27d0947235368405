"""Job mode of the RAY trainer: the training is a Ray job on the cluster.

The submitter pickles the job's payload (the module class, the arguments and
the final save path) and submits ``python -m caikit_mm.ray._job_entrypoint``
through the job submission API. For a folder the payload is a hidden file
beside the save path, which the cluster reaches. For an object-store URL it
is a file in a package folder that the job's ``runtime_env`` ships as one of
its ``py_modules``, because the store is no file system that the entrypoint
can open. The submission id is derived from the training
id, so a second submission of the same training finds the first job and
follows it instead of starting another.

A daemon thread per job polls the job's status. When the job ends, its log is
read for the record line that the entrypoint prints: a job that exits 0
without a success record is ERRORED, and an error record brings back the
original exception.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shlex
import shutil
import tempfile
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Final

from ..errors import TrainingError, TrainingIdInUseError, TrainingProcessError
from ..model_management._training_common import check_save_path
from ..model_management.training import BaseModelFuture, TrainingStatus
from . import _records
from ._cluster import (
    auth_headers,
    import_job_client,
    probe,
    split_host_port,
)
from ._placement import WarningSchedule, describe_request, requested_resources
from ._worker import UploadTarget, check_upload_target, delete_canceled_upload
from .trainer import is_url

if TYPE_CHECKING:
    from ..modules import ModuleBase
    from ._settings import ClusterSettings
    from .trainer import RayModelTrainer

log = logging.getLogger(__name__)

SUBMISSION_PREFIX: Final = "caikit_mm-"
_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]+")
# Job metadata keys; Ray stores metadata as strings.
META_TRAINING_ID: Final = "caikit_mm.training_id"
META_MODULE: Final = "caikit_mm.module"
META_SAVE_PATH: Final = "caikit_mm.save_path"
META_TRAINER: Final = "caikit_mm.trainer"
PAYLOAD_MARKER: Final = ".job-"
# The payload's package for py_modules: <prefix><hex>/<PAYLOAD_FILE>.
PAYLOAD_PACKAGE_PREFIX: Final = "caikit_mm_job_payload_"
PAYLOAD_FILE: Final = "payload.pkl"
# First pause between status requests; it doubles up to poll_interval.
FIRST_POLL_SECONDS: Final = 0.05
# How long a canceled job may take to end, beyond the lost-contact limit,
# before its uploaded model is left in place. Ray kills a stopped job's
# entrypoint after RAY_JOB_STOP_WAIT_TIME_S, 3 s by default in Ray 2.x.
STOP_WAIT_SECONDS: Final = 30.0


def submission_id(training_id: str) -> str:
    """Return the Ray job submission id of a training.

    An id made only of letters, digits, ``_``, ``.`` and ``-`` is kept as it
    is after a prefix. Any other id is reduced to those characters and gets a
    digest of the original, so two ids never share a submission id.
    """
    if _SAFE_ID.fullmatch(training_id):
        return SUBMISSION_PREFIX + training_id
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", training_id)[:80]
    digest = hashlib.sha256(training_id.encode("utf-8")).hexdigest()[:16]
    return f"{SUBMISSION_PREFIX}{safe}-{digest}"


class JobClient:
    """The job server of a cluster, with errors that name its address.

    Args:
        cluster: The trainer's cluster settings; ``address`` is the job server
            (``http://host:8265``), a ``ray://`` address, or ``""``/``auto``
            for ``RAY_API_SERVER_ADDRESS``, ``RAY_ADDRESS`` or a cluster
            running on this machine.
        tls_verify: Verify the server's TLS certificate: a bool or the path
            of a CA bundle.

    Raises:
        TrainingError: The job server cannot be reached.
    """

    def __init__(self, cluster: ClusterSettings, tls_verify: bool | str) -> None:
        self.cluster = cluster
        self.address = cluster.address or os.environ.get("RAY_API_SERVER_ADDRESS", "")
        client_class = import_job_client()
        from ray.exceptions import RayError

        # OSError covers requests' connection errors; RayError covers
        # AuthenticationError (a missing or wrong token).
        self._errors: tuple[type[BaseException], ...] = (
            OSError,
            RuntimeError,
            ValueError,
            RayError,
        )
        host, port = split_host_port(self.address) if self.address else (None, None)
        if host is not None and port is not None and self.address != "auto":
            probe(self.address, cluster.connect_timeout, cluster.owner, TrainingError)
        try:
            self._client = client_class(
                self.address or None, headers=auth_headers(cluster), verify=tls_verify
            )
        except self._errors as exc:
            raise TrainingError(
                f"Could not connect {cluster.owner} to the Ray job server at "
                f"{self.describe()}: {type(exc).__name__}: {_first_line(exc)}. Check "
                "that the cluster runs with its dashboard, that address names its "
                "job server (such as http://head:8265), and, for a cluster with "
                "token authentication, that auth_token_env or auth_token_file "
                "provides its token."
            ) from exc

    def describe(self) -> str:
        """Describe the job server address for messages."""
        if self.address:
            return repr(self.address)
        return "'' (RAY_ADDRESS, or a Ray cluster running on this machine)"

    def submit(self, retries: int, **options: Any) -> str:
        """Submit a job, retrying ``retries`` times after a connection error.

        Raises:
            TrainingError: The server rejected the job, or every try failed
                to reach it. A rejection because the submission id exists is
                a ``TrainingIdInUseError``.
        """
        sid = options["submission_id"]
        for attempt in range(retries + 1):
            try:
                return str(self._client.submit_job(**options))
            except OSError as exc:
                if attempt == retries:
                    raise self._error(f"submitting job {sid!r}", exc) from exc
                log.warning(
                    "Submitting Ray job %s to %s failed (%s); retry %d of %d",
                    sid,
                    self.describe(),
                    exc,
                    attempt + 1,
                    retries,
                )
                time.sleep(min(2.0**attempt, 10.0))
            except self._errors as exc:
                if "already exists" in str(exc):
                    raise TrainingIdInUseError(
                        f"Ray job {sid!r} already exists on {self.describe()}"
                    ) from exc
                raise self._error(f"submitting job {sid!r}", exc) from exc
        raise AssertionError("unreachable")

    def job_info(self, sid: str) -> Any | None:
        """Return the job's ``JobDetails``, or ``None`` when the server has no
        job with this submission id."""
        try:
            return self._client.get_job_info(sid)
        except self._errors as exc:
            if isinstance(exc, RuntimeError) and "status code 404" in str(exc):
                return None
            raise self._error(f"reading job {sid!r}", exc) from exc

    def logs(self, sid: str) -> str:
        """Return the whole log of a job, or ``""`` when it cannot be read."""
        try:
            return str(self._client.get_job_logs(sid))
        except self._errors as exc:
            log.warning("Could not read the log of Ray job %s: %s", sid, exc)
            return ""

    def stop(self, sid: str) -> None:
        """Ask the cluster to stop a job.

        Raises:
            TrainingError: The request failed.
        """
        try:
            self._client.stop_job(sid)
        except self._errors as exc:
            raise self._error(f"stopping job {sid!r}", exc) from exc

    def _error(self, action: str, error: BaseException) -> TrainingError:
        return TrainingError(
            f"{action} on the Ray job server at {self.describe()} failed: "
            f"{type(error).__name__}: {_first_line(error)}"
        )


class RayJobFuture(BaseModelFuture):
    """A training that runs as a Ray job, followed by polling its status.

    Cancelling marks the training CANCELED at once and requests that the
    cluster stop the job. Ray sends the entrypoint SIGTERM, which stops ``train`` and
    never commits its model, and kills it after the cluster's
    ``RAY_JOB_STOP_WAIT_TIME_S``. A job that uploads to a URL and had finished
    its upload when the cancel arrived has its model deleted.
    """

    def __init__(
        self,
        trainer: RayModelTrainer,
        training_id: str,
        save_path: str,
        module_name: str,
        payload_path: str | None = None,
        upload: UploadTarget | None = None,
    ) -> None:
        super().__init__(training_id, save_path, trainer.instance_name)
        self.submission_id = submission_id(training_id)
        self.module_name = module_name
        self._trainer = trainer
        self._client = trainer.job_client()
        self._payload_path = payload_path
        self._payload_package: str | None = None
        self._upload = upload
        self._model: ModuleBase | None = None
        self._load_lock = threading.Lock()

    # Submission, in the caller's thread -----------------------------------------

    @classmethod
    def submit(
        cls,
        trainer: RayModelTrainer,
        module_class: type[ModuleBase],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        training_id: str,
        final_path: str,
        overwrite: bool,
        upload: UploadTarget | None = None,
    ) -> RayJobFuture:
        """Submit the training as a Ray job, or follow the job already submitted
        for this training id, and return its future (not yet started).

        Raises:
            TrainingIdInUseError: The cluster has a job for this training id
                that trains another module or saves elsewhere.
            SavePathExistsError: No job exists yet, ``final_path`` contains
                something, and ``overwrite`` is false.
            TypeError: The module class or an argument cannot be serialized.
            TrainingError: The job server cannot be reached or rejected the job.
            RemoteStorageError: ``upload`` names a store that cannot be read.
        """
        client = trainer.job_client()
        sid = submission_id(training_id)
        module_name = f"{module_class.__module__}.{module_class.__qualname__}"
        existing = client.job_info(sid)
        if existing is not None:
            return cls._follow_existing(trainer, existing, training_id, final_path)
        if upload is None:
            check_save_path(final_path, overwrite)
        else:
            check_upload_target(upload)
        data = pickle_payload(
            module_class, args, kwargs, training_id, final_path, overwrite, upload
        )
        future = cls(trainer, training_id, final_path, module_name, upload=upload)
        try:
            future._stage_payload(data)
            client.submit(trainer.max_retries, **future._submit_options())
        except TrainingIdInUseError:
            # Another submission of this training won the race: follow it.
            future._remove_payload()
            existing = client.job_info(sid)
            if existing is None:
                raise
            return cls._follow_existing(trainer, existing, training_id, final_path)
        except BaseException:
            future._remove_payload()
            raise
        finally:
            # Ray has copied the package folder to the cluster by now.
            future._remove_payload_package()
        log.info(
            "Submitted training %s as Ray job %s to %s",
            training_id,
            sid,
            client.describe(),
        )
        return future

    @classmethod
    def _follow_existing(
        cls, trainer: RayModelTrainer, details: Any, training_id: str, final_path: str
    ) -> RayJobFuture:
        metadata = dict(getattr(details, "metadata", None) or {})
        known_path = metadata.get(META_SAVE_PATH)
        if metadata.get(META_TRAINING_ID) != training_id or known_path != final_path:
            raise TrainingIdInUseError(
                f"The Ray job {submission_id(training_id)!r} for training id "
                f"{training_id!r} already exists on {trainer.job_client().describe()} "
                f"and saves to {known_path!r}, not {final_path!r}. Pass another "
                "training_id, or the same save path to follow that job."
            )
        log.info(
            "Training %s is already Ray job %s (%s); following it",
            training_id,
            submission_id(training_id),
            getattr(details, "status", "unknown status"),
        )
        return cls(trainer, training_id, final_path, metadata.get(META_MODULE, ""))

    def _stage_payload(self, data: bytes) -> None:
        """Write the payload where the job reads it: beside a folder save
        path, or into a package folder for ``py_modules`` for a URL."""
        assert self.save_path is not None
        if self._upload is None:
            self._payload_path = write_payload_file(data, self.save_path)
        else:
            self._payload_package = write_payload_package(data)

    def _remove_payload(self) -> None:
        _remove_quietly(self._payload_path)
        self._payload_path = None

    def _remove_payload_package(self) -> None:
        if self._payload_package is not None:
            shutil.rmtree(os.path.dirname(self._payload_package), ignore_errors=True)

    def _entrypoint(self) -> str:
        command = [
            shlex.quote(self._trainer.python_executable),
            "-m",
            "caikit_mm.ray._job_entrypoint",
        ]
        if self._payload_package is not None:
            package = os.path.basename(self._payload_package)
            command += ["--py-module", shlex.quote(package)]
        else:
            command.append(shlex.quote(str(self._payload_path)))
        return " ".join(command)

    def _runtime_env(self) -> dict[str, Any]:
        runtime_env = dict(self._trainer.cluster.runtime_env or {})
        if self._payload_package is not None:
            modules = list(runtime_env.get("py_modules") or [])
            runtime_env["py_modules"] = [*modules, self._payload_package]
        return runtime_env

    def _submit_options(self) -> dict[str, Any]:
        cluster = self._trainer.cluster
        entrypoint = self._entrypoint()
        options: dict[str, Any] = {
            "entrypoint": entrypoint,
            "submission_id": self.submission_id,
            "metadata": {
                META_TRAINING_ID: self.id,
                META_MODULE: self.module_name,
                META_SAVE_PATH: str(self.save_path),
                META_TRAINER: self.trainer_name,
            },
            "entrypoint_num_cpus": cluster.num_cpus,
            "entrypoint_num_gpus": cluster.num_gpus,
        }
        if cluster.memory:
            options["entrypoint_memory"] = cluster.memory
        if cluster.resources:
            options["entrypoint_resources"] = dict(cluster.resources)
        runtime_env = self._runtime_env()
        if runtime_env:
            options["runtime_env"] = runtime_env
        return options

    def start(self) -> None:
        """Start the thread that follows the job."""
        threading.Thread(
            target=self._watch, name=f"caikit-mm-ray-job-{self.id}", daemon=True
        ).start()

    # The watcher thread ---------------------------------------------------------

    def _watch(self) -> None:
        started = time.perf_counter()
        try:
            details = self._poll_until_terminal()
            if details is not None:
                self._finish_from(details)
            elif self._upload is not None:
                self._delete_upload_after_cancel()
        except Exception as exc:  # noqa: BLE001 - any failure ends the job
            self._fail(exc)
        finally:
            _remove_quietly(self._payload_path)
        self._log_outcome(started)

    def _delete_upload_after_cancel(self) -> None:
        """Wait for a canceled job to end, and delete its model when the job
        reports that its upload finished."""
        assert self._upload is not None
        deadline = time.monotonic() + self._lost_limit() + STOP_WAIT_SECONDS
        while time.monotonic() < deadline:
            details = self._client.job_info(self.submission_id)
            status = str(getattr(details, "status", ""))
            if details is None or _is_terminal(status):
                break
            time.sleep(self._trainer.poll_interval)
        else:
            log.warning(
                "Canceled Ray job %s did not end within %.0f s; a model it uploads "
                "to %s afterwards stays there",
                self.submission_id,
                self._lost_limit() + STOP_WAIT_SECONDS,
                self._upload.url,
            )
            return
        record = _records.find_record(self._client.logs(self.submission_id), self.id)
        if record is not None and record.get("ok"):
            delete_canceled_upload(self.id, self._upload)

    def _poll_until_terminal(self) -> Any | None:
        """Follow the job's status; return its details once terminal, or
        ``None`` when this future became terminal first (a cancel)."""
        delay = FIRST_POLL_SECONDS
        lost_since: float | None = None
        pending: WarningSchedule | None = WarningSchedule(time.monotonic())
        while not self.done():
            try:
                details = self._client.job_info(self.submission_id)
                lost_since = None
            except TrainingError:
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since > self._lost_limit():
                    raise
                details = None
            if details is None and lost_since is None:
                raise TrainingProcessError(
                    f"Ray job {self.submission_id!r} of training {self.id!r} "
                    f"disappeared from {self._client.describe()}; it may have been "
                    "deleted, or the cluster restarted."
                )
            status = str(getattr(details, "status", ""))
            if status.endswith("PENDING") and pending is not None:
                if pending.due(time.monotonic()):
                    log.warning("%s", self._pending_message(details, pending.since))
            elif status.endswith("RUNNING"):
                self._mark_started(pending)
                pending = None
            elif _is_terminal(status):
                return details
            self._done.wait(delay)
            delay = min(delay * 2, self._trainer.poll_interval)
        return None

    def _mark_started(self, pending: WarningSchedule | None) -> None:
        """Mark the training RUNNING, and log the wait if it was warned about."""
        if self._mark_running() and pending is not None and pending.warned:
            log.info(
                "Training %s started as Ray job %s after %.1f s",
                self.id,
                self.submission_id,
                time.monotonic() - pending.since,
            )

    def _pending_message(self, details: Any, since: float) -> str:
        """Describe a PENDING job with what the job server reports about it.

        The job API does not report the cluster's free resources, so the
        message cannot tell whether a node could ever fit the request.
        """
        cluster = self._trainer.cluster
        requested = requested_resources(cluster.ray_resources())
        reported = str(getattr(details, "message", "") or "").strip()
        return (
            f"Training {self.id} (Ray job {self.submission_id}) has been PENDING "
            f"for {time.monotonic() - since:.0f} s: its entrypoint has not "
            f"started. {describe_request(requested)} The job server reports: "
            f"{reported or '(no message)'} The training stays QUEUED until the "
            "job starts, and Ray fails a job that stays PENDING for longer than "
            "the cluster's RAY_JOB_START_TIMEOUT_SECONDS (900 s by default in "
            "Ray 2.x). Check the cluster's free resources with `ray status`, "
            f"cancel the training, or change num_cpus, num_gpus, memory or "
            f"resources of {cluster.owner}."
        )

    def _lost_limit(self) -> float:
        return max(
            self._trainer.cluster.connect_timeout, 5 * self._trainer.poll_interval
        )

    def _finish_from(self, details: Any) -> None:
        status = str(details.status).rsplit(".", 1)[-1]
        if status == "STOPPED":
            if self._finish(TrainingStatus.CANCELED, None):
                log.info("Ray job %s was stopped outside caikit_mm", self.submission_id)
                self._run_callbacks()
            return
        logs = self._client.logs(self.submission_id)
        record = _records.find_record(logs, self.id)
        if status == "SUCCEEDED" and record is not None and record.get("ok"):
            self._mark_running()
            self._complete()
            return
        self._fail(self._job_error(status, details, record, logs))

    def _job_error(
        self, status: str, details: Any, record: dict[str, Any] | None, logs: str
    ) -> BaseException:
        if record is not None and not record.get("ok"):
            error = _records.rebuild_error(record)
            traceback_text = str(record.get("traceback") or "")
            if error is None:
                error = TrainingProcessError(
                    f"training {self.id!r} failed in Ray job {self.submission_id!r} "
                    f"with {record.get('type')}: {record.get('message')} (the "
                    "exception could not be sent back as it is)",
                    original_type=str(record.get("type") or ""),
                    child_traceback=traceback_text,
                )
            if hasattr(error, "add_note"):
                error.add_note(f"Traceback in the Ray job:\n{traceback_text}")
            return error
        exit_code = getattr(details, "driver_exit_code", None)
        reason = (
            "exited 0 without reporting a saved model"
            if status == "SUCCEEDED"
            else f"ended {status}: {getattr(details, 'message', '') or 'no message'}"
        )
        tail = _records.log_tail(logs)
        return TrainingProcessError(
            f"training {self.id!r} failed: Ray job {self.submission_id!r} {reason}. "
            f"Its entrypoint was {getattr(details, 'entrypoint', '')!r}; check that "
            f"python_executable of trainer {self.trainer_name!r} runs a Python with "
            f"caikit_mm installed. Last lines of the job's log:\n{tail}",
            exit_code=exit_code if isinstance(exit_code, int) else None,
            child_traceback=tail,
        )

    def _log_outcome(self, started: float) -> None:
        status = self.status
        if status is TrainingStatus.COMPLETED:
            log.info(
                "Training %s completed as Ray job %s in %.3f s, saved to %s",
                self.id,
                self.submission_id,
                time.perf_counter() - started,
                self.save_path,
            )
        elif status is TrainingStatus.ERRORED:
            log.warning(
                "Training %s failed as Ray job %s: %s",
                self.id,
                self.submission_id,
                self.info().errors[0],
            )

    # Cancel and load ------------------------------------------------------------

    def _cancel_job(self) -> None:
        try:
            self._client.stop(self.submission_id)
        except TrainingError as exc:
            # cancel() cannot raise once the training is CANCELED, so the
            # failure is logged; the job may still run on the cluster.
            log.error("Could not stop Ray job %s: %s", self.submission_id, exc)

    def _load_model(self) -> ModuleBase:
        assert self.save_path is not None
        with self._load_lock:
            if self._model is None:
                url = is_url(self.save_path)
                finder = self._trainer.storage_finder if url else None
                self._model = self._trainer.manager.load(
                    self.save_path, finder=finder, cache=False
                )
            return self._model


def attach(trainer: RayModelTrainer, training_id: str) -> RayJobFuture | None:
    """Return a future that follows the cluster's job of ``training_id``, or
    ``None`` when the cluster has no such job or it is not a caikit_mm training."""
    details = trainer.job_client().job_info(submission_id(training_id))
    if details is None:
        return None
    metadata = dict(getattr(details, "metadata", None) or {})
    save_path = metadata.get(META_SAVE_PATH)
    if metadata.get(META_TRAINING_ID) != training_id or not save_path:
        return None
    return RayJobFuture(trainer, training_id, save_path, metadata.get(META_MODULE, ""))


# Payload ----------------------------------------------------------------------


def pickle_payload(
    module_class: type[ModuleBase],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    training_id: str,
    final_path: str,
    overwrite: bool,
    upload: UploadTarget | None = None,
) -> bytes:
    """Pickle the job's payload with Ray's cloudpickle, so that a module class
    defined in ``__main__`` travels by value.

    Raises:
        TypeError: The module class or an argument cannot be pickled.
    """
    from ray import cloudpickle

    payload = {
        "training_id": training_id,
        "module_class": module_class,
        "args": args,
        "kwargs": kwargs,
        "final_path": final_path,
        "overwrite": overwrite,
        "upload": upload,
        "log_level": _log_level(),
    }
    try:
        data = cloudpickle.dumps(payload)  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise TypeError(
            f"training {training_id!r} cannot send {module_class.__qualname__} or "
            f"its arguments to a Ray job ({type(exc).__name__}: {exc}). Pass "
            "picklable values such as data, paths and models."
        ) from exc
    return bytes(data)


def write_payload_file(data: bytes, final_path: str) -> str:
    """Write a pickled payload to a hidden file beside ``final_path`` and
    return its path.

    It is written under a temporary name and renamed, so the entrypoint never
    reads half a payload.
    """
    parent, name = os.path.split(final_path)
    os.makedirs(parent, exist_ok=True)
    path = os.path.join(parent, f".{name}{PAYLOAD_MARKER}{uuid.uuid4().hex[:12]}")
    partial = path + ".partial"
    with open(partial, "wb") as stream:
        stream.write(data)
    os.replace(partial, path)
    return path


def write_payload_package(data: bytes) -> str:
    """Write a pickled payload into a new package folder for ``py_modules``
    and return the package folder.

    The package sits alone in a new temporary folder, which the caller
    deletes once Ray has copied the package to the cluster.
    """
    root = tempfile.mkdtemp(prefix="caikit-mm-job-")
    package = os.path.join(root, PAYLOAD_PACKAGE_PREFIX + uuid.uuid4().hex)
    os.mkdir(package)
    with open(os.path.join(package, PAYLOAD_FILE), "wb") as stream:
        stream.write(data)
    return package


def _log_level() -> int | None:
    root = logging.getLogger()
    return root.getEffectiveLevel() if root.handlers else None


def _remove_quietly(path: str | None) -> None:
    if path is None:
        return
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("Could not delete the Ray job payload %s: %s", path, exc)


def _is_terminal(status: str) -> bool:
    return status.rsplit(".", 1)[-1] in ("SUCCEEDED", "FAILED", "STOPPED")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
