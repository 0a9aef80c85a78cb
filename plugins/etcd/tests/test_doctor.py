"""``rdzv doctor`` against real etcd processes (issue 13, item 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from rdzv_core.testing.admin_launch import rdzv
from rdzv_core.testing.doctor import assert_fails, assert_passes, doctor
from rdzv_etcd.testing.servers import EtcdCluster

FAST = {"connect_timeout": 3, "read_timeout": 5}
CHECKS = ("dns", "tcp connect", "connect", "etcd lease grant", "etcd txn", "etcd watch", "etcd delete", "latency")


@pytest.fixture(scope="module")
def redis_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server: another service where etcd is expected."""
    from rdzv_redis.testing.servers import plain_server

    with plain_server(tmp_path_factory.mktemp("redis-not-etcd")) as server:
        yield server.endpoint


def test_doctor_passes_on_a_plain_server_and_leaves_no_key(etcd_server: EtcdCluster) -> None:
    run = doctor("etcd", etcd_server.endpoint, FAST, run_id="doctor-plain")
    assert_passes(run, *CHECKS)
    assert "etcd 3.5.1" in run.line("WARN", "etcd server"), str(run)  # the suite's etcd has the 14110 crash
    runs = rdzv("runs", "etcd", etcd_server.endpoint, None, FAST)  # the scratch key was deleted
    assert "doctor-plain" not in runs.stdout, runs


def test_doctor_passes_with_auth(auth_etcd_server: EtcdCluster, password_file: str) -> None:
    run = doctor("etcd", auth_etcd_server.endpoint, {**FAST, "username": "rdzv-agent", "password_file": password_file})
    assert_passes(run, *CHECKS)


def test_doctor_fails_on_a_wrong_password(auth_etcd_server: EtcdCluster, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password")
    run = doctor("etcd", auth_etcd_server.endpoint, {**FAST, "username": "rdzv-agent", "password_file": str(wrong)})
    assert_fails(run, "connect", "authentication failed for user 'rdzv-agent'", "fix: check --rdzv-conf username")


def test_doctor_checks_tls(tls_etcd_server: EtcdCluster, tls_conf: dict[str, str]) -> None:
    run = doctor("etcd", tls_etcd_server.endpoint, {**FAST, **tls_conf})
    assert_passes(run, "tls handshake", *CHECKS)


def test_doctor_fails_on_a_certificate_the_client_does_not_trust(tls_etcd_server: EtcdCluster,
                                                                 tls_conf: dict[str, str],
                                                                 tls_files: dict[str, str]) -> None:
    run = doctor("etcd", tls_etcd_server.endpoint, {**FAST, **tls_conf, "cacert": tls_files["other_ca"]})
    assert_fails(run, "tls handshake", "not trusted by the CA file", "cacert=PATH")


def test_doctor_fails_on_an_endpoint_that_is_not_etcd(redis_endpoint: str) -> None:
    run = doctor("etcd", redis_endpoint, FAST)
    assert_fails(run, "connect", redis_endpoint, "fix:")
