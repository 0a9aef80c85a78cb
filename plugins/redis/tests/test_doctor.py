"""``rdzv doctor`` against real redis-server processes (issue 13, item 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from rdzv_core.testing.doctor import assert_fails, assert_passes, doctor
from rdzv_redis.testing.servers import RedisServer, rdzv_acl_rules

FAST = {"connect_timeout": 3, "read_timeout": 5}
CHECKS = ("dns", "tcp connect", "connect", "redis EVAL", "redis EVALSHA", "redis PUBLISH", "redis SUBSCRIBE",
          "latency", "advertised address", "bind", "ipv6")


@pytest.fixture(scope="module")
def etcd_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real etcd server: another service where Redis is expected."""
    from rdzv_etcd.testing.servers import etcd_cluster

    with etcd_cluster(tmp_path_factory.mktemp("etcd-not-redis")) as cluster:
        yield cluster.endpoint.removeprefix("http://")


def test_doctor_passes_on_a_plain_server_and_leaves_no_key(redis_server: RedisServer) -> None:
    run = doctor("redis", redis_server.endpoint, FAST, run_id="doctor-plain")
    assert_passes(run, *CHECKS, "redis server")
    assert list(redis_server.admin().scan_iter(match="*doctor-plain*")) == []


def test_doctor_passes_for_the_least_privilege_acl_user(acl_redis_server: RedisServer, password_file: str,
                                                        acl_credentials: tuple[str, str]) -> None:
    user, _ = acl_credentials
    run = doctor("redis", acl_redis_server.endpoint, {**FAST, "username": user, "password_file": password_file})
    assert_passes(run, *CHECKS)
    assert "may not run INFO" in run.line("WARN", "redis server"), str(run)  # the rdzv user lacks INFO


def test_doctor_fails_on_a_wrong_password(acl_redis_server: RedisServer, tmp_path: Path,
                                          acl_credentials: tuple[str, str]) -> None:
    user, password = acl_credentials
    wrong = tmp_path / "wrong"
    wrong.write_text("not-" + password)
    run = doctor("redis", acl_redis_server.endpoint, {**FAST, "username": user, "password_file": str(wrong)})
    assert_fails(run, "connect", f"rejected the login of user '{user}'", "fix: check --rdzv-conf username")


@pytest.mark.parametrize("missing", ["publish", "eval"])
def test_doctor_names_the_command_an_acl_user_lacks(acl_redis_server: RedisServer, password_file: str,
                                                    acl_credentials: tuple[str, str], missing: str) -> None:
    user = f"rdzv-no-{missing}"
    rules = [rule for rule in rdzv_acl_rules().split() if rule != f"+{missing}"]
    acl_redis_server.admin().execute_command("ACL", "SETUSER", user, "reset", "on", f">{acl_credentials[1]}", *rules)
    run = doctor("redis", acl_redis_server.endpoint, {**FAST, "username": user, "password_file": password_file})
    assert_fails(run, f"redis {missing.upper()}", f"lacks the permission for {missing.upper()}",
                 f"fix: ACL SETUSER {user} +{missing}")
    if missing == "publish":  # the CAS script publishes too: its line names the command inside the script
        assert_fails(run, "redis EVALSHA", "lacks the permission for PUBLISH")


def test_doctor_checks_tls_and_the_certificate_expiry(tls_redis_server: RedisServer,
                                                      tls_files: dict[str, str]) -> None:
    conf = {**FAST, "ssl": "true", "ssl_ca_certs": tls_files["ca"], "ssl_certfile": tls_files["cert"],
            "ssl_keyfile": tls_files["key"]}
    run = doctor("redis", tls_redis_server.endpoint, conf)
    assert_passes(run, "tls handshake", "connect", "redis EVALSHA")
    assert "expires in 2.0 days" in run.line("WARN", "tls expiry"), str(run)  # the test certificates live 2 days


def test_doctor_fails_on_a_certificate_the_client_does_not_trust(tls_redis_server: RedisServer,
                                                                 tls_files: dict[str, str]) -> None:
    conf = {**FAST, "ssl": "true", "ssl_ca_certs": tls_files["other_ca"], "ssl_certfile": tls_files["cert"],
            "ssl_keyfile": tls_files["key"]}
    run = doctor("redis", tls_redis_server.endpoint, conf)
    assert_fails(run, "tls handshake", "not trusted by the CA file", "fix: give the CA", "ssl_ca_certs=PATH")


def test_doctor_fails_on_an_endpoint_that_is_not_redis(etcd_endpoint: str) -> None:
    run = doctor("redis", etcd_endpoint, FAST)
    # etcd hangs up on a Redis PING: no reply at all, so the adapter cannot
    # tell another service from a TLS-only port, and the fix names both.
    assert_fails(run, "connect", "the server closes every connection", "fix: the service at the endpoint hangs up",
                 "names another service")


def test_doctor_fails_on_a_host_that_does_not_resolve() -> None:
    run = doctor("redis", "no-such-host.invalid:6379", FAST)
    assert_fails(run, "dns", "'no-such-host.invalid' does not resolve", "fix: check the host name")
    run.line("PASS", "advertised address")  # this node's own side still ran


def test_a_refusal_inside_a_script_names_the_command_on_its_line() -> None:
    from rdzv_redis import scripts
    from rdzv_redis.diagnose import missing_permission

    line = next(n for n, text in enumerate(scripts.CAS.splitlines(), 1) if "'PUBLISH'" in text)
    message = f"The user executing the script can't run this command or subcommand script: 83e8, on @user_script:{line}."
    assert missing_permission(message, scripts.CAS) == "publish"
    assert missing_permission("this user has no permissions to run the 'eval' command") == "eval"
    assert missing_permission("No permissions to access a channel") == "channels"
    assert missing_permission("WRONGTYPE Operation against a key") is None
