"""``rdzv doctor`` for Redis: where the adapter connects, the server's version,
and each command the adapter needs, exercised on a scratch key of the run.

Every probe runs the real command as the agents' user on a scratch key and
channel of the run (``doctor/<random>``, deleted afterwards), so an ACL that
lacks a command, the run's key pattern or its channel pattern shows up as
one FAIL line naming what is missing. Redis's ``ACL DRYRUN`` would need the
``acl`` command, which a least-privilege agent user does not have.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any, Callable

from rdzv_core.doctor.checks import Check, NetworkTarget, TlsTarget, failed, passed, warned

from rdzv_redis import scripts
from rdzv_redis.settings import RedisSettings, parse_settings

if TYPE_CHECKING:  # pragma: no cover
    from rdzv_core.settings import CoreSettings

    from rdzv_redis.adapter import RedisStateStore

#: The oldest Redis rdzv works with (docs/stores/redis.md), and for Redis Cluster.
MIN_VERSION = (6, 2)
MIN_CLUSTER_VERSION = (7, 0)


def network_targets(core: CoreSettings) -> list[NetworkTarget]:
    """The endpoints (servers, Sentinels or cluster seeds) with the adapter's TLS settings."""
    settings = parse_settings(core)
    if settings.unix_path is not None:
        return []
    tls = settings.tls
    shown = None if tls is None else TlsTarget(tls.ca_certs, tls.certfile, tls.keyfile, tls.check_hostname,
                                               ca_key="ssl_ca_certs")
    return [NetworkTarget(ep.host, ep.port, shown) for ep in settings.endpoints]


def missing_permission(message: str, script: str | None = None) -> str | None:
    """What a refused command lacked: a command (``'publish'``), or
    ``keys``/``channels`` for a key or channel pattern; ``None`` for another
    error. ``script`` is the Lua text that ran: inside a script Redis names
    only the line (``@user_script:19``), and that line names the command."""
    text = message.lower()
    if "can't run this command" in text and script is not None:
        line = re.search(r"@user_script:(\d+)", message)
        lines = script.splitlines()
        if line and 0 < int(line.group(1)) <= len(lines):
            call = re.search(r"redis\.call\('(\w+)'", lines[int(line.group(1)) - 1])
            if call:
                return call.group(1).lower()
        return "unknown"
    if "noperm" not in text and "no permissions" not in text:
        return None
    command = re.search(r"run the '([^']+)' command", message)
    if command:
        return command.group(1).lower()
    if "channel" in text:
        return "channels"
    return "keys" if "key" in text else "unknown"


def permission_fix(missing: str, user: str, prefix: str) -> str:
    """The ``ACL SETUSER`` that grants what :func:`missing_permission` found missing."""
    if missing == "keys":
        return f"ACL SETUSER {user} ~{prefix}:* (the run's keys)"
    if missing == "channels":
        return f"ACL SETUSER {user} &{prefix}:* (the run's Pub/Sub channels)"
    return f"ACL SETUSER {user} +{missing} (see docs/stores/redis.md for every command rdzv needs)"


def version_check(info: dict[str, Any], cluster: bool) -> Check:
    """The server's version and mode against what rdzv needs."""
    version = str(info.get("redis_version", "?"))
    mode = str(info.get("redis_mode", "standalone"))
    try:
        parts = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        parts = ()
    shown = f"Redis {version} ({mode})"
    needed = MIN_CLUSTER_VERSION if cluster else MIN_VERSION
    if len(parts) == 2 and parts < needed:
        return failed("redis server", f"{shown}: rdzv needs Redis {needed[0]}.{needed[1]} or newer"
                      + (" for Redis Cluster" if cluster else ""), "upgrade the server")
    return passed("redis server", shown)


def _server(client: Any, settings: RedisSettings, user: str) -> Check:
    """``INFO server``; a user that may not run it gets a warning (the version stays unknown)."""
    try:
        info = client.info("server")
    except Exception as exc:  # noqa: BLE001 - reported as a line
        missing = missing_permission(str(exc))
        if missing is not None:
            return warned("redis server", f"version unknown: user '{user}' may not run INFO (rdzv does not need it)",
                          f"ACL SETUSER {user} +info to let rdzv doctor read the version (optional)")
        return failed("redis server", f"INFO failed: {exc}", "check that the endpoint is a Redis server")
    if isinstance(info, dict) and "redis_version" not in info and info:
        info = next(iter(info.values()))  # a cluster answers per node
    return version_check(info if isinstance(info, dict) else {}, settings.cluster)


def _subscribe_round_trip(client: Any, channel: str, sharded: bool, timeout: float) -> None:
    """Subscribe to ``channel`` and wait for the server's confirmation."""
    pubsub = client.pubsub()
    try:
        (pubsub.ssubscribe if sharded else pubsub.subscribe)(channel)
        message = pubsub.get_message(timeout=timeout)
        if message is None:
            raise TimeoutError(f"no subscription confirmation within {timeout:g} s")
    finally:
        pubsub.close()


def _probe(name: str, what: str, call: Callable[[], object], user: str, prefix: str,
           script: str | None = None) -> Check:
    """Run one command as the agents' user: PASS, or FAIL naming the missing permission."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - every failure is a line
        missing = missing_permission(str(exc), script)
        if missing is None:
            return failed(name, f"{what}: {type(exc).__name__}: {exc}", "see the message")
        needed = missing.upper() if missing not in ("keys", "channels") else f"the run's {missing}"
        return failed(name, f"{what}: user '{user}' lacks the permission for {needed}: {exc}",
                      permission_fix(missing, user, prefix))
    return passed(name, what)


def diagnose(adapter: RedisStateStore) -> list[Check]:
    """The server line, then one line per command family the adapter uses."""
    settings = adapter.settings
    client = adapter.client
    ns = adapter.namespace
    user = settings.username or "default"
    prefix = settings.key_prefix
    scratch = f"doctor/{uuid.uuid4().hex[:8]}"
    data, channel = ns.data(scratch), ns.channel_of(scratch)
    sharded = settings.cluster
    publish = "SPUBLISH" if sharded else "PUBLISH"
    probes = [
        ("EVAL", f"a Lua script on the run's key {data}", lambda: client.eval("return 1", 1, data), None),
        ("EVALSHA", "the adapter's CAS script (EVALSHA/SCRIPT LOAD; GET, SET, INCR, PEXPIRE, PUBLISH in it)",
         lambda: adapter.cas(scratch, None, b"rdzv doctor"), scripts.sharded(scripts.CAS) if sharded else scripts.CAS),
        ("MGET", "a read of the run's key", lambda: adapter.read(scratch), None),
        (publish, f"on the run's channel {channel}",
         lambda: (client.spublish if sharded else client.publish)(channel, b"rdzv doctor"), None),
        ("SSUBSCRIBE" if sharded else "SUBSCRIBE", f"to the run's channel {channel}",
         lambda: _subscribe_round_trip(client, channel, sharded, settings.timeouts.read), None),
        ("SCAN", "a listing of the run's keys", lambda: adapter.list_keys("doctor/"), None),
        ("DEL", "the scratch key deleted again", lambda: client.delete(data, ns.version(scratch)), None),
    ]
    checks = [_server(client, settings, user)]
    checks += [_probe(f"redis {name}", what, call, user, prefix, script) for name, what, call, script in probes]
    return checks
