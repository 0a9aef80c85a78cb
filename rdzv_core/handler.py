"""Build torch's rendezvous objects from ``RendezvousParameters``.

This is the bridge into torch: pick the adapter by name, validate the
configuration, connect, wrap the adapter in the core (retry, deadlines,
framing) and hand torch a ``RendezvousBackend`` plus a ``Store``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from rdzv_core.errors import RdzvConfigError
from rdzv_core.plugins import BackendRegistry, load_registry
from rdzv_core.settings import CoreSettings

if TYPE_CHECKING:  # pragma: no cover
    import torch.distributed as dist
    from torch.distributed.elastic.rendezvous import RendezvousHandler, RendezvousParameters

    from rdzv_core.adapter import StateStore
    from rdzv_core.backend import RdzvBackend
    from rdzv_core.codec import FrameCodec
    from rdzv_core.guarded import GuardedStore
    from rdzv_core.metrics import RdzvMetrics


def _is_transient_connect_error(adapter_cls: type[StateStore], exc: Exception) -> bool:
    """Whether ``exc``, raised by ``adapter_cls.from_params``, is worth another
    attempt: one of the transient types the core retries in every later
    operation (``ConnectionError``, ``TimeoutError`` and the adapter's
    declared ``retryable_errors``), and never a configuration error."""
    retryable = (ConnectionError, TimeoutError, *adapter_cls.retryable_errors)
    return isinstance(exc, retryable) and not isinstance(exc, ValueError)


def _connect_until(adapter_cls: type[StateStore], params: RendezvousParameters, core: CoreSettings) -> StateStore:
    """``adapter_cls.from_params(params, core)``, called again after each
    transient failure (with backoff) until ``core.connect_timeout`` seconds
    have passed; raises :class:`~rdzv_core.retry.GaveUp` then. Other errors pass at once."""
    import logging

    from rdzv_core.retry import Deadline, retry_transient

    log = logging.getLogger(__name__)

    def report(exc: Exception, attempts: int) -> None:
        log.log(logging.WARNING if attempts == 1 else logging.DEBUG,
                "rdzv backend '%s': connecting to %r failed (attempt %d: %s: %s); retrying until "
                "connect_timeout=%g s", core.backend, core.endpoint, attempts, type(exc).__name__, exc,
                core.connect_timeout)

    return retry_transient(lambda: adapter_cls.from_params(params, core), Deadline(core.connect_timeout),
                           lambda exc: _is_transient_connect_error(adapter_cls, exc), report)


def parse_settings(params: RendezvousParameters, registry: BackendRegistry | None = None
                   ) -> tuple[type[StateStore], CoreSettings]:
    """The adapter class that ``params.backend`` names and the run's settings,
    parsed once (unknown keys rejected against the core's, torch's and the
    adapter's)."""
    registry = registry if registry is not None else load_registry()
    adapter_cls = registry.get(params.backend)
    return adapter_cls, CoreSettings.parse(params, adapter_cls.conf_keys)


def connect_parsed(adapter_cls: type[StateStore], params: RendezvousParameters, core: CoreSettings) -> StateStore:
    """Connect ``adapter_cls`` with the run's parsed settings.

    Transient failures of the first connection (refused, reset, timed out:
    see :func:`_is_transient_connect_error`) are retried until
    ``connect_timeout``; configuration and other client errors (bad
    password, TLS verification) fail at once.
    """
    from torch.distributed.elastic.rendezvous import RendezvousConnectionError

    from rdzv_core.retry import GaveUp

    prefix = f"rdzv backend '{core.backend}'"
    try:
        return _connect_until(adapter_cls, params, core)
    except GaveUp as gave_up:
        last = gave_up.last
        raise RendezvousConnectionError(
            f"{prefix}: cannot connect to {core.endpoint!r}: {gave_up.attempts} "
            f"attempt{'' if gave_up.attempts == 1 else 's'} to connect failed "
            f"in {gave_up.elapsed:.1f} s, and connect_timeout={core.connect_timeout:g} s has run out; "
            f"last error: {type(last).__name__}: {last}"
        ) from last
    except ValueError as exc:  # RdzvConfigError included: add the backend if missing
        if str(exc).startswith(prefix):
            raise
        raise RdzvConfigError(f"{prefix}: {exc}") from exc
    except (OSError, RuntimeError, *adapter_cls.client_errors) as exc:
        # Connecting failed (c10d raises DistNetworkError, a RuntimeError).
        raise RendezvousConnectionError(
            f"{prefix}: cannot connect to {core.endpoint!r}: {type(exc).__name__}: {exc}"
        ) from exc


def connect_adapter(params: RendezvousParameters, registry: BackendRegistry | None = None
                    ) -> tuple[StateStore, CoreSettings]:
    """Select the adapter that ``params.backend`` names, parse the run's
    settings and connect (see :func:`parse_settings`, :func:`connect_parsed`)."""
    adapter_cls, core = parse_settings(params, registry)
    return connect_parsed(adapter_cls, params, core), core


def guard_adapter(adapter: StateStore, core: CoreSettings) -> tuple[GuardedStore, FrameCodec]:
    """The adapter as the core uses it (retried, bounded) and the run's frame codec."""
    from rdzv_core.codec import FrameCodec
    from rdzv_core.guarded import GuardedStore

    metrics = None
    if core.metrics_port is not None:
        try:
            metrics = serve_metrics(core)
        except BaseException:
            adapter.close()
            raise
    guarded = GuardedStore(adapter, core.backend, core.read_timeout, metrics)
    return guarded, FrameCodec(core.secret, core.compress_threshold)


def agent_store(adapter: StateStore, guarded: GuardedStore, core: CoreSettings) -> dist.Store:
    """The ``torch.distributed.Store`` of the run: the adapter's own where it
    declares ``native_store``, else the core's bridge over its primitives."""
    from rdzv_core.bridge import BridgeStore

    native = adapter.native_store() if adapter.capabilities.native_store else None
    return native or BridgeStore(guarded, timedelta(seconds=core.read_timeout))


def wrap_adapter(adapter: StateStore, core: CoreSettings) -> tuple[GuardedStore, FrameCodec, dist.Store]:
    """The adapter as the core and torch use it: (guarded store, codec, c10d Store)."""
    guarded, codec = guard_adapter(adapter, core)
    return guarded, codec, agent_store(adapter, guarded, core)


def serve_metrics(core: CoreSettings) -> RdzvMetrics:
    """This agent's metrics, served on ``core.metrics_port`` (0: a free one), logged once."""
    import logging

    from rdzv_core.metrics import RdzvMetrics

    metrics = RdzvMetrics(core.backend, core.run_id)
    served = metrics.serve(core.metrics_port or 0)
    # WARNING, as rdzv-run shows by default: with metrics_port=0 this line is how to find the port.
    logging.getLogger(__name__).warning("rdzv run '%s': Prometheus metrics on port %d (http://%s:%d/metrics)",
                                        core.run_id, served, core.local_addr or "localhost", served)
    return metrics


def count_rounds(handler: RendezvousHandler, metrics: RdzvMetrics) -> None:
    """Count torch's handler's completed rounds and world size in ``metrics``
    (rdzv's scalable handler counts its own)."""
    original = handler.next_rendezvous

    def next_rendezvous():  # type: ignore[no-untyped-def]
        info = original()
        metrics.joined(info.world_size)
        return info

    handler.next_rendezvous = next_rendezvous  # type: ignore[method-assign]


def create_backend(
    params: RendezvousParameters, registry: BackendRegistry | None = None
) -> tuple[RdzvBackend, dist.Store]:
    """The ``(RendezvousBackend, Store)`` pair torch's handler runs on."""
    from rdzv_core.backend import RdzvBackend

    adapter, core = connect_adapter(params, registry)
    guarded, codec, store = wrap_adapter(adapter, core)
    return RdzvBackend(guarded, core.backend, codec, core.cas_backoff_ms), store


def create_rdzv_handler(params: RendezvousParameters, registry: BackendRegistry | None = None) -> RendezvousHandler:
    """A rendezvous handler for ``params`` (the creator torch's registry calls).

    ``params`` is parsed once (:func:`parse_settings`); the settings then
    pick the protocol. ``--rdzv-conf protocol=scalable`` (the default) runs
    rdzv's :class:`~rdzv_core.protocol.handler.ScalableRendezvousHandler`;
    ``protocol=torch`` runs torch's own ``DynamicRendezvousHandler`` on the
    adapter (for compatibility; torch reads its own keys from ``params``).
    """
    from rdzv_core.backend import RdzvBackend

    adapter_cls, core = parse_settings(params, registry)
    adapter = connect_parsed(adapter_cls, params, core)
    guarded, codec, store = wrap_adapter(adapter, core)
    if core.protocol == "scalable":
        from rdzv_core.protocol.handler import HandlerSettings, ScalableRendezvousHandler

        return ScalableRendezvousHandler(core.backend, HandlerSettings.of(core), guarded, store, codec)
    from torch.distributed.elastic.rendezvous.dynamic_rendezvous import create_handler

    handler = create_handler(store, RdzvBackend(guarded, core.backend, codec, core.cas_backoff_ms), params)
    publish_worker_store_every_round(handler)
    answer_waiting_through_outages(handler)
    if guarded.metrics is not None:
        count_rounds(handler, guarded.metrics)
    return handler


def publish_worker_store_every_round(handler: RendezvousHandler) -> None:
    """Make torch's handler publish MASTER_ADDR/PORT in every round.

    torch's ``DynamicRendezvousHandler`` (2.x) computes the workers' store
    address once and caches it. After the node that was rank 0 dies, the
    survivors keep dialing it, and a newcomer that is not rank 0 blocks on a
    MASTER_ADDR that nobody publishes in the new round. Forgetting the cached
    address before each round makes rank 0 host and publish a store under the
    new round's prefix and everyone else read it there. Uses a private
    attribute of torch's handler; skipped where it does not exist.
    """
    if not hasattr(handler, "_bootstrap_store_info"):
        return
    original = handler.next_rendezvous

    def next_rendezvous():  # type: ignore[no-untyped-def]
        handler._bootstrap_store_info = None  # type: ignore[attr-defined]  # noqa: SLF001
        return original()

    handler.next_rendezvous = next_rendezvous  # type: ignore[method-assign]


def answer_waiting_through_outages(handler: RendezvousHandler) -> None:
    """Make torch's handler's ``num_nodes_waiting`` outlive a store outage.

    torch's agent calls ``num_nodes_waiting()`` from its monitor loop, and an
    exception there ends the agent. torch's handler syncs its state through
    the backend on that call, so a store that stops answering for longer
    than ``read_timeout`` (a failover, a restart) would end every agent. Here
    an error returns the last good answer instead (0 before the first),
    logged once per outage. The call still waits for the store as long as
    torch's handler does (up to ``read_timeout``); rdzv's scalable handler
    answers without touching the store at all.
    """
    import logging

    log = logging.getLogger(__name__)
    original = handler.num_nodes_waiting
    last = [0]
    failing = [False]

    def num_nodes_waiting() -> int:
        try:
            last[0] = original()
        except Exception as exc:  # noqa: BLE001 - see the docstring
            if not failing[0]:
                log.warning("rdzv run '%s': num_nodes_waiting could not read the rendezvous (%s); answering %d, "
                            "the last good answer, until the store answers again", handler.get_run_id(), exc, last[0])
            failing[0] = True
            return last[0]
        if failing[0]:
            log.warning("rdzv run '%s': num_nodes_waiting reads the rendezvous again", handler.get_run_id())
            failing[0] = False
        return last[0]

    handler.num_nodes_waiting = num_nodes_waiting  # type: ignore[method-assign]
