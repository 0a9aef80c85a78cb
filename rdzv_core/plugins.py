"""Discovery of adapters through pluggy and the ``rdzv`` entry-point group.

:func:`load_registry` builds a fresh plugin manager (no module global, so
tests get their own), loads every plugin in isolation and returns a
:class:`BackendRegistry`: one broken plugin is recorded with its distribution
and exception while the others load; selecting a broken or clashing name
raises a clear :class:`~rdzv_core.errors.PluginError`.
"""

from __future__ import annotations

import difflib
import traceback
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Iterable

import pluggy

from rdzv_core import hookspecs
from rdzv_core.adapter import StateStore, capability_problems, contract_problem
from rdzv_core.errors import PluginError, UnknownBackendError

#: First-party backends and the distribution that provides each.
FIRST_PARTY = {"c10d": "rdzv-c10d", "redis": "rdzv-redis", "etcd": "rdzv-etcd"}
#: The prefix under which every backend is also reachable (``rdzv-redis``).
NAME_PREFIX = "rdzv-"


@dataclass(frozen=True)
class AdapterInfo:
    """An adapter class and where it came from."""

    name: str
    adapter: type[StateStore]
    distribution: str
    version: str


@dataclass(frozen=True)
class LoadFailure:
    """A plugin (or one of its adapters) that could not be loaded."""

    plugin: str
    distribution: str
    version: str
    error: str
    names: tuple[str, ...] = ()


@dataclass
class BackendRegistry:
    """The adapters found, and what failed to load."""

    adapters: dict[str, AdapterInfo] = field(default_factory=dict)
    failures: list[LoadFailure] = field(default_factory=list)

    def get(self, backend: str) -> type[StateStore]:
        """The adapter class for ``backend`` (``redis`` or ``rdzv-redis``)."""
        name = adapter_name(backend)
        info = self.adapters.get(name)
        if info is not None:
            return info.adapter
        for failure in self.failures:
            if name in failure.names or failure.plugin == name:
                raise PluginError(
                    f"rdzv backend '{backend}' is installed but failed to load: plugin '{failure.plugin}' "
                    f"from {failure.distribution} {failure.version}: {failure.error}"
                )
        raise UnknownBackendError(unknown_backend_message(backend, self.adapters))


def adapter_name(backend: str) -> str:
    """Strip the ``rdzv-`` prefix from a ``--rdzv-backend`` value."""
    return backend[len(NAME_PREFIX):] if backend.startswith(NAME_PREFIX) else backend


def unknown_backend_message(backend: str, installed: Iterable[str]) -> str:
    """The error text for a backend nobody provides: did-you-mean and install hint."""
    name = adapter_name(backend)
    known = sorted(installed)
    parts = [f"unknown rdzv backend '{backend}'."]
    if name in FIRST_PARTY:
        parts.append(f"It is provided by the '{FIRST_PARTY[name]}' package: pip install {FIRST_PARTY[name]}.")
    else:
        close = difflib.get_close_matches(name, known + list(FIRST_PARTY), n=1, cutoff=0.6)
        if close:
            parts.append(f"Did you mean '{close[0]}'?")
    parts.append(f"Installed rdzv backends: {', '.join(known) if known else 'none'}.")
    return " ".join(parts)


def make_plugin_manager() -> pluggy.PluginManager:
    """A new plugin manager with rdzv's hookspecs and no plugins registered."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    return manager


def _origin(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "an unknown distribution", "?"
    return dist.metadata["Name"] or "?", dist.version or "?"


def _format(exc: BaseException) -> str:
    """``exc`` as one line (``rdzv backends`` prints it in a table row, rdzv-run
    on one line): its last line, plus where a ``SyntaxError`` is."""
    line = traceback.format_exception_only(type(exc), exc)[-1].strip()
    if isinstance(exc, SyntaxError) and exc.filename:
        line += f" ({exc.filename}, line {exc.lineno})"
    return " ".join(line.split())


def load_registry(
    manager: pluggy.PluginManager | None = None,
    entry_point_list: Iterable[EntryPoint] | None = None,
) -> BackendRegistry:
    """Load every ``rdzv`` entry point into ``manager`` and collect adapters."""
    manager = manager or make_plugin_manager()
    registry = BackendRegistry()
    origins: dict[str, tuple[str, str]] = {}
    for ep in entry_point_list if entry_point_list is not None else entry_points(group=hookspecs.PROJECT):
        dist, version = _origin(ep)
        if manager.has_plugin(ep.name):
            continue
        try:
            manager.register(ep.load(), name=ep.name)
        except Exception as exc:  # noqa: BLE001 - isolate one plugin's failure
            registry.failures.append(LoadFailure(ep.name, dist, version, _format(exc)))
            continue
        origins[ep.name] = (dist, version)
    for impl in manager.hook.rdzv_adapters.get_hookimpls():
        dist, version = origins.get(impl.plugin_name, ("(registered in code)", "?"))
        try:
            adapters = list(impl.function())
        except Exception as exc:  # noqa: BLE001
            registry.failures.append(LoadFailure(impl.plugin_name, dist, version, _format(exc)))
            continue
        for adapter in adapters:
            _add(registry, adapter, impl.plugin_name, dist, version)
    return registry


def _add(registry: BackendRegistry, adapter: object, plugin: str, dist: str, version: str) -> None:
    if not (isinstance(adapter, type) and issubclass(adapter, StateStore) and adapter.name):
        registry.failures.append(
            LoadFailure(plugin, dist, version, f"rdzv_adapters returned {adapter!r}, not a named StateStore subclass")
        )
        return
    name = adapter.name
    problems = [p for p in [contract_problem(adapter.contract_version), *capability_problems(adapter)] if p]
    if problems:
        registry.failures.append(LoadFailure(
            plugin, dist, version, f"adapter '{name}' ({adapter.__module__}.{adapter.__qualname__}) "
            + "; ".join(problems), names=(name,)))
        return
    other = registry.adapters.get(name)
    if other is not None:
        del registry.adapters[name]
        registry.failures.append(
            LoadFailure(
                plugin, dist, version,
                f"duplicate backend name '{name}': provided by both {other.distribution} {other.version} "
                f"and {dist} {version}; uninstall one of them",
                names=(name,),
            )
        )
        return
    if any(name in f.names for f in registry.failures):
        return  # already a recorded clash
    registry.adapters[name] = AdapterInfo(name, adapter, dist, version)
