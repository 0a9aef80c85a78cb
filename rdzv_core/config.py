"""Typed, validated access to ``--rdzv-conf`` values.

Every bad value is reported as :class:`~rdzv_core.errors.RdzvConfigError`
naming the backend, the key, the value and what was expected. Unknown keys are
errors too (with a "did you mean"), because a misspelt ``read_timout`` that is
silently ignored is worse than a failed launch.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from rdzv_core.codec import DEFAULT_COMPRESS_THRESHOLD
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


class ConfReader:
    """Reads and validates conf values of one backend's parameters."""

    def __init__(self, backend: str, config: dict[str, Any]) -> None:
        self.backend = backend
        self._config = config

    @classmethod
    def of(cls, params: RendezvousParameters) -> ConfReader:
        """A reader over ``params.config`` that names ``params.backend`` in errors."""
        return cls(params.backend, params.config)

    def error(self, key: str, value: Any, expected: str) -> RdzvConfigError:
        """Build the error for a bad value of ``key``."""
        return RdzvConfigError(
            f"rdzv backend '{self.backend}': --rdzv-conf {key}={value!r} is invalid: expected {expected}"
        )

    def raw(self, key: str) -> Any:
        """The value as given, or ``None``; blank strings count as absent."""
        value = self._config.get(key)
        if isinstance(value, str) and not value.strip():
            return None
        return value

    def string(self, key: str, default: str | None = None) -> str | None:
        """A string value, stripped."""
        value = self.raw(key)
        return default if value is None else str(value).strip()

    def seconds(self, key: str, default: float, allow_zero: bool = False, unit: str = "seconds") -> float:
        """A positive number of ``unit`` (seconds unless said; fractions allowed)."""
        value = self.raw(key)
        if value is None:
            return default
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self.error(key, value, f"a number of {unit}") from None
        if number != number or number in (float("inf"), float("-inf")) or number < 0 or (number == 0 and not allow_zero):
            raise self.error(key, value, f"a {'non-negative' if allow_zero else 'positive'} number of {unit}")
        return number

    def integer(self, key: str, default: int, minimum: int = 0) -> int:
        """An integer ``>= minimum``."""
        value = self.raw(key)
        if value is None:
            return default
        try:
            number = int(str(value).strip())
        except ValueError:
            raise self.error(key, value, "a whole number") from None
        if number < minimum:
            raise self.error(key, value, f"a whole number >= {minimum}")
        return number

    def boolean(self, key: str, default: bool | None = None) -> bool | None:
        """A boolean written as 1/0, true/false, yes/no, on/off."""
        value = self.raw(key)
        if value is None or isinstance(value, bool):
            return default if value is None else value
        text = str(value).strip().lower()
        if text in ("1", "true", "t", "yes", "y", "on"):
            return True
        if text in ("0", "false", "f", "no", "n", "off"):
            return False
        raise self.error(key, value, "a boolean (true/false, 1/0, yes/no)")

    def choice(self, key: str, choices: Iterable[str], default: str) -> str:
        """One of ``choices`` (case-insensitive)."""
        options = tuple(choices)
        value = self.raw(key)
        if value is None:
            return default
        text = str(value).strip().lower()
        if text not in options:
            raise self.error(key, value, "one of " + ", ".join(options))
        return text

    def existing_file(self, key: str) -> Path | None:
        """A path that must name a readable file."""
        value = self.string(key)
        if value is None:
            return None
        path = Path(value).expanduser()
        if not path.is_file():
            raise self.error(key, value, "the path of an existing, readable file")
        return path

    def reject_unknown(self, known: Iterable[str]) -> None:
        """Raise for any key not in ``known`` (with a "did you mean")."""
        allowed = set(known)
        for key in sorted(self._config):
            if key in allowed:
                continue
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise RdzvConfigError(
                f"rdzv backend '{self.backend}': unknown --rdzv-conf key '{key}'.{hint} "
                f"Known keys: {', '.join(sorted(allowed))}."
            )


@dataclass(frozen=True)
class CoreConfig:
    """The core's settings for one run, parsed from ``--rdzv-conf``."""

    read_timeout: float = DEFAULT_READ_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    secret: bytes | None = None
    compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD
    protocol: str = DEFAULT_PROTOCOL
    cas_backoff_ms: float = 0.0
    #: The agent's Prometheus port (0: a free one); ``None``: no metrics (see :mod:`rdzv_core.metrics`).
    metrics_port: int | None = None

    @classmethod
    def from_reader(cls, conf: ConfReader) -> CoreConfig:
        """Parse and validate the core's keys."""
        return cls(
            read_timeout=conf.seconds("read_timeout", DEFAULT_READ_TIMEOUT),
            connect_timeout=conf.seconds("connect_timeout", DEFAULT_CONNECT_TIMEOUT),
            secret=load_secret(conf),
            compress_threshold=conf.integer("compress_threshold", DEFAULT_COMPRESS_THRESHOLD),
            protocol=conf.choice("protocol", PROTOCOLS, DEFAULT_PROTOCOL),
            cas_backoff_ms=conf.seconds("cas_backoff_ms", 0.0, allow_zero=True, unit="milliseconds"),
            metrics_port=port_number(conf, "metrics_port"),
        )


def port_number(conf: ConfReader, key: str) -> int | None:
    """A TCP port from 0 to 65535, or ``None`` when ``key`` is not given."""
    if conf.raw(key) is None:
        return None
    port = conf.integer(key, 0)
    if port > 65535:
        raise conf.error(key, conf.raw(key), "a port number from 0 to 65535 (0: a free port)")
    return port


def load_secret(conf: ConfReader) -> bytes | None:
    """The rendezvous secret from ``secret_file`` or ``$RDZV_SECRET``.

    The file wins over the environment; surrounding whitespace (a trailing
    newline) is stripped. An empty secret is an error, not "no secret".
    """
    path = conf.existing_file("secret_file")
    if path is not None:
        try:
            secret = path.read_bytes().strip()
        except OSError as exc:
            raise conf.error("secret_file", str(path), f"a readable file ({exc.strerror})") from None
        if not secret:
            raise conf.error("secret_file", str(path), "a file holding a non-empty secret")
        return secret
    env = os.environ.get(SECRET_ENV)
    if env is not None:
        if not env.strip():
            raise RdzvConfigError(f"rdzv backend '{conf.backend}': ${SECRET_ENV} is set but empty")
        return env.strip().encode()
    return None
