"""Fixtures: real redis-server processes started by the suite itself.

Servers live for the whole session (one plain, one with ACLs, one TLS-only)
on free loopback ports in temporary directories; tests isolate themselves by
run id. A missing ``redis-server`` binary fails the tests that need it.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from rdzv_core.testing import AdapterHarness
from rdzv_core.testing.binaries import required_binary
from rdzv_redis.adapter import RedisStateStore
from rdzv_redis.testing.servers import (
    RedisServer,
    acl_server,
    find_redis_server,
    plain_server,
    tls_server,
)
from rdzv_redis.testing.tls import make_tls_files

ACL_USER = "rdzv-agent"
ACL_PASSWORD = "s3cret-pw"


@pytest.fixture(scope="session")
def redis_binary() -> str:
    """The redis-server binary; its absence is a failure, never a skip."""
    return required_binary(find_redis_server)


@pytest.fixture(scope="session")
def redis_server(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A plain redis-server for the whole session."""
    with plain_server(tmp_path_factory.mktemp("redis-plain")) as server:
        yield server


@pytest.fixture(scope="session")
def acl_redis_server(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server with ACLs: default user off, a least-privilege rdzv user."""
    with acl_server(tmp_path_factory.mktemp("redis-acl"), ACL_USER, ACL_PASSWORD) as server:
        yield server


@pytest.fixture(scope="session")
def password_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A file holding the ACL user's password (with a trailing newline, as editors write)."""
    path = tmp_path_factory.mktemp("secrets") / "redis-password"
    path.write_text(ACL_PASSWORD + "\n")
    path.chmod(0o600)
    return str(path)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """CA, server and client certificates made for this session."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def tls_redis_server(
    redis_binary: str, tls_files: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisServer]:
    """A TLS-only redis-server (needs a redis-server built with TLS, e.g. Debian's)."""
    with tls_server(tmp_path_factory.mktemp("redis-tls"), tls_files) as server:
        yield server


@pytest.fixture
def plain_harness(redis_server: RedisServer) -> AdapterHarness:
    """A harness for the plain server with short timeouts."""
    return AdapterHarness(RedisStateStore, endpoint=redis_server.endpoint,
                          conf={"read_timeout": 10, "connect_timeout": 5}, backend_name="redis")



@pytest.fixture(scope="session")
def acl_credentials() -> tuple[str, str]:
    """The least-privilege ACL user of :func:`acl_redis_server` and its password."""
    return ACL_USER, ACL_PASSWORD
