"""The order of ``rdzv doctor``'s checks, from the configuration to this node's own side.

The store's side goes as an agent's connection would, and stops at the
first failure (a host that does not resolve cannot be connected to):
configuration and endpoint, then for each endpoint DNS, TCP and (where
configured) TLS, then connecting and logging in through the adapter, the
adapter's own checks (:meth:`~rdzv_core.adapter.StateStore.diagnose`) and
the store's round-trip latency. This node's side always runs: the name it
advertises, whether that resolves and can be listened on, and IPv6.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Callable, TypeVar

from rdzv_core.doctor import probes, verdicts
from rdzv_core.doctor.checks import FAIL, Check, NetworkTarget, failed, passed

if TYPE_CHECKING:  # pragma: no cover
    from rdzv_core.admin.target import Connection, RunTarget
    from rdzv_core.plugins import BackendRegistry

#: How many reads the latency check times.
LATENCY_SAMPLES = 30
#: Seconds a step may take beyond its own timeout before doctor gives up on it.
GRACE = 5.0
T = TypeVar("T")


class StepTimedOut(Exception):
    """A step of doctor did not return in time (its thread is left behind)."""


def within(seconds: float, step: Callable[[], T]) -> T:
    """``step()`` in a daemon thread, its result or its exception; raises
    :class:`StepTimedOut` after ``seconds``. A client that waits forever on
    a server that never answers (a c10d TCPStore client dialing another
    service does) then cannot hang doctor: the thread is abandoned, and the
    process exits without it."""
    outcome: list[tuple[bool, object]] = []
    thread = threading.Thread(target=lambda: outcome.append(_outcome(step)), name="rdzv-doctor-step", daemon=True)
    thread.start()
    thread.join(seconds)
    if not outcome:
        raise StepTimedOut(f"no answer within {seconds:g} s")
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[return-value]
    raise value  # type: ignore[misc]


def _outcome(step: Callable[[], T]) -> tuple[bool, object]:
    try:
        return True, step()
    except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
        return False, exc


def _endpoint_checks(target: RunTarget, registry: BackendRegistry) -> tuple[list[Check], list[NetworkTarget]] | list[Check]:
    """The configuration and the endpoint, parsed as the adapter parses them:
    ``(checks, targets)``, or the checks alone when one failed."""
    from rdzv_core.errors import PluginError, UnknownBackendError
    from rdzv_core.settings import CoreSettings

    try:
        adapter_cls = registry.get(target.backend)
    except (UnknownBackendError, PluginError) as exc:
        return [failed("backend", str(exc), "install the backend's package (rdzv backends lists what is installed)")]
    params = target.params()
    try:
        core = CoreSettings.parse(params, adapter_cls.conf_keys)
    except ValueError as exc:
        return [failed("configuration", str(exc), "correct --rdzv-conf")]
    try:
        targets = adapter_cls.network_targets(params, core)
    except ValueError as exc:
        return [failed("endpoint parse", str(exc), "correct --rdzv-endpoint (or the conf keys it names)")]
    shown = ", ".join(t.netloc + (" (TLS)" if t.tls else "") for t in targets)
    if not targets:
        shown = f"'{target.endpoint}': no network endpoint to check for this backend and conf"
    return [passed("endpoint parse", f"backend '{target.backend}': {shown}")], targets


def _network_checks(target: NetworkTarget, timeout: float) -> tuple[list[Check], list[str], bool]:
    """DNS, TCP and TLS for one endpoint: the checks, the addresses its host
    resolved to, and whether the store there can be talked to (it resolved,
    took a TCP connection and, with TLS, a verified handshake)."""
    addresses, error = probes.resolve(target.host, target.port)
    checks = [verdicts.dns_check(target.host, addresses, error)]
    if checks[-1].verdict == FAIL:
        return checks, addresses, False
    address, error, seconds = probes.tcp_connect(addresses, target.port, timeout)
    checks.append(verdicts.tcp_check(target, address, error, seconds, target.hosted_by_launch))
    if address is None:
        return checks, addresses, False
    if target.tls is None:
        checks.append(passed("tls handshake", f"{target.netloc}: TLS is not configured (plain TCP)"))
        return checks, addresses, True
    outcome = probes.tls_handshake(target, address, timeout)
    checks.append(verdicts.tls_check(target, outcome.error, outcome.verify_failed, outcome.protocol))
    if outcome.not_after is not None:
        checks.append(verdicts.expiry_check(target.netloc, outcome.not_after, time.time()))
    return checks, addresses, outcome.error is None


def _latency(connection: Connection) -> Check:
    """Round trips of reads of a key nobody writes, through the core's guarded store."""
    from rdzv_core.guarded import StoreFailure

    key = f"doctor/latency-{uuid.uuid4().hex[:8]}"
    samples: list[float] = []
    errors = 0
    for _ in range(LATENCY_SAMPLES):
        started = time.perf_counter()
        try:
            connection.store.read(key)
        except StoreFailure:
            errors += 1
            continue
        samples.append(time.perf_counter() - started)
    return verdicts.latency_check(samples, errors, connection.core.read_timeout)


def _adapter_checks(connection: Connection) -> list[Check]:
    """The adapter's own checks; an adapter that raises gets a FAIL line."""
    try:
        return list(connection.adapter.diagnose())
    except Exception as exc:  # noqa: BLE001 - a third party's bug becomes one line
        return [failed("adapter checks", f"{type(connection.adapter).__name__}.diagnose() raised "
                       f"{type(exc).__name__}: {exc}", "report it to the adapter's authors")]


def store_checks(target: RunTarget, registry: BackendRegistry) -> tuple[list[Check], list[str]]:
    """The store's side (see the module docstring) and the store's addresses."""
    from rdzv_core.admin.target import AdminError, connect
    from rdzv_core.config import ConfReader
    from rdzv_core.settings import DEFAULT_CONNECT_TIMEOUT

    found = _endpoint_checks(target, registry)
    if not isinstance(found, tuple):
        return found, []
    checks, targets = found
    timeout = ConfReader(target.backend, target.conf).seconds("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    addresses: list[str] = []
    for network in targets:
        more, resolved, reached = _network_checks(network, timeout)
        checks += more
        addresses += resolved
        if not reached or any(check.verdict == FAIL for check in more):
            return checks, addresses
    try:
        connection = within(timeout + GRACE, lambda: connect(target, registry=registry))
    except StepTimedOut as exc:
        checks.append(verdicts.silent_store_check(target.backend, target.endpoint, str(exc)))
        return checks, addresses
    except AdminError as exc:
        hosted = any(network.hosted_by_launch for network in targets)
        checks.append(verdicts.connect_check(target.backend, target.endpoint, str(exc), hosted))
        return checks, addresses
    checks.append(verdicts.connect_check(target.backend, connection.adapter.endpoint, None, False))
    budget = connection.core.read_timeout + GRACE
    try:
        checks += within(budget, lambda: _adapter_checks(connection))
        checks.append(within(budget, lambda: _latency(connection)))
    except StepTimedOut as exc:
        checks.append(verdicts.silent_store_check(target.backend, connection.adapter.endpoint, str(exc)))
        return checks, addresses  # the step's thread may hold the connection: it is not closed
    connection.close()
    return checks, addresses


def node_checks(local_addr: str | None, store_addresses: list[str]) -> list[Check]:
    """This node's own side: the name it advertises (``--local-addr``, else
    ``socket.getfqdn()``, as torch's handlers and rdzv's do), whether it
    resolves, whether this node can listen there, and IPv6."""
    hostname = socket.gethostname()
    name = local_addr or socket.getfqdn()
    source = "--local-addr" if local_addr else f"socket.getfqdn() of hostname '{hostname}'"
    addresses, error = probes.resolve(name)
    own = probes.own_addresses()
    store_is_local = not store_addresses or verdicts.is_local_address(store_addresses, own)
    checks = [verdicts.advertised_check(name, source, addresses, error, store_is_local)]
    if addresses:
        checks.append(verdicts.bind_check(name, addresses[0], probes.can_bind(addresses[0])))
    checks.append(verdicts.ipv6_check(probes.ipv6_available(), verdicts.needs_ipv6(store_addresses + addresses)))
    return checks


def doctor(target: RunTarget, local_addr: str | None = None, registry: BackendRegistry | None = None) -> list[Check]:
    """Every check of ``rdzv doctor`` for ``target``, in order."""
    from rdzv_core.plugins import load_registry

    checks, addresses = store_checks(target, registry if registry is not None else load_registry())
    return checks + node_checks(local_addr, addresses)
