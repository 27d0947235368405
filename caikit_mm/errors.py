"""Exceptions raised by caikit_mm.

Every error derives from :class:`CaikitMMError`, and most also derive from the
built-in exception a caller would already catch, so ``except FileNotFoundError``
still works around a model load::

    CaikitMMError
    ├── ConfigError (ValueError)
    ├── UnknownInstanceError (LookupError)
    ├── PluginError (LookupError)
    │   ├── UnknownTypeError
    │   ├── PluginImportError (ImportError)
    │   └── PluginConflictError
    ├── ModelNotFoundError (FileNotFoundError)
    ├── ModelFormatError (ValueError)
    │   └── ArchiveError
    │       └── UnsafeArchiveError
    ├── ModuleNotRegisteredError (LookupError)
    ├── ModuleRegistrationError (ValueError)
    ├── NoMatchingBackendError (LookupError)
    ├── InitializationFailedError (RuntimeError)
    ├── RemoteStorageError (OSError)
    ├── LocalStorageError (OSError)
    ├── TrainingError (RuntimeError)
    │   ├── TrainingNotFoundError (LookupError)
    │   ├── TrainingIdInUseError (ValueError)
    │   ├── SavePathExistsError (FileExistsError)
    │   └── TrainingProcessError
    └── RemoteModelError (RuntimeError)

Messages say what failed, on which value, and what to do next.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "ArchiveError",
    "CaikitMMError",
    "ConfigError",
    "InitializationFailedError",
    "LocalStorageError",
    "ModelFormatError",
    "ModelNotFoundError",
    "ModuleNotRegisteredError",
    "ModuleRegistrationError",
    "NoMatchingBackendError",
    "PluginConflictError",
    "PluginError",
    "PluginImportError",
    "RemoteModelError",
    "RemoteStorageError",
    "SavePathExistsError",
    "TrainingError",
    "TrainingIdInUseError",
    "TrainingNotFoundError",
    "TrainingProcessError",
    "UnknownInstanceError",
    "UnknownTypeError",
    "UnsafeArchiveError",
]


class CaikitMMError(Exception):
    """Base class of every error raised by caikit_mm."""


class ConfigError(CaikitMMError, ValueError):
    """An invalid configuration value, found when the configuration is loaded.

    Attributes:
        key_path: Dotted path of the offending key, such as
            ``model_management.finders.default.type``.
        source: File the value came from, or a description of the source.
    """

    def __init__(self, message: str, *, key_path: str = "", source: str = "") -> None:
        self.key_path = key_path
        self.source = source
        where = ", ".join(
            part
            for part in (
                f"in {source}" if source else "",
                f"at {key_path}" if key_path else "",
            )
            if part
        )
        super().__init__(
            f"Invalid configuration {where}: {message}" if where else message
        )


class UnknownInstanceError(CaikitMMError, LookupError):
    """A trainer, finder or initializer name that the configuration does not define."""

    def __init__(self, role: str, name: str, configured: Iterable[str]) -> None:
        self.role = role
        self.name = name
        self.configured = sorted(configured)
        super().__init__(
            f"No {role} named {name!r} is configured; configured {role}s: "
            f"{', '.join(self.configured) or '(none)'}. Pass one of these names, "
            f"or add {name!r} under model_management.{role}s in the configuration."
        )

    def __str__(self) -> str:
        # LookupError would otherwise quote the whole message like a key.
        return str(self.args[0])


class PluginError(CaikitMMError, LookupError):
    """A plugin type that cannot be used."""

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownTypeError(PluginError):
    """A type name that no built-in class or installed plugin provides.

    Attributes:
        group: Entry point group of the role, such as ``caikit_mm.finders``.
        type_name: The requested type.
        known: Types that are available for this role.
        broken: Plugins of this role that failed to import, with their errors.
    """

    def __init__(
        self,
        group: str,
        type_name: str,
        known: Iterable[str],
        broken: Mapping[str, str] | None = None,
    ) -> None:
        self.group = group
        self.type_name = type_name
        self.known = sorted(known)
        self.broken = dict(broken or {})
        message = (
            f"Unknown type {type_name!r} in {group}; known types: "
            f"{', '.join(self.known) or '(none)'}."
        )
        if self.broken:
            failures = "; ".join(f"{n} ({e})" for n, e in sorted(self.broken.items()))
            message += f" Plugins that failed to import: {failures}."
        message += (
            " Use one of the known types, or install the package that provides "
            f"{type_name!r} through the {group!r} entry point group."
        )
        super().__init__(message)


class PluginImportError(PluginError, ImportError):
    """A plugin whose entry point failed to import; ``__cause__`` is the original."""

    def __init__(
        self,
        group: str,
        type_name: str,
        target: str,
        dist: str,
        error: BaseException | None = None,
    ) -> None:
        self.group = group
        self.type_name = type_name
        self.target = target
        self.dist = dist
        cause = f" ({type(error).__name__}: {error})" if error is not None else ""
        super().__init__(
            f"Plugin {type_name!r} in {group} ({target} from {dist}) failed to "
            f"import{cause}. Fix or reinstall that distribution."
        )


class PluginConflictError(PluginError):
    """Two sources that offer the same type name with different classes."""

    def __init__(self, group: str, type_name: str, sources: Iterable[str]) -> None:
        self.group = group
        self.type_name = type_name
        self.sources = list(sources)
        super().__init__(
            f"Type {type_name!r} in {group} is offered by more than one source: "
            f"{' and '.join(self.sources)}. Uninstall one of them, or give one "
            "plugin a different entry point name."
        )


class ModelNotFoundError(CaikitMMError, FileNotFoundError):
    """A model identifier that a finder could not locate.

    Attributes:
        model_path: The identifier as the caller gave it.
        finder: Name of the finder instance that looked.
    """

    def __init__(
        self, message: str, *, model_path: object = None, finder: str = ""
    ) -> None:
        self.model_path = model_path
        self.finder = finder
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


class ModelFormatError(CaikitMMError, ValueError):
    """A model artifact that exists but cannot be read, such as a broken config.yml."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = path
        super().__init__(message)


class ArchiveError(ModelFormatError):
    """A model archive that is not valid or has an unexpected layout."""


class UnsafeArchiveError(ArchiveError):
    """An archive entry that would write outside the target or exceed a limit.

    Attributes:
        entry: The archive member name that was rejected.
    """

    def __init__(
        self, message: str, *, path: str | Path | None = None, entry: str = ""
    ) -> None:
        self.entry = entry
        super().__init__(message, path=path)


class ModuleNotRegisteredError(CaikitMMError, LookupError):
    """A module id that no installed module library registers."""

    def __init__(
        self, module_id: object, libraries: Iterable[str], source: str = ""
    ) -> None:
        self.module_id = module_id
        self.libraries = sorted(libraries)
        self.source = source
        origin = f" (from {source})" if source else ""
        super().__init__(
            f"No module is registered under module_id {module_id!r}{origin}. "
            f"Installed module libraries: {', '.join(self.libraries) or '(none)'}. "
            "Install the library that provides this module, or register a class "
            "with @caikit_mm.module(id=...)."
        )

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its fields, so a copy pickled in another process (such
        # as a Ray actor) has the same type and message.
        return (type(self), (self.module_id, self.libraries, self.source))


class ModuleRegistrationError(CaikitMMError, ValueError):
    """An invalid ``@caikit_mm.module`` declaration, such as a reused module id."""


class NoMatchingBackendError(CaikitMMError, LookupError):
    """No backend in the priority list can load a module."""

    def __str__(self) -> str:
        return str(self.args[0])


class InitializationFailedError(CaikitMMError, RuntimeError):
    """Every initializer of a MULTI initializer failed to load a model.

    Attributes:
        attempts: Each initializer's instance name and the error it raised, in
            the order they were tried.
    """

    def __init__(
        self, message: str, *, attempts: list[tuple[str, BaseException]]
    ) -> None:
        self.attempts = attempts
        super().__init__(message)


class RemoteStorageError(CaikitMMError, OSError):
    """An object store that could not be read. The message never contains a secret.

    Attributes:
        url: The model URL that was being read.
    """

    def __init__(self, message: str, *, url: str = "") -> None:
        self.url = url
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


class LocalStorageError(CaikitMMError, OSError):
    """A local folder, such as the cache, that a model could not be written to
    because it is read-only or its disk is full.

    Attributes:
        path: The file or folder that could not be written.
    """

    def __init__(self, message: str, *, path: str | Path = "") -> None:
        self.path = str(path)
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


class TrainingError(CaikitMMError, RuntimeError):
    """A training job that failed to start, run or report."""


class TrainingNotFoundError(TrainingError, LookupError):
    """A training id that no trainer of the manager has a job for."""

    def __str__(self) -> str:
        return str(self.args[0])


class TrainingIdInUseError(TrainingError, ValueError):
    """A caller-supplied training id that belongs to a job still running."""


class SavePathExistsError(TrainingError, FileExistsError):
    """A save path that already contains something, so a trained model cannot go there.

    Attributes:
        path: The folder the model would have been saved to.
    """

    def __init__(self, message: str, *, path: str = "") -> None:
        self.path = path
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


class TrainingProcessError(TrainingError):
    """A training subprocess that died, or failed with an error it could not send.

    Attributes:
        exit_code: The process's exit status; negative for a signal, as in
            ``subprocess``. ``None`` when the process reported the error itself.
        signal_name: Name of the signal that ended the process, such as
            ``SIGKILL``, or ``""``.
        original_type: Qualified name of the exception raised in the process,
            or ``""``.
        child_traceback: The traceback text from the process, or ``""``.
    """

    def __init__(
        self,
        message: str,
        *,
        exit_code: int | None = None,
        signal_name: str = "",
        original_type: str = "",
        child_traceback: str = "",
    ) -> None:
        self.exit_code = exit_code
        self.signal_name = signal_name
        self.original_type = original_type
        self.child_traceback = child_traceback
        super().__init__(message)


class RemoteModelError(CaikitMMError, RuntimeError):
    """A model hosted elsewhere, such as in a Ray actor, that no longer responds."""
