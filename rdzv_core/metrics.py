"""An agent's Prometheus endpoint (``--rdzv-conf metrics_port=PORT``).

Off by default. When on, the agent serves ``/metrics`` over HTTP on PORT
(all interfaces); ``metrics_port=0`` takes a free port, for several agents
on one host, and the agent logs the port it took. What is counted:

* ``rdzv_store_operations_total{operation}``, ``rdzv_store_operation_seconds{operation}``
  (a histogram), ``rdzv_store_retries_total{operation}`` and
  ``rdzv_store_errors_total{operation}``: every store operation of the core's
  guarded store (:class:`~rdzv_core.guarded.GuardedStore`);
* ``rdzv_rounds_joined_total`` and ``rdzv_world_size``: each completed rendezvous;
* ``rdzv_heartbeat_lag_seconds`` (how long the watched member's beat has
  not changed) and ``rdzv_deaths_recorded_total`` (scalable protocol only).

Off costs nothing per store call: the guarded store then runs exactly the
code it runs without this module (see ``GuardedStore.__init__``).
``prometheus_client`` is the ``metrics`` extra of rdzv-core.
"""

from __future__ import annotations

import errno
from typing import Any

from rdzv_core.errors import RdzvConfigError

#: Latency buckets (seconds): store round trips are sub-millisecond to seconds.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class RdzvMetrics:
    """One agent's metrics, in a registry of their own (several handlers in
    one process never clash), served by :meth:`serve`."""

    def __init__(self, backend: str, run_id: str) -> None:
        try:
            import prometheus_client as prom
        except ImportError:
            raise RdzvConfigError(f"rdzv backend '{backend}': --rdzv-conf metrics_port needs prometheus_client: "
                                  "pip install 'rdzv-core[metrics]'") from None
        self.registry = prom.CollectorRegistry()
        self.backend = backend
        self.run_id = run_id
        labels = {"registry": self.registry}
        self._ops = prom.Counter("rdzv_store_operations", "Store operations by the core", ["operation"], **labels)
        self._seconds = prom.Histogram("rdzv_store_operation_seconds", "Store operation latency, retries included",
                                       ["operation"], buckets=BUCKETS, **labels)
        self._retries = prom.Counter("rdzv_store_retries", "Store attempts retried after a transient error",
                                     ["operation"], **labels)
        self._errors = prom.Counter("rdzv_store_errors", "Store operations that failed", ["operation"], **labels)
        self.rounds = prom.Counter("rdzv_rounds_joined", "Rendezvous rounds this agent completed", **labels)
        self.world_size = prom.Gauge("rdzv_world_size", "World size (nodes) of the current round", **labels)
        self.heartbeat_lag = prom.Gauge("rdzv_heartbeat_lag_seconds",
                                        "Seconds the watched member's beat has not changed", **labels)
        self.deaths = prom.Counter("rdzv_deaths_recorded", "Members this agent recorded dead", **labels)
        self._children: dict[str, tuple[Any, Any]] = {}

    def observe(self, operation: str, seconds: float) -> None:
        """One store operation that took ``seconds`` (whether it succeeded or not)."""
        children = self._children.get(operation)
        if children is None:
            children = self._children[operation] = (self._ops.labels(operation), self._seconds.labels(operation))
        children[0].inc()
        children[1].observe(seconds)

    def retried(self, operation: str) -> None:
        """One more attempt of ``operation`` after a transient error."""
        self._retries.labels(operation).inc()

    def failed(self, operation: str) -> None:
        """``operation`` failed for good."""
        self._errors.labels(operation).inc()

    def joined(self, world_size: int) -> None:
        """A round completed with this agent in it."""
        self.rounds.inc()
        self.world_size.set(world_size)

    def serve(self, port: int) -> int:
        """Serve ``/metrics`` on ``port`` (0: a free one); return the port.
        A port in use is a one-line configuration error."""
        import prometheus_client as prom

        try:
            server, _thread = prom.start_http_server(port, registry=self.registry)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise RdzvConfigError(f"rdzv backend '{self.backend}': --rdzv-conf metrics_port={port}: the port is "
                                      "in use on this host (another agent's metrics?); give each agent its own "
                                      "port, or metrics_port=0 for a free one") from None
            raise RdzvConfigError(f"rdzv backend '{self.backend}': --rdzv-conf metrics_port={port}: cannot serve "
                                  f"metrics there: {exc.strerror or exc}") from None
        return int(server.server_port)
