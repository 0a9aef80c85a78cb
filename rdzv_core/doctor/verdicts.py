"""The decisions of ``rdzv doctor``: what a probe's outcome means, as pure functions.

Nothing here touches the network or the clock: the probes
(:mod:`rdzv_core.doctor.probes`) collect facts, these functions turn each into
a :class:`~rdzv_core.doctor.checks.Check` with its verdict and fix.
"""

from __future__ import annotations

import ipaddress
from typing import Sequence

from rdzv_core.doctor.checks import Check, NetworkTarget, failed, passed, warned

#: A certificate that expires sooner than this many days is a warning.
EXPIRY_WARN_DAYS = 14
#: A store whose p99 round trip is slower than this (seconds) is a warning:
#: a join costs several round trips per node, a heartbeat one per interval.
LATENCY_WARN_P99 = 0.25


def dns_check(host: str, addresses: Sequence[str], error: str | None) -> Check:
    """Whether the store's host name resolves on this node."""
    if error is not None or not addresses:
        return failed("dns", f"'{host}' does not resolve on this node: {error or 'no address'}",
                      "check the host name in --rdzv-endpoint (spelling, domain) and this node's DNS "
                      "or /etc/hosts; or give the store's IP address")
    return passed("dns", f"'{host}' resolves to {', '.join(addresses)}")


def tcp_check(target: NetworkTarget, address: str | None, error: str | None, seconds: float,
              hosted_by_launch: bool) -> Check:
    """Whether a TCP connection to the store's port opens. On a backend whose
    store is hosted by an agent of the launch (c10d), nothing listening
    before the launch is expected: a warning, never a failure."""
    if error is None:
        return passed("tcp connect", f"{target.netloc} accepts connections (via {address}, {seconds * 1000:.1f} ms)")
    if hosted_by_launch:
        return warned("tcp connect", f"nothing answers at {target.netloc} ({error}); rdzv doctor joins a c10d "
                      "TCPStore as a client only and never hosts one",
                      f"none needed before the launch: the agent on {target.host} hosts the store once it runs; "
                      "run rdzv doctor again while the job runs to check the store itself")
    return failed("tcp connect", f"cannot connect to {target.netloc}: {error}",
                  "start the store, or correct the port in --rdzv-endpoint; check firewalls between this node "
                  "and the store")


def tls_check(target: NetworkTarget, error: str | None, verify_failed: bool, protocol: str | None) -> Check:
    """The TLS handshake and the certificate chain, as this client verifies them."""
    assert target.tls is not None
    if error is None:
        return passed("tls handshake", f"{target.netloc}: {protocol or 'TLS'}, certificate chain verified"
                      + ("" if target.tls.check_hostname else " (host name not checked)"))
    if verify_failed:
        trusted = f"the CA file {target.tls.cafile}" if target.tls.cafile else "the system's CA store"
        return failed("tls handshake", f"{target.netloc}: the server's certificate is not trusted by {trusted}: "
                      f"{error}", f"give the CA that signed the server's certificate with --rdzv-conf "
                      f"{target.tls.ca_key}=PATH (or fix the server's certificate chain)")
    return failed("tls handshake", f"{target.netloc}: the TLS handshake failed: {error}",
                  "is the server speaking TLS on this port? Check the endpoint's scheme and the client "
                  "certificate and key files")


def expiry_check(netloc: str, not_after: float, now: float) -> Check:
    """The server certificate's expiry (``not_after``/``now``: seconds since the epoch)."""
    days = (not_after - now) / 86400
    if days < 0:
        return failed("tls expiry", f"{netloc}: the server's certificate expired {-days:.0f} days ago",
                      "renew the server's certificate")
    if days < EXPIRY_WARN_DAYS:
        return warned("tls expiry", f"{netloc}: the server's certificate expires in {days:.1f} days",
                      "renew the server's certificate before a job outlives it")
    return passed("tls expiry", f"{netloc}: the server's certificate is valid for {days:.0f} more days")


def connect_fix(message: str) -> str:
    """The fix for a connection the adapter could not make, from its message."""
    text = message.lower()
    if "closes every connection" in text or "reset by peer" in text:
        return ("the service at the endpoint hangs up on this client: --rdzv-endpoint names another service "
                "(point it at the store's client port), or the store wants TLS")
    if any(word in text for word in ("login", "authentication", "password", "auth")):
        return "check --rdzv-conf username and password_file (or the password environment variable) " \
               "against the store's users"
    if any(word in text for word in ("tls", "ssl", "certificate")):
        return "check the TLS settings (CA file, client certificate and key) and the endpoint's scheme"
    if any(word in text for word in ("does not speak", "http/2", "protocol", "is it")):
        return "--rdzv-endpoint names another service: point it at the store's client port"
    if "permission" in text or "noperm" in text:
        return "grant the user the permissions the adapter needs (docs/stores/)"
    return "see the message: the agents would fail the same way"


def connect_check(backend: str, endpoint: str, error: str | None, hosted_by_launch: bool) -> Check:
    """Whether the adapter connected (and logged in) as an agent's would."""
    if error is None:
        return passed("connect", f"the {backend} adapter connected to {endpoint}")
    if hosted_by_launch and "nothing answers" in error:
        return warned("connect", error, "none needed before the launch: the store starts with the agent that "
                      "hosts it; run rdzv doctor again while the job runs")
    return failed("connect", error, connect_fix(error))


def silent_store_check(backend: str, endpoint: str, error: str) -> Check:
    """The adapter connected by TCP but the server never answered as the store would."""
    return failed("connect", f"{endpoint} took the TCP connection but gave the {backend} client {error}: "
                  f"the service there does not answer as a {backend} store", "--rdzv-endpoint names another "
                  "service (or a hung store): point it at the store's client port")


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of ``samples`` (``fraction`` in (0, 1])."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]


def latency_check(samples: Sequence[float], errors: int, read_timeout: float) -> Check:
    """Store round-trip latency: p50 and p99 of ``samples`` (seconds)."""
    if not samples:
        return failed("latency", f"no round trip succeeded ({errors} failed)",
                      "the store connects but does not answer reads: check its health and load")
    p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
    detail = f"{len(samples)} reads: p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"
    if errors:
        return failed("latency", f"{detail}; {errors} reads failed", "the store drops requests: check its "
                      "health, load and the network between this node and the store")
    if p99 >= read_timeout:
        return failed("latency", detail, f"reads take longer than read_timeout={read_timeout:g} s: raise it, "
                      "or use a store closer to the nodes")
    if p99 > LATENCY_WARN_P99:
        return warned("latency", detail, "every join costs several round trips: a slow store makes "
                      "rendezvous slow; use a store closer to the nodes or a less loaded one")
    return passed("latency", detail)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def advertised_check(name: str, source: str, addresses: Sequence[str], error: str | None,
                     store_is_local: bool) -> Check:
    """Whether the name this node advertises to the others (torch's
    ``local_addr`` or ``socket.getfqdn()``) resolves here to an address the
    others can use. Loopback only is a warning when the store is remote (a
    job across nodes): the others would dial themselves."""
    fix = "pass --local-addr=<an address of this node the other nodes can reach> to the launcher"
    if error is not None or not addresses:
        return failed("advertised address", f"'{name}' ({source}) does not resolve on this node: "
                      f"{error or 'no address'}", fix + ", or fix this node's DNS / /etc/hosts")
    shown = f"'{name}' ({source}) resolves to {', '.join(addresses)}"
    if all(_is_loopback(address) for address in addresses) and not store_is_local:
        return warned("advertised address", shown + ": loopback only, so other nodes that resolve it the "
                      "same way reach themselves, not this node", fix)
    return passed("advertised address", shown)


def bind_check(name: str, address: str, error: str | None) -> Check:
    """Whether this node can listen on the address its advertised name resolves
    to (where rank 0's agent serves the workers' store)."""
    if error is not None:
        return failed("bind", f"cannot listen on {address} (from '{name}'): {error}; it is not an address "
                      "of this node", "pass --local-addr=<an address of this node> to the launcher, or fix "
                      "the name's DNS / /etc/hosts entry")
    return passed("bind", f"this node can listen on {address} (from '{name}')")


def ipv6_check(available: bool, needed_by: Sequence[str]) -> Check:
    """Whether IPv6 works here, and whether the run needs it (``needed_by``:
    the IPv6 addresses the store or this node's name resolved to)."""
    if available:
        return passed("ipv6", "available (a socket can listen on ::1)"
                      + (f"; used by {', '.join(needed_by)}" if needed_by else ""))
    if needed_by:
        return failed("ipv6", f"not available on this node, but the run uses {', '.join(needed_by)}",
                      "enable IPv6 on this node, or use IPv4 addresses in --rdzv-endpoint and --local-addr")
    return passed("ipv6", "not available on this node; the run does not need it (IPv4 only)")


def needs_ipv6(addresses: Sequence[str]) -> list[str]:
    """The IPv6 addresses among ``addresses``."""
    return [address for address in addresses if ":" in address]


def is_local_address(addresses: Sequence[str], own: Sequence[str]) -> bool:
    """Whether every one of ``addresses`` is loopback or one of this node's ``own``."""
    return bool(addresses) and all(_is_loopback(a) or a in own for a in addresses)
