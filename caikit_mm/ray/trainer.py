"""The RAY trainer: run a module's ``train`` on a Ray cluster.

Two modes share one future interface with the LOCAL trainer:

- ``task``: the training is one Ray task with the configured resources; this
  process stays connected to the cluster while it runs.
- ``job``: the training is a Ray job, submitted through the job submission API,
  which runs ``python -m caikit_mm.ray._job_entrypoint`` on the cluster. The
  job's submission id is derived from the training id, so a retried
  submission attaches to the existing job instead of starting a second one,
  and another process can follow the job by its training id.

The saved model must be reachable from the workers and from this process: a
path on this machine when the cluster runs here, a shared folder, or an
object-store URL such as ``s3://bucket/models/foo``, which the task or job
uploads the model to and ``load()`` reads back through the REMOTE finder named
by ``storage_finder``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final

from ..errors import TrainingError
from ..model_management._training_common import (
    TrainingJobs,
    build_save_path,
    check_local_save_folder,
    check_save_path,
    check_training_id,
    new_training_id,
    parse_duration,
    unknown_training,
)
from ..model_management.base import ModelTrainer, ValidationContext
from ..model_management.training import BaseModelFuture
from . import _settings as settings
from ._cluster import (
    check_reachable,
    cluster_is_local,
    connect,
    describe_address,
    effective_address,
    is_local_host,
    split_host_port,
)
from ._worker import UploadTarget, check_upload_target

if TYPE_CHECKING:
    from ..modules import ModuleBase
    from ._job import JobClient

log = logging.getLogger(__name__)

_CHECKS: Final[Mapping[str, settings.Check]] = {
    **settings.CLUSTER_CHECKS,
    "mode": settings.check_string,
    "max_retries": settings.check_count(0),
    "python_executable": settings.check_nonempty_string,
    "poll_interval": settings.check_duration,
    "cancel_grace_period": settings.check_duration,
    "retention_duration": settings.check_optional_duration,
    "storage_finder": settings.check_nonempty_string,
}


class RayModelTrainer(ModelTrainer):
    """Train modules on a Ray cluster, as Ray tasks or as Ray jobs.

    Config:
        address: ``""`` starts or joins a local Ray instance; ``auto`` joins a
            running one; ``host:port`` or ``ray://host:port``. In job mode, the
            job server: ``http://host:8265`` (a ``ray://`` address works too).
        mode: ``task`` or ``job``.
        connect_timeout: How long a TCP connection to the cluster may take.
        num_cpus, num_gpus, memory, resources: Reserved by each training.
        runtime_env: Ray runtime environment of each training.
        max_retries: Task mode: retries after the worker or node died. Job
            mode: retries of the submission request after a connection error.
            An exception raised by ``train`` is never retried.
        auth_token_env, auth_token_file: Where the cluster's token is read.
        shared_paths: Folders every node mounts, for save paths on remote
            clusters.
        init_options: Extra ``ray.init`` arguments when this process starts Ray.
        python_executable: Job mode: the command that runs Python on the cluster.
        poll_interval: Job mode: the longest pause between status requests.
        tls_verify: Job mode: verify the job server's TLS certificate (``true``,
            ``false`` or a CA bundle path).
        cancel_grace_period: How long a cancelled training may take to stop
            before it is killed.
        retention_duration: How long finished futures stay listed.
        storage_finder: The REMOTE finder whose settings upload a model to a
            ``save_path`` URL and load it back.
    """

    name: ClassVar[str] = "RAY"

    def __init__(self, config: Mapping[str, Any], instance_name: str) -> None:
        super().__init__(config, instance_name)
        values = {**settings.TRAINER_DEFAULTS, **config}
        self.cluster = settings.ClusterSettings.from_config(
            config, f"trainer {instance_name!r}"
        )
        self.mode = str(values["mode"])
        self.max_retries = int(values["max_retries"])
        self.python_executable = str(values["python_executable"])
        self.poll_interval = settings.seconds(values["poll_interval"])
        self.cancel_grace_period = settings.seconds(values["cancel_grace_period"])
        self.tls_verify: bool | str = values["tls_verify"]
        self.storage_finder = str(values["storage_finder"])
        retention = values["retention_duration"]
        self._jobs: TrainingJobs[BaseModelFuture] = TrainingJobs(
            instance_name,
            None if retention in (None, "") else parse_duration(retention),
        )
        self._client: JobClient | None = None
        self._client_lock = threading.Lock()

    @classmethod
    def validate_config(
        cls, config: Mapping[str, Any], context: ValidationContext
    ) -> None:
        checks = {**_CHECKS, "tls_verify": _check_tls_verify}
        settings.validate(
            config, context, settings.TRAINER_DEFAULTS, checks, "RAY trainer"
        )
        mode = config.get("mode", "task")
        if mode not in settings.MODES:
            raise context.error(
                f"mode must be one of {', '.join(settings.MODES)}, got {mode!r}.",
                "mode",
            )

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
    ) -> BaseModelFuture:
        """Start training ``module_class`` on the cluster and return its future.

        Args:
            module_class: The module whose ``train`` runs. Ray workers import
                it by name, so its Python module must be importable on the
                cluster (installed, or shipped with ``runtime_env``); a class
                defined in a script's ``__main__`` is sent by value.
            *args: Positional arguments of ``module_class.train``.
            save_path: Base folder of the saved model, which the workers and
                this process both reach, or an object-store URL that the task
                or job uploads the model to. ``None`` (task mode only) returns
                the model through Ray instead of saving it.
            save_with_id: Save under ``save_path/<training id>``.
            model_name: Name of the model's own folder, last in the path.
            training_id: The job's id; ``<trainer name>-<uuid4 hex>`` when
                ``None``. In job mode an id names one job on the cluster:
                training again with an id the cluster knows attaches to it.
            overwrite: Replace a model that already exists at the final path.
            **kwargs: Keyword arguments of ``module_class.train``.

        Raises:
            ValueError: An invalid ``training_id``, ``save_path`` or
                ``model_name``; a save path the cluster cannot reach; job mode
                without ``save_path``; a URL while ``storage_finder`` names no
                REMOTE finder.
            SavePathExistsError: The final path or URL contains something and
                ``overwrite`` is false.
            RemoteStorageError: A ``save_path`` URL cannot be read.
            TrainingIdInUseError: ``training_id`` belongs to a job of this
                trainer that is not terminal, or (job mode) names a job on the
                cluster that trains something else.
            TrainingError: The cluster or its job server cannot be reached, or
                the job submission failed.
        """
        if training_id is None:
            training_id = new_training_id(self.instance_name)
        else:
            check_training_id(training_id)
        final_path = self._final_path(save_path, training_id, save_with_id, model_name)
        upload = None
        if final_path is not None and is_url(final_path):
            upload = UploadTarget(final_path, self.storage_config(), overwrite)
        # Job mode checks the save path after looking for a job of this
        # training id, whose finished model may already be there.
        if upload is not None and self.mode != "job":
            check_upload_target(upload)
        elif final_path is not None and self.mode != "job":
            check_save_path(final_path, overwrite)
        if self.mode == "job":
            future = self._job_future(
                module_class, args, kwargs, training_id, final_path, overwrite, upload
            )
        else:
            future = self._task_future(
                module_class, args, kwargs, training_id, final_path, overwrite, upload
            )
        self._jobs.add(future)
        log.debug(
            "Starting training %s of %s on trainer %r (Ray %s mode, %s)",
            training_id,
            module_class.__qualname__,
            self.instance_name,
            self.mode,
            describe_address(self.cluster.address),
        )
        try:
            future.start()  # type: ignore[attr-defined]
        except BaseException as exc:
            # A future that never started must not keep its id in use.
            future._fail(exc)
            raise
        return future

    def get_model_future(self, training_id: str) -> BaseModelFuture:
        """Return the future of a training of this trainer.

        In job mode a training another process submitted is found on the
        cluster by its id, and a future that follows that job is returned.

        Raises:
            TrainingNotFoundError: No such training.
        """
        future = self._jobs.get(training_id)
        if future is not None:
            return future
        if self.mode == "job":
            from . import _job

            attached = _job.attach(self, training_id)
            if attached is not None:
                self._jobs.add(attached)
                attached.start()
                return attached
        raise unknown_training(training_id, [self.instance_name])

    def list_futures(self) -> list[BaseModelFuture]:
        """List the futures this trainer still holds, running and finished."""
        return list(self._jobs)

    # Steps of train ---------------------------------------------------------------

    def _final_path(
        self,
        save_path: str | os.PathLike[str] | None,
        training_id: str,
        save_with_id: bool,
        model_name: str | None,
    ) -> str | None:
        if save_path is not None and is_url(os.fspath(save_path)):
            return self._final_url(
                os.fspath(save_path), training_id, save_with_id, model_name
            )
        if save_path is None and self.mode == "job":
            raise ValueError(
                f"trainer {self.instance_name!r} runs trainings as Ray jobs, which "
                "return the model by saving it, so it needs a save_path. Pass a "
                "folder that the cluster and this process both reach."
            )
        return build_save_path(save_path, training_id, save_with_id, model_name)

    def _final_url(
        self,
        save_path: str,
        training_id: str,
        save_with_id: bool,
        model_name: str | None,
    ) -> str:
        """Build ``save_path[/<training id>][/<model_name>]`` for a URL."""
        if model_name is not None and (
            not model_name or "/" in model_name or model_name in (".", "..")
        ):
            raise ValueError(
                f"model_name {model_name!r} must be one folder name, without '/'."
            )
        parts = [save_path.rstrip("/")]
        if save_with_id:
            parts.append(training_id)
        if model_name:
            parts.append(model_name)
        return "/".join(parts)

    def storage_config(self) -> dict[str, Any]:
        """Return the settings of the ``storage_finder`` REMOTE finder.

        Raises:
            ValueError: No finder of that name, or it is not a REMOTE finder.
        """
        finders = self.manager.config.section("finder")
        entry = finders.get(self.storage_finder)
        if entry is None or entry.get("type") != "REMOTE":
            found = "not configured" if entry is None else f"of type {entry['type']}"
            raise ValueError(
                f"trainer {self.instance_name!r} uploads models saved to a URL with "
                f"the settings of finder {self.storage_finder!r} (storage_finder), "
                f"which is {found}. Set storage_finder to a finder of type REMOTE, "
                "such as 's3'."
            )
        config: dict[str, Any] = settings.plain(entry.get("config") or {})
        return config

    def _task_future(
        self,
        module_class: type[ModuleBase],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        training_id: str,
        final_path: str | None,
        overwrite: bool,
        upload: UploadTarget | None = None,
    ) -> BaseModelFuture:
        from ._task import RayTaskFuture

        ray = connect(self.cluster, TrainingError)
        if final_path is not None and upload is None:
            check_reachable(
                final_path,
                cluster_local=cluster_is_local(ray),
                shared_paths=self.cluster.shared_paths,
                what="save_path",
                cluster=describe_address(self.cluster.address),
                owner=self.cluster.owner,
            )
            # This process renames the task's temporary folder into place.
            check_local_save_folder(final_path)
        return RayTaskFuture(
            self, module_class, args, kwargs, training_id, final_path, overwrite, upload
        )

    def _job_future(
        self,
        module_class: type[ModuleBase],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        training_id: str,
        final_path: str | None,
        overwrite: bool,
        upload: UploadTarget | None = None,
    ) -> BaseModelFuture:
        from . import _job

        assert final_path is not None
        if upload is None:
            check_reachable(
                final_path,
                cluster_local=self.job_server_is_local(),
                shared_paths=self.cluster.shared_paths,
                what="save_path",
                cluster=describe_address(self.cluster.address),
                owner=self.cluster.owner,
            )
        return _job.RayJobFuture.submit(
            self, module_class, args, kwargs, training_id, final_path, overwrite, upload
        )

    # Job server -------------------------------------------------------------------

    def job_client(self) -> JobClient:
        """Return this trainer's job server client, connecting on first use.

        Raises:
            TrainingError: The job server cannot be reached; the message names
                the address tried.
        """
        with self._client_lock:
            if self._client is None:
                from ._job import JobClient

                self._client = JobClient(self.cluster, self.tls_verify)
            return self._client

    def job_server_is_local(self) -> bool:
        """Tell whether the configured job server runs on this machine."""
        target = effective_address(self.cluster.address)
        target = os.environ.get("RAY_API_SERVER_ADDRESS", "") or target
        if not target:
            return True
        host, _ = split_host_port(target)
        return host is None or is_local_host(host)


def _check_tls_verify(value: Any, context: ValidationContext, key: str) -> None:
    if not isinstance(value, (bool, str)):
        raise context.error(
            "tls_verify must be true, false or the path of a CA bundle, got "
            f"{value!r}.",
            key,
        )


def is_url(path: str) -> bool:
    """Tell whether a save path is a URL such as ``s3://bucket/models``."""
    return "://" in path
