"""The TRANSFORMERS finder: a Hugging Face transformers save folder, no config.yml.

It recognizes a folder written by ``save_pretrained`` (``config.json`` with a
``model_type``, weights, tokenizer files), optionally with sentence-transformers
files, and returns an in-memory :class:`ModuleConfig` for the built-in
:class:`~caikit_mm.transformers.module.TransformersModule`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Hashable, Mapping
from typing import Any, ClassVar

from ..errors import ModelNotFoundError
from ..model_management.base import ValidationContext
from ..model_management.local_finder import LocalModelFinder
from ..modules import ModuleConfig
from . import _format, _runtime
from .module import MODULE_ID, FinderModuleConfig, TransformersModule

log = logging.getLogger(__name__)


class TransformersFinder(LocalModelFinder):
    """Find a transformers save folder and describe how to load it.

    Paths resolve as for the LOCAL finder. A folder that also contains
    ``config.yml`` is left to the LOCAL finder: this finder raises
    :class:`ModelNotFoundError`, so a MULTI finder moves on.

    Config:
        load_path: Base folder for relative identifiers, as for LOCAL.
        task_map: Architecture (``BertForMaskedLM``) or model type (``bert``)
            mapped to a task; consulted before the task the architecture
            implies. Architectures win over model types.
        device: ``cpu`` (default), ``cuda``, ``cuda:N``, ``mps`` or ``auto``.
        torch_dtype: ``auto`` (the checkpoint's own dtype, the default),
            ``float32``, ``float16``, ``bfloat16`` or ``float64``.
        trust_remote_code: Allow models whose ``auto_map`` runs Python code
            shipped in the model folder; ``false`` by default.
        download_finder: Name of the finder instance that downloads a remote
            folder (an identifier with ``://``) to local disk; ``""`` rejects
            remote identifiers. That finder's type must have a method
            ``fetch(model_path)`` that returns the local folder, as the REMOTE
            finder has.
    """

    name: ClassVar[str] = "TRANSFORMERS"
    config_keys: ClassVar[tuple[str, ...]] = (
        "load_path",
        "task_map",
        "device",
        "torch_dtype",
        "trust_remote_code",
        "download_finder",
    )

    def __init__(self, config: Mapping[str, Any], instance_name: str) -> None:
        super().__init__(config, instance_name)
        self._task_map = {
            str(k): str(v) for k, v in (config.get("task_map") or {}).items()
        }
        self._device = config.get("device") or _runtime.DEFAULT_DEVICE
        self._dtype = config.get("torch_dtype") or _runtime.DEFAULT_DTYPE
        self._trust = bool(config.get("trust_remote_code", False))
        self._download_finder = config.get("download_finder") or ""

    @classmethod
    def validate_config(
        cls, config: Mapping[str, Any], context: ValidationContext
    ) -> None:
        super().validate_config(config, context)
        _validate_task_map(config.get("task_map"), context)
        _validate_setting(config, "device", _runtime.check_device, context)
        _validate_setting(config, "torch_dtype", _runtime.check_dtype, context)
        trust = config.get("trust_remote_code")
        if trust is not None and not isinstance(trust, bool):
            raise context.error(
                f"trust_remote_code must be true or false, got {trust!r}.",
                "trust_remote_code",
            )
        _validate_download_finder(config.get("download_finder"), context)

    def find_model(
        self,
        model_path: Any,
        *,
        task: str | None = None,
        device: str | None = None,
        torch_dtype: str | None = None,
        **kwargs: Any,
    ) -> ModuleConfig:
        """Recognize the transformers folder ``model_path`` and describe its loading.

        Args:
            model_path: A folder, or a remote URL when ``download_finder`` is set.
            task: Load for this task instead of the configured or implied one.
            device: Load on this device instead of the configured one.
            torch_dtype: Load in this dtype instead of the configured one.
            **kwargs: Other load arguments, which the finder ignores.

        Raises:
            ModelNotFoundError: The path does not exist, is not a transformers
                folder, or contains ``config.yml`` (the LOCAL finder's format).
            ModelFormatError: The folder lacks weights or tokenizer files, needs
                remote code that the config does not trust, or has no known task.
            ValueError: ``device`` or ``torch_dtype`` is not a valid setting.
        """
        if device is not None:
            _runtime.check_device(device)
        if torch_dtype is not None:
            _runtime.check_dtype(torch_dtype)
        folder = self._local_folder(model_path)
        model = _format.inspect_folder(folder, finder=self.instance_name)
        _format.check_remote_code(model, self._trust)
        chosen_task = _format.resolve_task(model, self._task_map, task)
        log.debug(
            "Finder %r found a %s model (%s) for %s in %s",
            self.instance_name,
            model.model_type,
            ", ".join(model.architectures) or "no architectures",
            chosen_task,
            model.path,
        )
        return FinderModuleConfig(
            self._describe(model, chosen_task, device, torch_dtype),
            model.path,
            source=os.path.join(model.model_dir, _format.HF_CONFIG_FILE),
        )

    def cache_key(self, model_path: Any, **kwargs: Any) -> Hashable | None:
        if _is_url(model_path) and self._download_finder:
            return self.manager.get_finder(self._download_finder).cache_key(
                model_path, **kwargs
            )
        return super().cache_key(model_path, **kwargs)

    def _local_folder(self, model_path: Any) -> str:
        if not _is_url(model_path):
            return self.resolve(model_path)
        if not self._download_finder:
            raise ModelNotFoundError(
                f"Finder {self.instance_name!r} ({self.name}) reads local folders, got "
                f"the URL {model_path!r}. Set download_finder in its config to the "
                "name of the finder that downloads such URLs, such as s3.",
                model_path=model_path,
                finder=self.instance_name,
            )
        downloader = self.manager.get_finder(self._download_finder)
        fetch = getattr(downloader, "fetch", None)
        # Config validation checks built-in types only, so a plugin type without
        # fetch is caught here.
        if not callable(fetch):
            raise ModelNotFoundError(
                f"Finder {self.instance_name!r} cannot fetch {model_path!r}: its "
                f"download_finder {self._download_finder!r} ({downloader.name}) has "
                "no fetch(model_path) method. Set download_finder to a finder that "
                "downloads remote folders, such as one of type REMOTE.",
                model_path=model_path,
                finder=self.instance_name,
            )
        folder = str(os.fspath(fetch(model_path)))
        log.debug(
            "Finder %r: %s fetched %r to %s",
            self.instance_name,
            self._download_finder,
            model_path,
            folder,
        )
        return folder

    def _describe(
        self,
        model: _format.ModelFolder,
        task: str,
        device: str | None,
        torch_dtype: str | None,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "module_id": MODULE_ID,
            "name": TransformersModule.MODULE_NAME,
            "version": TransformersModule.MODULE_VERSION,
            "task": task,
            "model_type": model.model_type,
            "architectures": model.architectures,
            "device": device or self._device,
            "torch_dtype": torch_dtype or self._dtype,
            "trust_remote_code": self._trust,
        }
        if "transformers_version" in model.config:
            data["transformers_version"] = str(model.config["transformers_version"])
        if task == _format.FEATURE_EXTRACTION:
            layout = model.layout or _format.EmbeddingLayout()
            data["pooling_modes"] = list(layout.pooling_modes)
            data["normalize"] = layout.normalize
        return data


def _is_url(model_path: Any) -> bool:
    return isinstance(model_path, str) and "://" in model_path


def _validate_task_map(task_map: Any, context: ValidationContext) -> None:
    if task_map is None:
        return
    if not isinstance(task_map, Mapping):
        raise context.error(
            f"task_map must map architectures or model types to tasks, got "
            f"{task_map!r}. Write it as {{BertForMaskedLM: feature-extraction}}.",
            _format.TASK_MAP_KEY,
        )
    for key, task in task_map.items():
        try:
            _format.normalize_task(str(task))
        except ValueError as exc:
            raise context.error(str(exc), f"{_format.TASK_MAP_KEY}.{key}") from None


def _validate_setting(
    config: Mapping[str, Any],
    key: str,
    check: Callable[[Any], str],
    context: ValidationContext,
) -> None:
    value = config.get(key)
    if value is None:
        return
    try:
        check(value)
    except ValueError as exc:
        raise context.error(str(exc), key) from None


def _validate_download_finder(name: Any, context: ValidationContext) -> None:
    if name is None or name == "":
        return
    finders = context.model_management.get("finders") or {}
    if not isinstance(name, str) or name not in finders:
        raise context.error(
            f"download_finder must name a configured finder, got {name!r}; "
            f"configured finders: {', '.join(map(str, finders))}. Set it to the "
            'name of a finder that downloads remote folders, or to "" to read '
            "local folders only.",
            "download_finder",
        )
    entry = finders[name]
    type_name = entry.get("type") if isinstance(entry, Mapping) else None
    finder_class = _builtin_finder_class(type_name)
    if finder_class is None or callable(getattr(finder_class, "fetch", None)):
        return
    raise context.error(
        f"download_finder {name!r} is a finder of type {type_name}, which has no "
        "fetch(model_path) method to download remote folders. Set download_finder "
        'to a finder of type REMOTE, such as s3, or to "" to read local folders '
        "only.",
        "download_finder",
    )


def _builtin_finder_class(type_name: Any) -> type[Any] | None:
    """Return the class of a built-in finder type, or ``None`` for other types.

    Plugin types are imported only when a finder is built, and a missing or
    unknown type fails the validation of its own instance.
    """
    from ..model_management import FINDERS
    from ..registry import BUILTIN

    if not isinstance(type_name, str) or FINDERS.source_of(type_name) != BUILTIN:
        return None
    return FINDERS.get(type_name)
