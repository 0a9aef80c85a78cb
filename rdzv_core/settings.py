"""The run's settings, parsed once from torch's ``RendezvousParameters``.

:func:`CoreSettings.parse` is the one place where ``--rdzv-conf`` is checked
and the core's and torch's handler keys are read. The result flows from
:mod:`rdzv_core.handler` to the adapter's ``from_params(params, core)``, to
the guarded store and codec, and to either protocol's handler; nothing
downstream reads ``params.config`` again. The adapter reads its own keys
through :attr:`CoreSettings.conf`, the same :class:`~rdzv_core.config.ConfReader`.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from rdzv_core.codec import DEFAULT_COMPRESS_THRESHOLD
from rdzv_core.config import ConfReader
from rdzv_core.errors import RdzvConfigError

if TYPE_CHECKING:  # pragma: no cover
    from torch.distributed.elastic.rendezvous import RendezvousParameters

#: Keys torch's launcher and ``DynamicRendezvousHandler`` read themselves.
TORCH_KEYS = frozenset(
    {
        "timeout",  # set by torchrun's LaunchConfig on every launch
        "join_timeout",
        "last_call_timeout",
        "close_timeout",
        "heartbeat_timeout",
        "keep_alive_interval",
        "keep_alive_max_attempt",
        "rank",  # static backend only, but torchrun may pass it through
    }
)

#: Keys the core reads for every adapter.
CORE_KEYS = frozenset(
    {
        "read_timeout",
        "connect_timeout",
        "secret_file",
        "compress_threshold",
        "protocol",
        "cas_backoff_ms",
        "metrics_port",
    }
)

SECRET_ENV = "RDZV_SECRET"
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 10.0
PROTOCOLS = ("torch", "scalable")
#: The protocol a run uses when ``--rdzv-conf`` names none: rdzv's own
#: (``protocol=torch`` runs torch's ``DynamicRendezvousHandler`` instead).
DEFAULT_PROTOCOL = "scalable"
#: torch's defaults for its handler keys (``DynamicRendezvousHandler``).
DEFAULT_JOIN_TIMEOUT = 600.0
DEFAULT_LAST_CALL_TIMEOUT = 30.0
DEFAULT_KEEP_ALIVE_INTERVAL = 5.0
DEFAULT_KEEP_ALIVE_MAX_ATTEMPT = 3


@dataclass(frozen=True)
class Timeouts:
    """The bounds of an adapter's client I/O, in seconds: ``read`` for one
    operation (``read_timeout``), ``connect`` for setting up a connection
    (``connect_timeout``)."""

    read: float = DEFAULT_READ_TIMEOUT
    connect: float = DEFAULT_CONNECT_TIMEOUT


@dataclass(frozen=True)
class CoreSettings:
    """Everything the core parsed from one run's ``RendezvousParameters``.

    The run's identity (``backend``, ``endpoint``, ``run_id``, node counts,
    ``local_addr``), the core's keys, torch's handler keys (read with
    torch's defaults; the scalable protocol runs on them), and ``conf``: the
    reader over the same ``--rdzv-conf`` values for the adapter's own keys.
    """

    backend: str
    endpoint: str
    run_id: str
    conf: ConfReader = field(repr=False, compare=False)
    min_nodes: int = 1
    max_nodes: int = 1
    local_addr: str = ""
    read_timeout: float = DEFAULT_READ_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    secret: bytes | None = field(default=None, repr=False)
    compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD
    protocol: str = DEFAULT_PROTOCOL
    cas_backoff_ms: float = 0.0
    #: The agent's Prometheus port (0: a free one); ``None``: no metrics (see :mod:`rdzv_core.metrics`).
    metrics_port: int | None = None
    join_timeout: float = DEFAULT_JOIN_TIMEOUT
    last_call_timeout: float = DEFAULT_LAST_CALL_TIMEOUT
    keep_alive_interval: float = DEFAULT_KEEP_ALIVE_INTERVAL
    keep_alive_max_attempt: int = DEFAULT_KEEP_ALIVE_MAX_ATTEMPT

    @classmethod
    def parse(cls, params: RendezvousParameters, adapter_keys: Iterable[str] = ()) -> CoreSettings:
        """Check ``params`` (unknown keys, an empty run id) and parse the
        core's and torch's keys; ``adapter_keys`` are the adapter's own
        (``StateStore.conf_keys``), accepted here and read by the adapter."""
        conf = ConfReader.of(params)
        conf.reject_unknown(TORCH_KEYS | CORE_KEYS | frozenset(adapter_keys))
        if not params.run_id:
            raise RdzvConfigError(f"rdzv backend '{params.backend}': the run id (--rdzv-id) must not be empty")
        return cls.from_reader(conf, params.endpoint or "", params.run_id, params.min_nodes, params.max_nodes,
                               params.local_addr or "")

    @classmethod
    def from_reader(cls, conf: ConfReader, endpoint: str = "", run_id: str = "", min_nodes: int = 1,
                    max_nodes: int = 1, local_addr: str = "") -> CoreSettings:
        """Parse the core's and torch's keys from ``conf`` (no check for unknown keys)."""
        return cls(
            backend=conf.backend,
            endpoint=endpoint,
            run_id=run_id,
            conf=conf,
            min_nodes=min_nodes,
            max_nodes=max_nodes,
            local_addr=local_addr,
            read_timeout=conf.seconds("read_timeout", DEFAULT_READ_TIMEOUT),
            connect_timeout=conf.seconds("connect_timeout", DEFAULT_CONNECT_TIMEOUT),
            secret=conf.secret("secret_file", SECRET_ENV),
            compress_threshold=conf.integer("compress_threshold", DEFAULT_COMPRESS_THRESHOLD),
            protocol=conf.choice("protocol", PROTOCOLS, DEFAULT_PROTOCOL),
            cas_backoff_ms=conf.seconds("cas_backoff_ms", 0.0, allow_zero=True, unit="milliseconds"),
            metrics_port=conf.port("metrics_port"),
            join_timeout=conf.seconds("join_timeout", DEFAULT_JOIN_TIMEOUT),
            last_call_timeout=conf.seconds("last_call_timeout", DEFAULT_LAST_CALL_TIMEOUT, allow_zero=True),
            keep_alive_interval=conf.seconds("keep_alive_interval", DEFAULT_KEEP_ALIVE_INTERVAL),
            keep_alive_max_attempt=conf.integer("keep_alive_max_attempt", DEFAULT_KEEP_ALIVE_MAX_ATTEMPT, minimum=1),
        )

    @property
    def timeouts(self) -> Timeouts:
        """``read_timeout`` and ``connect_timeout`` as one value, for an adapter's settings."""
        return Timeouts(self.read_timeout, self.connect_timeout)

    @property
    def protocol_given(self) -> bool:
        """Whether ``--rdzv-conf protocol=`` was given (not the default)."""
        return self.conf.raw("protocol") is not None

    @property
    def node_addr(self) -> str:
        """This node's address: ``local_addr``, or the host's FQDN as torch uses."""
        return self.local_addr or socket.getfqdn()

    @property
    def heartbeat_ttl(self) -> float:
        """How long a member may go without a beat before it counts as dead."""
        return self.keep_alive_interval * self.keep_alive_max_attempt
