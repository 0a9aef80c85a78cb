"""The I/O of ``rdzv doctor``: name resolution, TCP, TLS and this node's sockets.

Each probe returns what it found (never raises for a network failure); the
verdicts are decided in :mod:`rdzv_core.doctor.verdicts`.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass

from rdzv_core.doctor.checks import NetworkTarget


def resolve(host: str, port: int = 0) -> tuple[list[str], str | None]:
    """The addresses ``host`` resolves to here (first seen first), or the resolver's error."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        return [], str(exc)
    return list(dict.fromkeys(info[4][0] for info in infos)), None


def tcp_connect(addresses: list[str], port: int, timeout: float) -> tuple[str | None, str | None, float]:
    """Open (and close) a TCP connection to the first address that takes one:
    (the address, ``None``, seconds) or (``None``, the last error, seconds)."""
    started = time.monotonic()
    error = "no address to connect to"
    for address in addresses:
        try:
            with socket.create_connection((address, port), timeout=timeout):
                return address, None, time.monotonic() - started
        except OSError as exc:
            error = f"{address}: {exc.strerror or exc}"
    return None, error, time.monotonic() - started


@dataclass(frozen=True)
class TlsOutcome:
    """What a TLS handshake found."""

    error: str | None = None
    verify_failed: bool = False  # the chain (or host name) did not verify
    protocol: str | None = None
    not_after: float | None = None  # the server certificate's expiry, seconds since the epoch


def tls_handshake(target: NetworkTarget, address: str, timeout: float) -> TlsOutcome:
    """A TLS handshake with ``target`` at ``address``, verified as the adapter
    verifies it (its CA file or the system's, its client certificate)."""
    tls = target.tls
    assert tls is not None
    try:
        context = ssl.create_default_context(cafile=tls.cafile)
        context.check_hostname = tls.check_hostname
        if tls.certfile:
            context.load_cert_chain(tls.certfile, tls.keyfile)
    except (OSError, ssl.SSLError) as exc:
        return TlsOutcome(error=f"cannot load the TLS files: {exc}")
    try:
        with socket.create_connection((address, target.port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=target.host) as wrapped:
                cert = wrapped.getpeercert() or {}
                expiry = cert.get("notAfter")
                return TlsOutcome(protocol=wrapped.version(),
                                  not_after=ssl.cert_time_to_seconds(expiry) if isinstance(expiry, str) else None)
    except ssl.SSLCertVerificationError as exc:
        return TlsOutcome(error=exc.verify_message or str(exc), verify_failed=True)
    except (ssl.SSLError, OSError) as exc:
        return TlsOutcome(error=str(exc) or type(exc).__name__)


def own_addresses() -> list[str]:
    """The addresses this node's own names resolve to."""
    found: list[str] = []
    for name in (socket.gethostname(), socket.getfqdn()):
        found += resolve(name)[0]
    return list(dict.fromkeys(found))


def can_bind(address: str) -> str | None:
    """``None`` if a TCP socket can listen on ``address`` (any port), else the error."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((address, 0))
            sock.listen(1)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def ipv6_available() -> bool:
    """Whether this node can listen on IPv6 (``::1``)."""
    return socket.has_ipv6 and can_bind("::1") is None
