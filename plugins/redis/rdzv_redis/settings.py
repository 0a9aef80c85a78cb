"""Parse ``--rdzv-endpoint`` and the Redis ``--rdzv-conf`` keys.

Everything here is pure validation: no Redis client is imported and nothing
connects. Each bad value raises :class:`~rdzv_core.errors.RdzvConfigError`
naming the key or endpoint and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from rdzv_core.config import ConfReader
from rdzv_core.endpoints import Endpoint, parse_endpoints
from rdzv_core.errors import RdzvConfigError
from rdzv_core.settings import CoreSettings, Timeouts

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

#: Characters a key prefix may not contain (besides control characters):
#: hash-tag braces, glob syntax and spaces.
_PREFIX_FORBIDDEN = "{}*?[]\\ "


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
    timeouts: Timeouts = Timeouts()

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
    files = conf.tls_files("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
    check_hostname = conf.boolean("ssl_check_hostname", True)
    if not wanted:
        given = [key for key, path in zip(("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"),
                                          (files.ca, files.cert, files.key)) if path is not None]
        if given or conf.raw("ssl_check_hostname") is not None:
            keys = ", ".join(given) or "ssl_check_hostname"
            raise RdzvConfigError(
                f"--rdzv-conf {keys} given but TLS is off: use a rediss:// endpoint or --rdzv-conf ssl=true"
            )
        return None

    def text(path: Path | None) -> str | None:
        return None if path is None else str(path)

    return TlsSettings(text(files.ca), text(files.cert), text(files.key), bool(check_hostname))


def parse_settings(core: CoreSettings) -> RedisSettings:
    """Validate the endpoint and the Redis keys into :class:`RedisSettings`
    (raises RdzvConfigError); the core's settings give the rest."""
    conf = core.conf
    sentinel_master = conf.string("sentinel_master")
    cluster = bool(conf.boolean("cluster", False))
    if cluster and sentinel_master:
        raise RdzvConfigError("--rdzv-conf cluster=true and sentinel_master: a Redis Cluster has no Sentinels; give one")
    default_port = DEFAULT_SENTINEL_PORT if sentinel_master else DEFAULT_PORT
    endpoints = parse_endpoints(core.endpoint or "localhost", default_port, SCHEMES)
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
    password = conf.password("password_file", PASSWORD_ENV) or url_password
    sentinel_password = conf.password("sentinel_password_file", SENTINEL_PASSWORD_ENV)
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
        run_id=core.run_id,
        db=db,
        username=conf.username(endpoints),
        password=password,
        tls=tls,
        unix_path=unix[0].path if unix else None,
        sentinel_master=sentinel_master,
        sentinel_username=conf.string("sentinel_username"),
        sentinel_password=sentinel_password,
        cluster=cluster,
        key_prefix=conf.key_prefix(DEFAULT_KEY_PREFIX, _PREFIX_FORBIDDEN),
        ttl=conf.seconds("ttl", DEFAULT_TTL, allow_zero=True),
        timeouts=core.timeouts,
    )
