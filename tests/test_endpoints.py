"""--rdzv-endpoint parsing."""

import pytest

from rdzv_core.endpoints import parse_endpoint, parse_endpoints
from rdzv_core.errors import RdzvConfigError


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("node1:1234", "node1", 1234),
        ("node1", "node1", 29400),
        ("10.0.0.1:80", "10.0.0.1", 80),
        ("[::1]:6379", "::1", 6379),
        ("[fe80::1]", "fe80::1", 29400),
        ("  host.example.com:9  ", "host.example.com", 9),
    ],
)
def test_host_port_forms(text: str, host: str, port: int) -> None:
    endpoint = parse_endpoint(text, 29400)
    assert (endpoint.host, endpoint.port) == (host, port)


def test_urls_with_user_and_path() -> None:
    endpoint = parse_endpoint("rediss://alice@[::1]:6380/2", 6379, ("redis", "rediss"))
    assert (endpoint.scheme, endpoint.host, endpoint.port, endpoint.username, endpoint.path) == ("rediss", "::1", 6380, "alice", "/2")
    assert endpoint.netloc == "[::1]:6380"
    assert parse_endpoint("unix:///run/redis.sock", 0, ("unix",)).path == "/run/redis.sock"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("host:99999", "port '99999' is not a number from 0 to 65535"),
        ("host:abc", "port 'abc'"),
        ("::1:80", "IPv6 addresses in brackets"),
        ("[::1:80", "missing ']'"),
        ("[nothex]:80", "not an IPv6 address"),
        ("bad host:80", "not a valid hostname"),
        ("ftp://h:1", "unsupported scheme 'ftp://'"),
        (":80", "no host"),
    ],
)
def test_malformed_endpoints_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(RdzvConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_endpoint(text, 1, ("redis",))


def test_lists_and_empty_items() -> None:
    assert [e.port for e in parse_endpoints("a:1,b:2,[::1]:3", 0)] == [1, 2, 3]
    with pytest.raises(RdzvConfigError, match="empty endpoint"):
        parse_endpoints("a:1,,b:2", 0)
    with pytest.raises(RdzvConfigError, match="no endpoint given"):
        parse_endpoints("  ", 0)
