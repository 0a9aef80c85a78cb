"""Parsing of endpoints and conf keys (no server needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from torch.distributed.elastic.rendezvous import RendezvousParameters

from rdzv_core.errors import RdzvConfigError
from rdzv_core.settings import CoreSettings
from rdzv_etcd.adapter import EtcdStateStore, rpc_timeout_for
from rdzv_etcd.keys import KeySpace, prefix_range_end
from rdzv_etcd.settings import CONF_KEYS, DEFAULT_TTL, EtcdSettings, Target


def settings(endpoint: str, **conf: Any) -> EtcdSettings:
    params = RendezvousParameters("etcd", endpoint, "run-1", 1, 1, **conf)
    return EtcdSettings.of(CoreSettings.parse(params, CONF_KEYS))


@pytest.fixture(autouse=True)
def _no_ambient_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RDZV_ETCD_PASSWORD", raising=False)


def test_endpoint_forms() -> None:
    parsed = settings("e1:2379, [::1]:23790,10.0.0.3,http://e4:1234/")
    assert parsed.targets == (Target("e1:2379", False), Target("[::1]:23790", False),
                              Target("10.0.0.3:2379", False), Target("e4:1234", False))
    assert parsed.endpoint_label == "http://e1:2379,http://[::1]:23790,http://10.0.0.3:2379,http://e4:1234"


def test_duplicate_endpoints_are_dialled_once() -> None:
    assert len(settings("e1:2379,e1:2379,e2").targets) == 2


def test_https_and_tls_files_select_tls(tmp_path: Path) -> None:
    assert settings("https://e1,https://e2").targets[0].tls
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    parsed = settings("e1:2379", cacert=str(ca))
    assert parsed.targets[0].tls and parsed.tls is not None and parsed.tls.cacert is not None


def test_defaults() -> None:
    parsed = settings("e1")
    assert parsed.key_prefix == "/rdzv" and parsed.ttl == DEFAULT_TTL
    assert parsed.timeouts.read == 60 and parsed.timeouts.connect == 10
    assert parsed.username is None and parsed.password is None and parsed.tls is None


def test_password_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pw = tmp_path / "pw"
    pw.write_text("p4ss word\n")
    assert settings("e1", username="u", password_file=str(pw)).password == "p4ss word"
    monkeypatch.setenv("RDZV_ETCD_PASSWORD", "from-env")
    assert settings("e1", username="u").password == "from-env"
    assert settings("e1", username="u", password_file=str(pw)).password == "p4ss word"  # the file wins
    assert settings("e1").password is None  # an ambient variable without a username is ignored


def test_password_never_shows_in_repr(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("hunter2")
    assert "hunter2" not in repr(settings("e1", username="u", password_file=str(pw)))


def test_username_from_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RdzvConfigError, match="needs a password"):
        settings("http://alice@e1:2379")
    monkeypatch.setenv("RDZV_ETCD_PASSWORD", "pw")
    assert settings("http://alice@e1:2379").username == "alice"
    with pytest.raises(RdzvConfigError, match="different users"):
        settings("http://alice@e1:2379", username="bob")


def test_an_empty_endpoint_means_localhost() -> None:
    assert settings("").targets == (Target("localhost:2379", False),)


@pytest.mark.parametrize(
    ("endpoint", "conf", "message"),
    [
        ("http://u:pw@e1", {}, "do not put a password"),
        ("e1/path", {}, "not a valid hostname"),
        ("http://e1:2379/v3", {}, "takes no path"),
        ("e1", {"cert": "__FILE__"}, "cert is set but key is not"),
        ("http://e1", {"cacert": "__FILE__"}, "plain http://"),
        ("e1", {"password_file": "__FILE__"}, "password_file is set but username is not"),
        ("e1", {"cacert": "/no/such/file"}, "existing, readable file"),
        ("e1", {"cacert": "__NOTPEM__"}, "a PEM file"),
        ("e1", {"ttl": "-3"}, "positive number"),
        ("e1", {"key_prefix": "/a\nb"}, "control characters"),
        (" , ", {}, "no endpoint given"),
        ("e1,,e2", {}, "empty endpoint"),
    ],
)
def test_bad_settings(endpoint: str, conf: dict[str, str], message: str, tmp_path: Path) -> None:
    pem = tmp_path / "x.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    notpem = tmp_path / "x.txt"
    notpem.write_text("hello")
    conf = {k: str(pem) if v == "__FILE__" else str(notpem) if v == "__NOTPEM__" else v for k, v in conf.items()}
    with pytest.raises(RdzvConfigError, match=message):
        settings(endpoint, **conf)


def test_key_layout_keeps_runs_apart() -> None:
    space = KeySpace("/rdzv", "job/1")
    assert space.key("state") == b"/rdzv/job%2F1/k/state"
    assert space.receipt("abc") == b"/rdzv/job%2F1/r/abc"
    assert not KeySpace("/rdzv", "job").root.startswith(b"/rdzv/job%2F1/")
    assert KeySpace("/x", "run:7").root == b"/x/run:7/"


def test_prefix_range_end() -> None:
    assert prefix_range_end(b"/a/") == b"/a0"
    assert prefix_range_end(b"a\xff") == b"b"
    assert prefix_range_end(b"\xff\xff") == b"\0"


def test_rpc_timeout_leaves_room_to_fail_over() -> None:
    assert rpc_timeout_for(60) == 20 and rpc_timeout_for(3) == 1 and rpc_timeout_for(0.5) == 0.5


def test_conf_keys_are_declared() -> None:
    assert {"username", "password_file", "cacert", "cert", "key", "key_prefix", "ttl"} <= EtcdStateStore.conf_keys
    assert EtcdStateStore.capabilities.ttl and EtcdStateStore.name == "etcd"


def test_plugin_import_does_not_import_grpc() -> None:
    import subprocess
    import sys

    code = "import sys, rdzv_etcd.plugin as p; p.rdzv_adapters(); print('grpc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(
    ("code", "details", "kind", "retryable"),
    [
        ("UNAVAILABLE", "failed to connect to all addresses; last error: Connection refused", "EtcdUnavailable", True),
        ("UNAVAILABLE", "etcdserver: leader changed", "EtcdUnavailable", True),
        ("UNAVAILABLE", "etcdserver: no leader", "EtcdUnavailable", True),
        ("DEADLINE_EXCEEDED", "Deadline Exceeded", "EtcdTimeout", True),
        ("RESOURCE_EXHAUSTED", "etcdserver: too many requests", "EtcdUnavailable", True),
        ("UNKNOWN", "Stream removed", "EtcdUnavailable", True),
        ("INVALID_ARGUMENT", "etcdserver: authentication failed, invalid user ID or password", "EtcdAuthError", False),
        ("UNAUTHENTICATED", "etcdserver: invalid auth token", "EtcdAuthError", False),
        ("PERMISSION_DENIED", "etcdserver: permission denied", "EtcdAuthError", False),
        ("NOT_FOUND", "etcdserver: requested lease not found", "LeaseNotFound", False),
        ("RESOURCE_EXHAUSTED", "etcdserver: mvcc: database space exceeded", "EtcdRequestError", False),
        ("UNIMPLEMENTED", "unknown service etcdserverpb.KV", "EtcdRequestError", False),
    ],
)
def test_error_classification(code: str, details: str, kind: str, retryable: bool) -> None:
    from rdzv_etcd.errors import classify

    error = classify(code, details, "http://e1:2379")
    assert type(error).__name__ == kind and "http://e1:2379" in str(error)
    assert isinstance(error, EtcdStateStore.retryable_errors) == retryable
    assert isinstance(error, EtcdStateStore.client_errors)


def test_only_connection_failures_count_as_unsent() -> None:
    from rdzv_etcd.errors import classify

    assert classify("UNAVAILABLE", "failed to connect to all addresses", "x").unsent  # type: ignore[attr-defined]
    assert not classify("UNAVAILABLE", "Socket closed", "x").unsent  # type: ignore[attr-defined]
