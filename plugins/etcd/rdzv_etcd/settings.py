"""The etcd adapter's configuration, parsed from ``RendezvousParameters``.

Everything the adapter needs is read and validated here, before any
connection is made: the endpoint list (scheme decides TLS), credentials
(never from the command line), TLS files (read once, so a missing or
unreadable file fails at start), the key prefix, the lease TTL and the
client's timeouts. Errors are :class:`~rdzv_core.errors.RdzvConfigError`
naming the key or endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rdzv_core.config import ConfReader
from rdzv_core.endpoints import Endpoint, parse_endpoints
from rdzv_core.errors import RdzvConfigError
from rdzv_core.settings import CoreSettings, Timeouts

DEFAULT_PORT = 2379
DEFAULT_KEY_PREFIX = "/rdzv"
#: Same default as torch's own etcd backend: a run's keys outlive its last
#: write by two hours.
DEFAULT_TTL = 7200.0
PASSWORD_ENV = "RDZV_ETCD_PASSWORD"
CONF_KEYS = frozenset({"username", "password_file", "cacert", "cert", "key", "key_prefix", "ttl"})


@dataclass(frozen=True)
class Target:
    """One cluster member as the client dials it."""

    netloc: str
    tls: bool

    def __str__(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.netloc}"


@dataclass(frozen=True)
class TlsMaterial:
    """PEM contents of the TLS files (``None`` = not configured)."""

    cacert: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class EtcdSettings:
    """Validated settings of one etcd adapter instance."""

    backend: str
    run_id: str
    targets: tuple[Target, ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsMaterial | None = None
    key_prefix: str = DEFAULT_KEY_PREFIX
    ttl: float = DEFAULT_TTL
    timeouts: Timeouts = Timeouts()

    @property
    def endpoint_label(self) -> str:
        """All members, comma-separated, as shown in error messages."""
        return ",".join(str(t) for t in self.targets)

    @classmethod
    def of(cls, core: CoreSettings) -> EtcdSettings:
        """Validate the endpoint and the etcd keys (raises ``RdzvConfigError``);
        the core's settings give the rest."""
        conf = core.conf
        endpoints = parse_endpoints(core.endpoint or "localhost", DEFAULT_PORT, schemes=("http", "https"))
        tls = _tls_material(conf)
        username = conf.username(endpoints)
        return cls(
            backend=core.backend,
            run_id=core.run_id,
            targets=_targets(endpoints, tls is not None),
            username=username,
            password=_password(conf, username),
            tls=tls,
            key_prefix=conf.key_prefix(DEFAULT_KEY_PREFIX).rstrip("/"),
            ttl=conf.seconds("ttl", DEFAULT_TTL),
            timeouts=core.timeouts,
        )


def _targets(endpoints: list[Endpoint], have_tls_files: bool) -> tuple[Target, ...]:
    targets = []
    for ep in endpoints:
        if ep.password is not None:
            raise RdzvConfigError(
                f"endpoint '{ep}': do not put a password in --rdzv-endpoint (it shows in the process list); "
                f"use --rdzv-conf password_file=PATH or ${PASSWORD_ENV}"
            )
        if ep.path not in ("", "/"):
            raise RdzvConfigError(f"endpoint '{ep}': an etcd endpoint takes no path (got '{ep.path}')")
        if ep.scheme == "http" and have_tls_files:
            raise RdzvConfigError(
                f"endpoint '{ep}' is plain http:// but TLS files (cacert/cert/key) are configured; "
                "use https:// or a bare host:port"
            )
        tls = ep.scheme == "https" or (ep.scheme is None and have_tls_files)
        targets.append(Target(ep.netloc, tls))
    if len({t.tls for t in targets}) > 1:
        raise RdzvConfigError("the etcd endpoints mix http:// and https://; one cluster speaks one of them")
    seen: set[str] = set()
    unique = []
    for target in targets:
        if target.netloc not in seen:
            seen.add(target.netloc)
            unique.append(target)
    return tuple(unique)


def _read_pem(conf: ConfReader, key: str, path: Path | None, marker: bytes) -> bytes | None:
    """The PEM contents of ``path`` (the value of ``key``), which must hold a ``marker`` block."""
    if path is None:
        return None
    data = conf.file_bytes(key, path)
    if b"-----BEGIN" not in data or marker not in data:
        raise conf.error(key, str(path), f"a PEM file holding a {marker.decode().lower()}")
    return data


def _tls_material(conf: ConfReader) -> TlsMaterial | None:
    files = conf.tls_files("cacert", "cert", "key")
    if files.cert is not None and files.key is None:
        raise RdzvConfigError(
            f"rdzv backend '{conf.backend}': --rdzv-conf cert is set but key is not; a client certificate needs both"
        )
    if not files.given:
        return None
    return TlsMaterial(_read_pem(conf, "cacert", files.ca, b"CERTIFICATE"),
                       _read_pem(conf, "cert", files.cert, b"CERTIFICATE"),
                       _read_pem(conf, "key", files.key, b"PRIVATE KEY"))


def _password(conf: ConfReader, username: str | None) -> str | None:
    """The password of ``username`` (``None`` without a user: an ambient
    variable without a username is not ours); a user needs one."""
    if username is None:
        if conf.raw("password_file") is not None:
            raise RdzvConfigError(
                f"rdzv backend '{conf.backend}': --rdzv-conf password_file is set but username is not"
            )
        return None
    password = conf.password("password_file", PASSWORD_ENV)
    if password is None:
        raise RdzvConfigError(
            f"rdzv backend '{conf.backend}': --rdzv-conf username={username!r} needs a password: "
            f"set --rdzv-conf password_file=PATH or ${PASSWORD_ENV}"
        )
    return password
