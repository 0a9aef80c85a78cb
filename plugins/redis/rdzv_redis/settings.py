"""Parse ``--rdzv-endpoint`` and the Redis ``--rdzv-conf`` keys.

Everything here is pure validation: no Redis client is imported and nothing
connects. Each bad value raises :class:`~rdzv_core.errors.RdzvConfigError`
naming the key or endpoint and what was expected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from rdzv_core.config import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, ConfReader
from rdzv_core.endpoints import Endpoint, parse_endpoints
from rdzv_core.errors import RdzvConfigError

if TYPE_CHECKING:  # pragma: no cover
    from torch.distributed.elastic.rendezvous import RendezvousParameters

DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379
DEFAULT_KEY_PREFIX = "rdzv"
DEFAULT_TTL = 86400.0
PASSWORD_ENV = "RDZV_REDIS_PASSWORD"
SENTINEL_PASSWORD_ENV = "RDZV_REDIS_SENTINEL_PASSWORD"
SCHEMES = ("redis", "rediss", "unix")

#: ``--rdzv-conf`` keys of the Redis adapter (the core's own keys come on top).
CONF_KEYS = frozenset(
    {
        "username",
        "password_file",
        "db",
        "ssl",
        "ssl_ca_certs",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_check_hostname",
        "key_prefix",
        "ttl",
        "sentinel_master",
        "sentinel_username",
        "sentinel_password_file",
        "allow_endpoint_password",
        "cluster",
    }
)

#: Characters a key prefix may not contain: hash-tag braces and glob syntax.
_PREFIX_FORBIDDEN = set("{}*?[]\\ \t\r\n")


@dataclass(frozen=True)
class TlsSettings:
    """TLS client settings (``None`` files mean: use the system defaults)."""

    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    check_hostname: bool = True


@dataclass(frozen=True)
class RedisSettings:
    """Everything needed to connect to Redis for one run."""

    endpoints: tuple[Endpoint, ...]
    run_id: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsSettings | None = None
    unix_path: str | None = None
    sentinel_master: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    cluster: bool = False
    key_prefix: str = DEFAULT_KEY_PREFIX
    ttl: float = DEFAULT_TTL
    read_timeout: float = DEFAULT_READ_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT

    @property
    def describe(self) -> str:
        """Where the store is, for messages (never includes a password)."""
        if self.unix_path is not None:
            return f"unix://{self.unix_path} (db {self.db})"
        scheme = "rediss" if self.tls is not None else "redis"
        user = f"{self.username}@" if self.username else ""
        hosts = ",".join(e.netloc for e in self.endpoints)
        if self.sentinel_master is not None:
            return f"{scheme}://{user}master '{self.sentinel_master}' via sentinels {hosts} (db {self.db})"
        if self.cluster:
            return f"{scheme}://{user}cluster via {hosts}"
        return f"{scheme}://{user}{self.endpoints[0].netloc}/{self.db}"

    @property
    def ttl_ms(self) -> int:
        """The run's key expiry in milliseconds (0: keys never expire)."""
        return int(round(self.ttl * 1000)) if self.ttl > 0 else 0


def _read_secret(conf: ConfReader, key: str, env: str) -> str | None:
    """A password from the file named by conf ``key``, else from ``$env``."""
    path = conf.existing_file(key)
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8").strip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise conf.error(key, str(path), f"a readable UTF-8 file ({exc})") from None
        if not text:
            raise conf.error(key, str(path), "a file holding a non-empty password")
        return text
    value = os.environ.get(env)
    if value is not None and value.strip("\r\n"):
        return value.strip("\r\n")
    return None


def _key_prefix(conf: ConfReader) -> str:
    prefix = conf.string("key_prefix", DEFAULT_KEY_PREFIX) or DEFAULT_KEY_PREFIX
    bad = sorted(set(prefix) & _PREFIX_FORBIDDEN)
    if bad:
        raise conf.error(
            "key_prefix", prefix, f"a prefix without {' '.join(repr(c) for c in bad)} (braces, glob characters, spaces)"
        )
    return prefix


def _db(conf: ConfReader, endpoints: list[Endpoint]) -> int:
    db = conf.integer("db", 0, minimum=0) if conf.raw("db") is not None else None
    for ep in endpoints:
        path = ep.path.strip("/") if ep.scheme in ("redis", "rediss") else ""
        if not path:
            continue
        if not path.isdigit():
            raise RdzvConfigError(f"endpoint '{ep}': the path must be a database number, e.g. /0 (got '/{path}')")
        if db is not None and db != int(path):
            raise RdzvConfigError(f"endpoint '{ep}' selects database {path} but --rdzv-conf db={db}; give one of them")
        db = int(path)
    return db or 0


def _username(conf: ConfReader, endpoints: list[Endpoint]) -> str | None:
    username = conf.string("username")
    for ep in endpoints:
        if ep.username is None:
            continue
        if username is not None and username != ep.username:
            raise RdzvConfigError(
                f"endpoint '{ep}' names user '{ep.username}' but --rdzv-conf username={username}; give one of them"
            )
        username = ep.username
    return username


def _check_no_url_password(conf: ConfReader, endpoints: list[Endpoint]) -> str | None:
    url_password = next((ep.password for ep in endpoints if ep.password is not None), None)
    if url_password is None:
        return None
    if not conf.boolean("allow_endpoint_password", False):
        raise RdzvConfigError(
            "the endpoint contains a password; a password on the command line is visible to every user of "
            "the machine (ps, /proc) and in job logs. Put it in a file and pass --rdzv-conf "
            f"password_file=PATH, or set ${PASSWORD_ENV} (to accept it anyway: --rdzv-conf "
            "allow_endpoint_password=true)"
        )
    return url_password


def _tls(conf: ConfReader, endpoints: list[Endpoint]) -> TlsSettings | None:
    schemes = {ep.scheme for ep in endpoints}
    if "rediss" in schemes and schemes - {"rediss"}:
        raise RdzvConfigError("mixing rediss:// and plain endpoints in one list is not supported")
    wanted = conf.boolean("ssl")
    if "rediss" in schemes:
        if wanted is False:
            raise RdzvConfigError("the endpoint is rediss:// (TLS) but --rdzv-conf ssl=false")
        wanted = True
    files = {key: conf.existing_file(key) for key in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")}
    check_hostname = conf.boolean("ssl_check_hostname", True)
    if not wanted:
        given = [key for key, path in files.items() if path is not None]
        if given or conf.raw("ssl_check_hostname") is not None:
            keys = ", ".join(given) or "ssl_check_hostname"
            raise RdzvConfigError(
                f"--rdzv-conf {keys} given but TLS is off: use a rediss:// endpoint or --rdzv-conf ssl=true"
            )
        return None
    if files["ssl_keyfile"] is not None and files["ssl_certfile"] is None:
        raise RdzvConfigError("--rdzv-conf ssl_keyfile needs ssl_certfile (the client certificate) as well")

    def text(path: Path | None) -> str | None:
        return None if path is None else str(path)

    return TlsSettings(text(files["ssl_ca_certs"]), text(files["ssl_certfile"]), text(files["ssl_keyfile"]),
                       bool(check_hostname))


def parse_settings(params: RendezvousParameters) -> RedisSettings:
    """Validate ``params`` into :class:`RedisSettings` (raises RdzvConfigError)."""
    conf = ConfReader.of(params)
    sentinel_master = conf.string("sentinel_master")
    cluster = bool(conf.boolean("cluster", False))
    if cluster and sentinel_master:
        raise RdzvConfigError("--rdzv-conf cluster=true and sentinel_master: a Redis Cluster has no Sentinels; give one")
    default_port = DEFAULT_SENTINEL_PORT if sentinel_master else DEFAULT_PORT
    endpoints = parse_endpoints(params.endpoint or "localhost", default_port, SCHEMES)
    unix = [ep for ep in endpoints if ep.scheme == "unix"]
    if unix and (len(endpoints) > 1 or sentinel_master or cluster):
        raise RdzvConfigError("a unix:// endpoint must be the only endpoint (and cannot point at Sentinels or a cluster)")
    if len(endpoints) > 1 and not (sentinel_master or cluster):
        raise RdzvConfigError(
            f"{len(endpoints)} endpoints given: a list of endpoints is a list of Sentinels (--rdzv-conf "
            "sentinel_master=NAME) or of Redis Cluster seed nodes (--rdzv-conf cluster=true); give one "
            "endpoint for a single server"
        )
    for ep in endpoints:
        if ep.scheme != "unix" and ep.port == 0:
            raise RdzvConfigError(f"endpoint '{ep}': port 0 is not a Redis port")
    if sentinel_master is not None and any(c in sentinel_master for c in " \t,"):
        raise conf.error("sentinel_master", sentinel_master, "a master name without spaces or commas")
    url_password = _check_no_url_password(conf, endpoints)
    password = _read_secret(conf, "password_file", PASSWORD_ENV) or url_password
    sentinel_password = _read_secret(conf, "sentinel_password_file", SENTINEL_PASSWORD_ENV)
    if not sentinel_master and any(conf.raw(k) is not None for k in ("sentinel_username", "sentinel_password_file")):
        raise RdzvConfigError("sentinel_username / sentinel_password_file need --rdzv-conf sentinel_master=NAME")
    tls = _tls(conf, endpoints)
    db = _db(conf, endpoints)
    if cluster and db != 0:
        raise RdzvConfigError(f"a Redis Cluster has database 0 only; drop db={db} (or the /{db} in the endpoint)")
    if unix and tls is not None:
        raise RdzvConfigError("TLS over a unix:// socket is not supported; drop ssl/ssl_* or use rediss://HOST:PORT")
    return RedisSettings(
        endpoints=tuple(replace(ep, password=None) for ep in endpoints),  # keep no secret in reprs
        run_id=params.run_id,
        db=db,
        username=_username(conf, endpoints),
        password=password,
        tls=tls,
        unix_path=unix[0].path if unix else None,
        sentinel_master=sentinel_master,
        sentinel_username=conf.string("sentinel_username"),
        sentinel_password=sentinel_password,
        cluster=cluster,
        key_prefix=_key_prefix(conf),
        ttl=conf.seconds("ttl", DEFAULT_TTL, allow_zero=True),
        read_timeout=conf.seconds("read_timeout", DEFAULT_READ_TIMEOUT),
        connect_timeout=conf.seconds("connect_timeout", DEFAULT_CONNECT_TIMEOUT),
    )
