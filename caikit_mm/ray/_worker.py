"""Code that runs on the Ray cluster for the RAY trainer, in a task or a job.

It imports neither Ray nor anything heavy at the top: Ray workers import this
module to run :func:`train_in_task`, and the job entrypoint imports it first.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ..model_management._training_common import discard_folder, make_temp_folder
from ..model_management.training import run_train

if TYPE_CHECKING:
    from ..modules import ModuleBase

log = logging.getLogger(__name__)

# First value a training task yields, so the caller sees that it started.
STARTED: Final = "caikit_mm.training.started"


def train_in_task(
    module_class: type[ModuleBase],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    final_path: str | None,
    upload: UploadTarget | None = None,
) -> Iterator[Any]:
    """Train in a Ray task: yield :data:`STARTED`, then the outcome.

    With ``final_path`` the model is saved into a new temporary folder beside it
    and the outcome is ``{"temp_path": folder}``; the caller renames the folder
    into place, so a job cancelled meanwhile never commits. With ``upload`` the
    model is saved into a temporary folder on this node, uploaded to its URL,
    and the outcome is ``{"url": url}``. Without either the outcome is the
    trained model itself.
    """
    yield STARTED
    model = run_train(module_class, args, kwargs, threading.Event())
    if upload is not None:
        yield {"url": save_to_url(model, upload)}
        return
    if final_path is None:
        yield model
        return
    yield {"temp_path": save_to_temp(model, final_path)}


@dataclass(frozen=True)
class UploadTarget:
    """Where a training on the cluster uploads its model.

    Attributes:
        url: The model's folder in the object store, such as
            ``s3://bucket/models/foo``.
        storage_config: Settings of the REMOTE finder that names the store
            (``endpoint_url``, ``region``, ``storage_options`` and so on).
        overwrite: Replace objects already stored under ``url``.
    """

    url: str
    storage_config: dict[str, Any]
    overwrite: bool = False


def check_upload_target(target: UploadTarget) -> None:
    """Check, before training starts, that a model may be uploaded to its URL.

    The upload checks again when it starts, because the URL may fill up while
    the model trains.

    Raises:
        SavePathExistsError: The URL already contains objects and
            ``overwrite`` is false.
        ModelNotFoundError: The URL's bucket does not exist.
        RemoteStorageError: The store cannot be read.
        ValueError: The URL names a whole bucket.
    """
    from ..errors import SavePathExistsError
    from ..storage.transfer import folder_exists, reject_bucket_root

    reject_bucket_root(target.url, "the RAY trainer does not save a model to")
    if target.overwrite:
        return

    if folder_exists(target.url, config=target.storage_config):
        raise SavePathExistsError(
            f"save path {target.url!r} already contains objects. Choose a new "
            "URL, use save_with_id=True for a folder per training, or pass "
            "overwrite=True to replace them when the new model is uploaded.",
            path=target.url,
        )


def save_to_url(model: ModuleBase, target: UploadTarget) -> str:
    """Save ``model`` into a temporary folder here and upload it to its URL.

    Returns:
        The URL. The temporary folder is deleted whether the upload works or
        not.

    Raises:
        RemoteStorageError: The URL already contains objects and ``overwrite`` is
            false, or the store cannot be written.
    """
    from ..storage.transfer import upload_folder

    temp = tempfile.mkdtemp(prefix="caikit-mm-upload-")
    try:
        model.save(temp)
        upload_folder(
            temp,
            target.url,
            config=target.storage_config,
            overwrite=target.overwrite,
        )
    finally:
        discard_folder(temp)
    return target.url


def delete_canceled_upload(training_id: str, target: UploadTarget) -> None:
    """Delete the model that a training uploaded before it was canceled.

    Runs in the caller. A failure is logged, not raised, because the training
    is already CANCELED.
    """
    from ..errors import CaikitMMError
    from ..storage.transfer import delete_folder

    try:
        deleted = delete_folder(target.url, config=target.storage_config)
    except (CaikitMMError, OSError, ValueError) as exc:
        log.warning(
            "Training %s was canceled after it uploaded its model to %s, and "
            "deleting that model failed: %s",
            training_id,
            target.url,
            exc,
        )
        return
    log.info(
        "Training %s was canceled after its upload finished; deleted %d files "
        "under %s",
        training_id,
        deleted,
        target.url,
    )


def save_to_temp(model: ModuleBase, final_path: str) -> str:
    """Save ``model`` into a new temporary folder beside ``final_path``.

    Returns:
        The temporary folder. A failed or interrupted save deletes it.
    """
    temp = make_temp_folder(final_path)
    try:
        model.save(temp)
    except BaseException:
        discard_folder(temp)
        raise
    return temp
