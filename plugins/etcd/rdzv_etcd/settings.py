"""The etcd adapter's configuration, parsed from ``RendezvousParameters``.

Everything the adapter needs is read and validated here, before any
connection is made: the endpoint list (scheme decides TLS), credentials
(never from the command line), TLS files (read once, so a missing or
unreadable file fails at start), the key prefix, the lease TTL and the
client's timeouts. Errors are :class:`~rdzv_core.errors.RdzvConfigError`
naming the key or endpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rdzv_core.config import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, ConfReader
from rdzv_core.endpoints import Endpoint, parse_endpoints
from rdzv_core.errors import RdzvConfigError

if TYPE_CHECKING:  # pragma: no cover
    from torch.distributed.elastic.rendezvous import RendezvousParameters

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
    read_timeout: float = DEFAULT_READ_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT

    @property
    def endpoint_label(self) -> str:
        """All members, comma-separated, as shown in error messages."""
        return ",".join(str(t) for t in self.targets)

    @classmethod
    def from_params(cls, params: RendezvousParameters) -> EtcdSettings:
        """Parse and validate ``params`` (raises ``RdzvConfigError``)."""
        conf = ConfReader.of(params)
        endpoints = parse_endpoints(params.endpoint or "localhost", DEFAULT_PORT, schemes=("http", "https"))
        tls = _tls_material(conf)
        username = _username(conf, endpoints)
        return cls(
            backend=params.backend,
            run_id=params.run_id,
            targets=_targets(endpoints, tls is not None),
            username=username,
            password=_password(conf, username),
            tls=tls,
            key_prefix=_key_prefix(conf),
            ttl=conf.seconds("ttl", DEFAULT_TTL),
            read_timeout=conf.seconds("read_timeout", DEFAULT_READ_TIMEOUT),
            connect_timeout=conf.seconds("connect_timeout", DEFAULT_CONNECT_TIMEOUT),
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


def _read_file(conf: ConfReader, key: str) -> bytes | None:
    path = conf.existing_file(key)
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise conf.error(key, str(path), f"a readable file ({exc.strerror})") from None
    if not data.strip():
        raise conf.error(key, str(path), "a non-empty file")
    return data


def _tls_material(conf: ConfReader) -> TlsMaterial | None:
    cacert, cert, key = (_read_file(conf, name) for name in ("cacert", "cert", "key"))
    if (cert is None) != (key is None):
        given, missing = ("cert", "key") if cert is not None else ("key", "cert")
        raise RdzvConfigError(
            f"rdzv backend '{conf.backend}': --rdzv-conf {given} is set but {missing} is not; "
            "a client certificate needs both"
        )
    for name, data, marker in (("cacert", cacert, b"CERTIFICATE"), ("cert", cert, b"CERTIFICATE"), ("key", key, b"PRIVATE KEY")):
        if data is not None and (b"-----BEGIN" not in data or marker not in data):
            raise conf.error(name, conf.string(name), f"a PEM file holding a {marker.decode().lower()}")
    if cacert is None and cert is None:
        return None
    return TlsMaterial(cacert, cert, key)


def _username(conf: ConfReader, endpoints: list[Endpoint]) -> str | None:
    username = conf.string("username")
    in_urls = {ep.username for ep in endpoints if ep.username}
    if len(in_urls) > 1 or (username and in_urls and in_urls != {username}):
        raise RdzvConfigError(
            f"rdzv backend '{conf.backend}': the endpoints and --rdzv-conf username name different users"
        )
    return username or (in_urls.pop() if in_urls else None)


def _password(conf: ConfReader, username: str | None) -> str | None:
    path = conf.existing_file("password_file")
    if path is not None:
        if username is None:
            raise RdzvConfigError(
                f"rdzv backend '{conf.backend}': --rdzv-conf password_file is set but username is not"
            )
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise conf.error("password_file", str(path), f"a readable UTF-8 file ({exc})") from None
        password = text.rstrip("\r\n")
        if not password:
            raise conf.error("password_file", str(path), "a file holding a non-empty password")
        return password
    env = os.environ.get(PASSWORD_ENV)
    if username is None:
        return None  # an ambient variable without a username is not ours
    if env is None or env == "":
        raise RdzvConfigError(
            f"rdzv backend '{conf.backend}': --rdzv-conf username={username!r} needs a password: "
            f"set --rdzv-conf password_file=PATH or ${PASSWORD_ENV}"
        )
    return env


def _key_prefix(conf: ConfReader) -> str:
    prefix = conf.string("key_prefix", DEFAULT_KEY_PREFIX) or DEFAULT_KEY_PREFIX
    if any(ord(ch) < 32 for ch in prefix):
        raise conf.error("key_prefix", prefix, "a key prefix without control characters")
    return prefix.rstrip("/")
