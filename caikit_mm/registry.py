"""Registries of plugin types, one per role, filled from built-ins and entry points.

Built-in types are listed as ``"module:attribute"`` strings and imported on first
use. Installed distributions add types through an entry point group per role, such
as ``caikit_mm.finders``; the entry point name is the type name. Entry points are
read once per registry, by name only, and a plugin's code is imported only when its
type is requested.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from .errors import (
    PluginConflictError,
    PluginError,
    PluginImportError,
    UnknownTypeError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

BUILTIN: Final = "built-in"


@dataclass(frozen=True)
class PluginInfo:
    """One type of a role as the registry sees it.

    Attributes:
        name: Type name, such as ``LOCAL``.
        source: ``built-in``, ``registered`` for :meth:`PluginRegistry.register`, or
            the distribution name and version that offers the entry point.
        target: ``module:attribute`` the type is imported from.
        error: Why the type cannot be used, or ``""`` when it can.
    """

    name: str
    source: str
    target: str
    error: str = ""


@dataclass
class _Entry:
    name: str
    source: str
    target: str
    cls: type[Any] | None = None
    conflict: list[str] | None = None
    import_error: BaseException | None = None


class PluginRegistry(Generic[T]):
    """Types of one role: built-ins, programmatic registrations and entry points.

    Args:
        role: Human-readable role name used in messages, such as ``finder``.
        group: Entry point group, such as ``caikit_mm.finders``.
        base: Class every type must subclass.
        builtins: Built-in type names mapped to ``module:attribute`` targets.
    """

    def __init__(
        self, role: str, group: str, base: type[Any], builtins: Mapping[str, str]
    ) -> None:
        self.role = role
        self.group = group
        self.base = base
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {
            name: _Entry(name, BUILTIN, target) for name, target in builtins.items()
        }
        self._scanned = False

    def register(self, cls: type[T], name: str | None = None) -> type[T]:
        """Register a class under ``name`` or its ``name`` attribute.

        Registering the same class twice is harmless; a different class under a
        name that is taken raises :class:`PluginConflictError`.
        """
        type_name = name or getattr(cls, "name", None)
        if not isinstance(type_name, str) or not type_name:
            raise PluginError(
                f"Cannot register {cls!r} as a {self.role}: it has no string class "
                "attribute 'name'. Set name = '<TYPE>' on the class."
            )
        self._check_subclass(cls, type_name)
        target = f"{cls.__module__}:{cls.__qualname__}"
        with self._lock:
            existing = self._entries.get(type_name)
            if existing is not None and existing.target != target:
                raise PluginConflictError(
                    self.group,
                    type_name,
                    [f"{existing.source} {existing.target}", f"registered {target}"],
                )
            self._entries[type_name] = _Entry(type_name, "registered", target, cls)
        return cls

    def get(self, type_name: str) -> type[T]:
        """Return the class for ``type_name``, importing it on first use.

        Raises:
            UnknownTypeError: No source offers the type.
            PluginConflictError: Two sources offer it with different classes.
            PluginImportError: Its module failed to import; the cause is chained.
        """
        entry = self._entries.get(type_name)
        if entry is not None and entry.cls is not None and entry.conflict is None:
            return entry.cls
        with self._lock:
            entry = self._find_entry(type_name)
            if entry.conflict:
                raise PluginConflictError(self.group, type_name, entry.conflict)
            if entry.cls is None:
                entry.cls = self._import(entry)
            return entry.cls

    def has(self, type_name: str) -> bool:
        """Tell whether a source offers ``type_name``, without importing it."""
        with self._lock:
            if type_name not in self._entries:
                self._scan()
            return type_name in self._entries

    def source_of(self, type_name: str) -> str:
        """Name where ``type_name`` comes from: ``built-in``, ``registered`` or a
        distribution, or ``""`` when nothing offers it."""
        with self._lock:
            entry = self._entries.get(type_name)
            return entry.source if entry else ""

    def names(self) -> list[str]:
        """List every offered type name, without importing any plugin."""
        with self._lock:
            self._scan()
            return sorted(self._entries)

    def describe(self) -> list[PluginInfo]:
        """Import every type and report where each comes from and whether it works.

        A plugin that fails to import is logged once and reported; listing goes on.
        """
        infos = []
        for name in self.names():
            entry = self._entries[name]
            error = ""
            try:
                self.get(name)
            except PluginError as exc:
                error = f"{exc} ({exc.__cause__!r})" if exc.__cause__ else str(exc)
            infos.append(PluginInfo(name, entry.source, entry.target, error))
        return infos

    def broken(self) -> dict[str, str]:
        """Map each plugin that failed to import so far to its import error."""
        with self._lock:
            return {
                e.name: repr(e.import_error)
                for e in self._entries.values()
                if e.import_error is not None
            }

    def refresh(self) -> None:
        """Forget entry points read so far and read them again on next use.

        Call it after installing or removing a plugin distribution in a running
        process. Built-in and programmatically registered types stay.
        """
        with self._lock:
            self._entries = {
                name: _Entry(e.name, e.source, e.target, e.cls)
                for name, e in self._entries.items()
                if e.source in (BUILTIN, "registered")
            }
            self._scanned = False

    def _find_entry(self, type_name: str) -> _Entry:
        entry = self._entries.get(type_name)
        if entry is None or not self._scanned:
            self._scan()
            entry = self._entries.get(type_name)
        if entry is None:
            self._try_import_plugins()
            raise UnknownTypeError(self.group, type_name, self._entries, self.broken())
        return entry

    def _try_import_plugins(self) -> None:
        # Only on the error path: import every plugin so the message can name the
        # ones that failed, which may explain the missing type.
        for entry in list(self._entries.values()):
            if entry.cls is None and entry.import_error is None and not entry.conflict:
                try:
                    entry.cls = self._import(entry)
                except PluginError:
                    pass

    def _scan(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        import importlib_metadata

        for ep in importlib_metadata.entry_points(group=self.group):
            dist = ep.dist
            source = f"{dist.name} {dist.version}" if dist is not None else "unknown"
            self._add_entry_point(ep.name, source, ep.value)

    def _add_entry_point(self, name: str, source: str, target: str) -> None:
        existing = self._entries.get(name)
        if existing is None:
            self._entries[name] = _Entry(name, source, target)
            log.debug("Found %s plugin %r: %s from %s", self.role, name, target, source)
            return
        if existing.target == target:
            # A package that lists its own built-in or a duplicate install path.
            return
        conflict = existing.conflict or [f"{existing.source} {existing.target}"]
        existing.conflict = [*conflict, f"{source} {target}"]

    def _import(self, entry: _Entry) -> type[Any]:
        module_name, _, attribute = entry.target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                obj = getattr(obj, part)
        except Exception as exc:
            if entry.import_error is None:
                log.warning(
                    "The %s plugin %r (%s from %s) failed to import: %r",
                    self.role,
                    entry.name,
                    entry.target,
                    entry.source,
                    exc,
                )
            entry.import_error = exc
            raise PluginImportError(
                self.group, entry.name, entry.target, entry.source, exc
            ) from exc
        self._check_subclass(obj, entry.name)
        return obj  # type: ignore[no-any-return]

    def _check_subclass(self, cls: Any, type_name: str) -> None:
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise PluginError(
                f"The {self.role} type {type_name!r} in {self.group} is {cls!r}, "
                f"which is not a subclass of {self.base.__name__}. Point the entry "
                f"point at a {self.base.__name__} subclass."
            )
