"""pluggy hook specifications of the ``rdzv`` project.

A plugin distribution declares an entry point in the ``rdzv`` group that
points at a module (or object) carrying ``@hookimpl`` functions::

    [project.entry-points.rdzv]
    redis = "rdzv_redis.plugin"

and implements the hooks below. This module imports nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from rdzv_core.adapter import StateStore

PROJECT = "rdzv"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def rdzv_adapters() -> list[type[StateStore]]:
    """Return the adapter classes this plugin provides.

    Each class is a :class:`rdzv_core.adapter.StateStore` subclass whose
    ``name`` attribute is the backend name users select with
    ``--rdzv-backend``. Names must be unique across installed plugins. The
    implementation must not import the store's client library: adapters do
    that in ``from_params``.
    """
