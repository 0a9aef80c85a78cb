"""Endpoint and conf-key parsing (no server needed: nothing connects here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch.distributed.elastic.rendezvous import RendezvousParameters

from rdzv_core.errors import RdzvConfigError
from rdzv_core.settings import CoreSettings
from rdzv_redis.keys import Namespace, encode_run_id, glob_escape
from rdzv_redis.settings import CONF_KEYS, PASSWORD_ENV, RedisSettings, parse_settings


def params(endpoint: str, run_id: str = "job", **conf: object) -> RendezvousParameters:
    return RendezvousParameters("redis", endpoint, run_id, 1, 1, **conf)


def parsed(endpoint: str, run_id: str = "job", **conf: object) -> RedisSettings:
    """The Redis settings of these parameters, parsed as the core hands them over."""
    return parse_settings(CoreSettings.parse(params(endpoint, run_id, **conf), CONF_KEYS))


@pytest.fixture(autouse=True)
def _no_env_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)


@pytest.mark.parametrize(
    ("endpoint", "describe"),
    [
        ("127.0.0.1:7000", "redis://127.0.0.1:7000/0"),
        ("redis-host", "redis://redis-host:6379/0"),
        ("[::1]:7001", "redis://[::1]:7001/0"),
        ("redis://alice@10.0.0.1:7002/3", "redis://alice@10.0.0.1:7002/3"),
        ("rediss://cache.example.com", "rediss://cache.example.com:6379/0"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock (db 0)"),
    ],
)
def test_endpoint_forms(endpoint: str, describe: str) -> None:
    assert parsed(endpoint).describe == describe


def test_rediss_turns_tls_on_and_plain_stays_off() -> None:
    assert parsed("rediss://h:1").tls is not None
    assert parsed("h:1").tls is None
    assert parsed("h:1", ssl="true").tls is not None


def test_a_password_in_the_endpoint_is_refused_with_a_pointer_to_the_safe_ways() -> None:
    with pytest.raises(RdzvConfigError) as info:
        parsed("redis://alice:hunter2@h:6379/0")
    message = str(info.value)
    assert "password_file" in message and PASSWORD_ENV in message
    assert "hunter2" not in message


def test_endpoint_password_only_with_explicit_opt_in() -> None:
    settings = parsed("redis://alice:hunter2@h:6379/0", allow_endpoint_password="true")
    assert settings.password == "hunter2" and "hunter2" not in settings.describe and "hunter2" not in repr(settings)


def test_password_file_wins_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    assert parsed("h").password == "from-env"
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    assert parsed("h", password_file=str(secret)).password == "from-file"


@pytest.mark.parametrize(
    ("endpoint", "conf", "fragment"),
    [
        ("h1:1,h2:2", {}, "sentinel_master"),
        ("redis://h/zero", {}, "database number"),
        ("redis://h/1", {"db": "2"}, "db=2"),
        ("redis://bob@h", {"username": "alice"}, "alice"),
        ("h", {"ssl_ca_certs": "/nonexistent/ca.pem", "ssl": "true"}, "ssl_ca_certs"),
        ("h", {"key_prefix": "a{b}"}, "key_prefix"),
        ("h", {"ttl": "-1"}, "ttl"),
        ("h", {"db": "-1"}, "db"),
        ("unix:///s.sock", {"ssl": "true"}, "unix"),
        ("http://h:80", {}, "unsupported scheme"),
        ("h", {"sentinel_username": "x"}, "sentinel_master"),
        ("h:99999", {}, "port"),
    ],
)
def test_bad_configuration_names_what_is_wrong(endpoint: str, conf: dict[str, str], fragment: str) -> None:
    with pytest.raises(RdzvConfigError) as info:
        parsed(endpoint, **conf)
    assert fragment in str(info.value)


def test_tls_files_without_tls_are_an_error(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(RdzvConfigError, match="rediss://"):
        parsed("h:1", ssl_ca_certs=str(ca))


def test_sentinel_list_uses_the_sentinel_default_port() -> None:
    settings = parsed("s1,s2:26380,[::1]", sentinel_master="mymaster")
    assert [e.port for e in settings.endpoints] == [26379, 26380, 26379]
    assert "master 'mymaster'" in settings.describe


def test_ttl_zero_means_no_expiry() -> None:
    assert parsed("h", ttl="0").ttl_ms == 0
    assert parsed("h").ttl_ms == 86_400_000


def test_run_ids_cannot_escape_their_namespace() -> None:
    a, b = Namespace("rdzv", "a}:x"), Namespace("rdzv", "a")
    assert a.data("k") != b.data("x}:k")
    assert a.tag.count("{") == 1 and a.tag.count("}") == 1
    assert encode_run_id("job-1.a_b") == "job-1.a_b"
    assert encode_run_id("a b%") == "a%20b%25"
    assert Namespace("rdzv", "j").data("kv/x") == "rdzv:{j}:kv/x"


def test_glob_escape() -> None:
    assert glob_escape("a*b?[c]\\") == "a\\*b\\?\\[c\\]\\\\"
