"""``init_method`` URLs of rdzv's schemes, parsed and checked (pure: no I/O).

::

    SCHEME://[USER@]HOST[:PORT][,HOST[:PORT]...]/RUN_ID?rank=R&world_size=N&KEY=VALUE...

``SCHEME`` is ``redis``/``rediss`` (the Redis adapter, ``rediss`` with TLS),
``etcd`` (the etcd adapter) or ``rdzv+<name>`` (any adapter, the host list
handed to it verbatim as its ``--rdzv-endpoint``). ``RUN_ID`` plays the part
of ``--rdzv-id``; every query parameter other than ``rank`` and
``world_size`` is a ``--rdzv-conf`` key of that adapter. ``rank`` and
``world_size`` fall back to ``$RANK`` and ``$WORLD_SIZE``. Everything here
raises :class:`~rdzv_core.errors.RdzvConfigError` naming the URL (its
password masked) and what is wrong with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from rdzv_core.settings import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT
from rdzv_core.errors import RdzvConfigError

#: Schemes named after a store, and the adapter each selects.
STORE_SCHEMES = {"redis": "redis", "rediss": "redis", "etcd": "etcd"}
#: ``rdzv+<name>://`` selects the adapter ``<name>``.
ADAPTER_SCHEME_PREFIX = "rdzv+"
RANK_ENV = "RANK"
#: Builds the error for one problem with the URL being parsed.
Fail = Callable[[str], RdzvConfigError]
WORLD_SIZE_ENV = "WORLD_SIZE"


@dataclass(frozen=True)
class InitRequest:
    """What one process asks for: which store, which run, who it is."""

    backend: str  # the adapter's name
    endpoint: str  # what --rdzv-endpoint would be
    run_id: str
    rank: int
    world_size: int
    conf: dict[str, str] = field(default_factory=dict)  # --rdzv-conf keys, timeouts filled in
    shown: str = ""  # the URL for messages, with any password masked


def adapter_schemes(names: list[str] | set[str] | frozenset[str]) -> dict[str, str]:
    """Every scheme rdzv answers for adapters ``names``, and the adapter of each."""
    schemes = {ADAPTER_SCHEME_PREFIX + name: name for name in names}
    schemes.update(STORE_SCHEMES)
    return schemes


def backend_of_scheme(scheme: str) -> str | None:
    """The adapter a scheme selects, or ``None`` if it is none of rdzv's."""
    scheme = scheme.lower()
    if scheme in STORE_SCHEMES:
        return STORE_SCHEMES[scheme]
    if scheme.startswith(ADAPTER_SCHEME_PREFIX) and len(scheme) > len(ADAPTER_SCHEME_PREFIX):
        return scheme[len(ADAPTER_SCHEME_PREFIX):]
    return None


def masked(url: str) -> str:
    """``url`` with the password of its user part, if any, replaced by ``***``."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hosts}"))


def _endpoint(scheme: str, userinfo: str, hosts: str, fail: Fail) -> str:
    """The adapter's ``--rdzv-endpoint`` for the URL's host list."""
    if scheme in ("redis", "rediss"):
        # Each item becomes a redis[s]:// URL: the adapter checks the user
        # and refuses a password (unless allow_endpoint_password=true).
        user = f"{userinfo}@" if userinfo else ""
        return ",".join(f"{scheme}://{user}{host}" for host in hosts.split(","))
    if scheme == "etcd":
        if userinfo:
            raise fail("an etcd:// URL takes no user: pass username=NAME and password_file=PATH "
                       "(or $RDZV_ETCD_PASSWORD) as query parameters")
        return hosts
    return f"{userinfo}@{hosts}" if userinfo else hosts


def _whole_number(name: str, text: str, fail: Fail) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise fail(f"{name} '{text}' is not a whole number") from None


def _identity(query: dict[str, str], env: Mapping[str, str], fail: Fail) -> tuple[int, int]:
    """``(rank, world_size)`` from the query, else from the environment."""
    found = {}
    for key, variable in (("rank", RANK_ENV), ("world_size", WORLD_SIZE_ENV)):
        text = query.pop(key, None)
        if text is None:
            text = env.get(variable)
        if text is None or not text.strip():
            raise fail(f"no {key}: add {key}=N to the URL's query, pass {key}= to init_process_group, "
                       f"or set ${variable}")
        found[key] = _whole_number(key, text, fail)
    rank, world_size = found["rank"], found["world_size"]
    if world_size < 1:
        raise fail(f"world_size {world_size} must be at least 1")
    if not 0 <= rank < world_size:
        raise fail(f"rank {rank} is not in 0..{world_size - 1} (world_size {world_size})")
    return rank, world_size


def _query(text: str, fail: Fail) -> dict[str, str]:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except ValueError:
        raise fail("the query is not KEY=VALUE pairs joined by '&'") from None
    query: dict[str, str] = {}
    for key, value in pairs:
        if key in query:
            raise fail(f"query parameter '{key}' is given twice")
        query[key] = value
    return query


def _with_timeouts(conf: dict[str, str], timeout: float | None) -> dict[str, str]:
    """``conf`` with connect/read timeouts that torch's store ``timeout`` bounds,
    where the URL gives none (an explicit value wins)."""
    filled = dict(conf)
    if timeout is not None and timeout > 0:
        filled.setdefault("connect_timeout", f"{min(DEFAULT_CONNECT_TIMEOUT, timeout):g}")
        filled.setdefault("read_timeout", f"{min(DEFAULT_READ_TIMEOUT, timeout):g}")
    return filled


def parse_init_url(url: str, env: Mapping[str, str], timeout: float | None = None) -> InitRequest:
    """Parse an rdzv ``init_method`` URL; ``env`` supplies ``RANK``/``WORLD_SIZE``
    and ``timeout`` (torch's store timeout, seconds) bounds the default
    ``connect_timeout`` and ``read_timeout``."""
    shown = masked(url)

    def fail(message: str) -> RdzvConfigError:
        return RdzvConfigError(f"init_method '{shown}': {message}")

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    backend = backend_of_scheme(scheme)
    if backend is None:
        raise fail(f"'{scheme}://' is not an rdzv scheme (redis://, rediss://, etcd://, rdzv+<backend>://)")
    if parts.fragment:
        raise fail("the URL has a '#' part: percent-encode '#' in values as %23")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    if not hosts:
        raise fail(f"no host: write {scheme}://HOST:PORT/RUN_ID?rank=R&world_size=N")
    path = parts.path.lstrip("/")
    if not path or "/" in path:
        raise fail(f"the path must be the run id, one segment: {scheme}://{hosts}/RUN_ID (got '{parts.path}')")
    query = _query(parts.query, fail)
    rank, world_size = _identity(query, env, fail)
    return InitRequest(
        backend=backend,
        endpoint=_endpoint(scheme, unquote(userinfo), hosts, fail),
        run_id=unquote(path),
        rank=rank,
        world_size=world_size,
        conf=_with_timeouts(query, timeout),
        shown=shown,
    )


def in_url_terms(message: str) -> str:
    """An adapter's configuration message reworded for a URL: its conf keys
    are the URL's query parameters, its endpoint the URL's hosts."""
    return message.replace("--rdzv-conf ", "query parameter ").replace("--rdzv-endpoint", "the URL's hosts")


def membership_problem(world_size: int, stored_world_size: bytes | None, joined: int | None) -> str | None:
    """Why a process may not take part in a run, or ``None`` if it may.

    ``stored_world_size`` is what the run's first process recorded;
    ``joined`` is this process's number among the run's joiners (1, 2, ...).
    A run whose processes disagree on the world size, or which has more
    joiners than its world size (the run id was used before on this store),
    would otherwise fail later and less clearly inside the process group.
    """
    if stored_world_size is not None and stored_world_size != str(world_size).encode():
        theirs = stored_world_size.decode(errors="replace")
        return f"this process says world_size={world_size}, but the run was started with world_size={theirs}"
    if joined is not None and joined > world_size:
        return (f"this is process number {joined} to join a run of world_size {world_size}: the run id was "
                f"used before on this store. Give every job a new run id, or delete the old run's keys")
    return None
