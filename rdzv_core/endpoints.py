"""Parsing of ``--rdzv-endpoint`` values shared by every adapter.

An endpoint list is comma-separated; each item is ``host``, ``host:port``,
``[ipv6]``, ``[ipv6]:port`` or a URL (``redis://user@host:6379/0``,
``https://[::1]:2379``, ``unix:///run/redis.sock``). Errors name the item and
say what is wrong with it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from rdzv_core.errors import RdzvConfigError

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$")


@dataclass(frozen=True)
class Endpoint:
    """One parsed endpoint."""

    host: str
    port: int
    scheme: str | None = None
    path: str = ""
    username: str | None = None
    password: str | None = None

    @property
    def netloc(self) -> str:
        """``host:port`` with IPv6 hosts in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        prefix = f"{self.scheme}://" if self.scheme else ""
        return prefix + self.netloc + (self.path if self.scheme else "")


def _check_host(host: str, item: str) -> str:
    if not host:
        raise RdzvConfigError(f"endpoint '{item}' has no host")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOSTNAME.match(host):
        raise RdzvConfigError(f"endpoint '{item}': '{host}' is not a valid hostname or IP address")
    return host


def _check_port(text: str, item: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise RdzvConfigError(f"endpoint '{item}': port '{text}' is not a number from 0 to 65535")
    return int(text)


def parse_endpoint(item: str, default_port: int, schemes: tuple[str, ...] = ()) -> Endpoint:
    """Parse one endpoint; ``schemes`` lists the URL schemes allowed."""
    item = item.strip()
    if not item:
        raise RdzvConfigError("empty endpoint")
    if "://" in item:
        scheme = item.split("://", 1)[0].lower()
        if scheme not in schemes:
            allowed = ", ".join(f"{s}://" for s in schemes) or "none"
            raise RdzvConfigError(f"endpoint '{item}': unsupported scheme '{scheme}://' (supported: {allowed})")
        parts = urlsplit(item)
        if scheme == "unix":
            if not parts.path:
                raise RdzvConfigError(f"endpoint '{item}': a unix:// endpoint needs a socket path")
            return Endpoint(host="", port=0, scheme=scheme, path=parts.path)
        try:
            port = parts.port
        except ValueError:
            raise RdzvConfigError(f"endpoint '{item}': the port is not a number from 0 to 65535") from None
        host = _check_host(parts.hostname or "", item)
        return Endpoint(
            host=host,
            port=default_port if port is None else port,
            scheme=scheme,
            path=parts.path,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )
    if item.startswith("["):
        close = item.find("]")
        if close < 0:
            raise RdzvConfigError(f"endpoint '{item}': missing ']' after the IPv6 address")
        host, rest = item[1:close], item[close + 1 :]
        if rest and not rest.startswith(":"):
            raise RdzvConfigError(f"endpoint '{item}': expected ':port' after ']'")
        port = _check_port(rest[1:], item) if rest else default_port
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise RdzvConfigError(f"endpoint '{item}': '{host}' is not an IPv6 address") from None
        return Endpoint(host=host, port=port)
    if item.count(":") > 1:
        raise RdzvConfigError(f"endpoint '{item}': write IPv6 addresses in brackets, e.g. '[::1]:{default_port}'")
    host, _, port_text = item.partition(":")
    port = _check_port(port_text, item) if port_text or item.endswith(":") else default_port
    return Endpoint(host=_check_host(host, item), port=port)


def parse_endpoints(value: str | None, default_port: int, schemes: tuple[str, ...] = ()) -> list[Endpoint]:
    """Parse a comma-separated endpoint list (at least one item)."""
    items = [part for part in (value or "").split(",")]
    if not any(part.strip() for part in items):
        raise RdzvConfigError("no endpoint given (--rdzv-endpoint is empty)")
    return [parse_endpoint(part, default_port, schemes) for part in items]
