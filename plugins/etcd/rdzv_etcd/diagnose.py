"""``rdzv doctor`` for etcd: where the adapter connects, the server's version,
and the requests the adapter needs, exercised on a scratch key of the run.

A lease grant, a transaction that creates the scratch key
(``{key_prefix}/{run}/doctor/<random>``) on that lease, a watch that must
see that put, and the key's deletion: each is one line, and one that the
server refuses (``PERMISSION_DENIED`` under auth) is a FAIL naming it.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Callable

from rdzv_core.doctor.checks import Check, NetworkTarget, TlsTarget, failed, passed, warned
from rdzv_core.endpoints import parse_endpoint

from rdzv_etcd.errors import EtcdAuthError
from rdzv_etcd.ops import Get, Put, RevisionIs
from rdzv_etcd.settings import DEFAULT_PORT, EtcdSettings

if TYPE_CHECKING:  # pragma: no cover
    from rdzv_core.settings import CoreSettings

    from rdzv_etcd.adapter import EtcdStateStore

#: etcd releases that crash when a deadline cancels a read-only transaction (etcd issue 14110).
CRASHING = ((3, 5, 0), (3, 5, 4))


def network_targets(core: CoreSettings) -> list[NetworkTarget]:
    """Every member, with the TLS files the adapter would use (by path)."""
    settings = EtcdSettings.of(core)
    conf = core.conf
    tls = TlsTarget(conf.string("cacert"), conf.string("cert"), conf.string("key"), ca_key="cacert")
    found = []
    for target in settings.targets:
        endpoint = parse_endpoint(target.netloc, DEFAULT_PORT)
        found.append(NetworkTarget(endpoint.host, endpoint.port, tls if target.tls else None))
    return found


def version_check(member: str) -> Check:
    """The version in ``"member (etcd 3.5.1)"`` against the releases to avoid."""
    found = re.search(r"etcd (\d+)\.(\d+)\.(\d+)", member)
    if found is None:
        return passed("etcd server", member)
    version = tuple(int(part) for part in found.groups())
    if CRASHING[0] <= version <= CRASHING[1]:
        return warned("etcd server", f"{member}: 3.5.0 to 3.5.4 can crash when a client's deadline cancels a "
                      "read-only transaction (etcd issue 14110)", "run etcd 3.5.5 or later")
    return passed("etcd server", member)


def _probe(name: str, what: str, step: Callable[[], object], user: str | None, prefix: str) -> Check:
    """One request: PASS, or FAIL naming what the server refused."""
    try:
        step()
    except EtcdAuthError as exc:
        who = f"user '{user}'" if user else "this client"
        return failed(name, f"{what}: refused for {who}: {exc}",
                      f"etcdctl role grant-permission <the user's role> --prefix readwrite {prefix}/")
    except Exception as exc:  # noqa: BLE001 - every failure is a line
        return failed(name, f"{what}: {type(exc).__name__}: {exc}", "see the message")
    return passed(name, what)


def diagnose(adapter: EtcdStateStore) -> list[Check]:
    """The server line, then lease grant, txn, watch and delete on a scratch key."""
    settings = adapter.settings
    client = adapter._client  # noqa: SLF001 - this plugin's own adapter
    keys = adapter._keys  # noqa: SLF001
    budget = settings.timeouts.read
    full = keys.key(f"doctor/{uuid.uuid4().hex[:8]}")
    shown = full.decode(errors="replace")
    try:
        member = client.connect(budget, keys.root)
    except Exception as exc:  # noqa: BLE001 - reported as a line
        return [failed("etcd server", f"the status request failed: {exc}", "see the message")]
    done: dict[str, int] = {}

    def grant() -> None:
        done["lease"] = client.lease_grant(30, budget=budget)

    def txn() -> None:
        result = client.txn([RevisionIs(full, 0, created=True)], [Put(full, b"rdzv doctor", done.get("lease", 0))],
                            [Get(full)], budget=budget)
        done["revision"] = result.revision

    def watch() -> None:
        for events in client.watch([full], done["revision"], min(budget, 10.0)):
            if any(kv.key == full for _is_put, kv in events):
                return
        raise TimeoutError("the watch did not deliver the scratch key's put")

    steps = [("etcd lease grant", "a 30 s lease (LeaseGrant)", grant),
             ("etcd txn", f"a transaction creating {shown} (Txn: compare, put, range)", txn),
             ("etcd watch", f"a watch of {shown} that saw the put (Watch)", watch),
             ("etcd delete", f"{shown} deleted again (DeleteRange)", lambda: client.delete(full, budget=budget))]
    checks = [version_check(member)]
    for name, what, step in steps:
        checks.append(_probe(name, what, step, settings.username, settings.key_prefix))
        if name == "etcd txn" and checks[-1].verdict != "PASS":
            break  # nothing to watch or delete
    return checks
