"""Free loopback ports for test servers."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


IPV6_LOOPBACK = "::1"


def ipv6_loopback_problem() -> str | None:
    """Why this machine cannot serve on the IPv6 loopback ``::1``, or ``None``.

    IPv6 tests fail with this text (never skip): a machine without ``::1``
    cannot show that IPv6 endpoints work.
    """
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind((IPV6_LOOPBACK, 0))
    except OSError as exc:
        return (f"this machine has no IPv6 loopback: binding [{IPV6_LOOPBACK}]:0 failed ({exc}); "
                "the IPv6 launch tests need ::1 on lo (sysctl net.ipv6.conf.lo.disable_ipv6=0)")
    return None
