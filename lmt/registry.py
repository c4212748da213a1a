"""One registry type for every extension point.

Models, training methods, attacks, data sets, certificate kinds and published-number sets are
registered by name; layer bounds by module type, function or method name. Every registry is a
:class:`Registry`:

* ``@REGISTRY.register(name, **metadata)`` on a class or a function (its factory);
* ``list()``: the registered names (sorted), ``in``, ``entry(label)``;
* ``NAME.TAG`` labels select one entry with several settings (``cw.strong``): :func:`split_label`;
* parameters: an entry's dataclass (its ``Params`` attribute, the class itself when it is a
  dataclass, or ``params=`` at registration), built from config values by :meth:`Registry.params`
  with :func:`lmt.params.check_params` — unknown names and ill-typed values are errors naming them;
* plugins: modules announced under the entry-point group ``lmt_bench.plugins`` (this is how the
  repository's ``baselines/`` are found) are imported before a registry is first read, and a
  config's ``plugins`` list names more (:func:`load_plugins`).
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Generic, Hashable, Iterable, Mapping, TypeVar

from lmt.params import check_params

T = TypeVar("T")
PLUGIN_GROUP = "lmt_bench.plugins"


def split_label(label: str) -> tuple[str, str | None]:
    """``"cw.strong"`` -> ``("cw", "strong")``; ``"cw"`` -> ``("cw", None)``."""
    name, _, tag = label.partition(".")
    return name, tag or None


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name: its factory, its parameter dataclass (or None) and metadata."""

    name: str
    factory: T
    params: type | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def _default_params(factory: Any) -> type | None:
    """``factory.Params`` if it is a dataclass, else ``factory`` itself if it is one."""
    params = getattr(factory, "Params", None)
    if isinstance(params, type) and dataclasses.is_dataclass(params):
        return params
    if isinstance(factory, type) and dataclasses.is_dataclass(factory):
        return factory
    return None


class Registry(Generic[T]):
    """Name → factory, with typed parameters and plugins (see the module docstring).

    ``kind`` names the extension point in messages ("model", "attack", …).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[Hashable, Entry[T]] = {}

    def register(self, name: Hashable, *, params: type | None = None, **metadata: Any) -> Callable[[T], T]:
        """Decorator: register the decorated factory under ``name``."""

        def decorator(factory: T) -> T:
            self.add(name, factory, params=params, **metadata)
            return factory

        return decorator

    def add(self, name: Hashable, factory: T, *, params: type | None = None, **metadata: Any) -> None:
        """Register ``factory`` under ``name``; registering another factory under a taken name
        is an error (re-registering the same one, e.g. on a module reload, is not)."""
        if isinstance(name, str) and ("." in name or not name):
            raise ValueError(f"{self.kind} name {name!r} may not be empty or contain '.' (it separates a tag)")
        known = self._entries.get(name)
        if known is not None and known.factory is not factory and _qualname(known.factory) != _qualname(factory):
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, factory, params if params is not None else _default_params(factory),
                                    dict(metadata))

    def __contains__(self, name: Hashable) -> bool:
        load_entry_point_plugins()
        return name in self._entries

    def list(self) -> list[str]:
        """The registered names, sorted (keys that are not strings by their repr)."""
        load_entry_point_plugins()
        return sorted(self._entries, key=lambda k: k if isinstance(k, str) else repr(k))

    def entries(self) -> dict[Hashable, Entry[T]]:
        """Every entry by name (a copy)."""
        load_entry_point_plugins()
        return dict(self._entries)

    def entry(self, label: Hashable) -> Entry[T]:
        """The entry of ``label`` (``NAME`` or ``NAME.TAG``); KeyError naming the registered ones."""
        load_entry_point_plugins()
        name = split_label(label)[0] if isinstance(label, str) else label
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {self.list()}{_no_plugins_hint()}")
        return self._entries[name]

    def get(self, label: Hashable) -> T:
        """The factory of ``label`` (``NAME`` or ``NAME.TAG``)."""
        return self.entry(label).factory

    def params(self, label: str, values: Mapping[str, Any] | None = None) -> Any:
        """The checked parameter dataclass of ``label`` from config ``values``: unknown names
        are a TypeError, bad values a :class:`lmt.params.ParamError` (both name the parameter)."""
        entry = self.entry(label)
        if entry.params is None:
            if values:
                raise TypeError(f"{self.kind} {entry.name!r} takes no parameters, got {sorted(values)}")
            return None
        return check_params(entry.params, values, f"{self.kind} {entry.name!r}")


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}"


_ENTRY_POINTS_LOADED = False


def load_entry_point_plugins() -> None:
    """Import every module announced under the entry-point group ``lmt_bench.plugins`` (once;
    a registry read while they import sees what is registered so far). A plugin that fails to
    import is retried at the next read."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for point in metadata.entry_points(group=PLUGIN_GROUP):
        try:
            point.load()
        except BaseException as err:
            _ENTRY_POINTS_LOADED = False
            if isinstance(err, ImportError):
                raise ImportError(f"plugin {point.name!r} ({point.value}) announced by an installed package "
                                  f"cannot be imported: {err}") from err
            raise


def _no_plugins_hint() -> str:
    """Why entries of the repository's plugins (e.g. the baseline methods) may be missing: no
    installed package announces the entry-point group, as with an install older than it."""
    if metadata.entry_points(group=PLUGIN_GROUP):
        return ""
    return (f" (no installed package announces plugins under the entry-point group {PLUGIN_GROUP!r}; "
            "is lmt-bench installed and up to date? `pip install -e .` in the repository)")


def load_plugins(modules: Iterable[str]) -> None:
    """Import user modules that register entries (a config's ``plugins``)."""
    load_entry_point_plugins()
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ImportError(
                f"plugin module {module!r} cannot be imported ({err}); it must be on PYTHONPATH"
            ) from None
