"""Fixtures: real etcd processes started by the suite itself.

Three single-member servers live for the whole session (plain, with auth,
with mutual TLS) on free loopback ports in temporary directories; tests
isolate themselves by run id. Cluster tests start their own three-member
cluster because they kill members. A missing etcd binary fails the tests
that need it, never skips them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

# First, as in production: the client module turns on gRPC's fork support,
# which gRPC reads only when it is first imported.
import rdzv_etcd.client  # noqa: F401  isort: skip
from rdzv_core.testing import AdapterHarness
from rdzv_core.testing.binaries import required_binary
from rdzv_etcd.adapter import EtcdStateStore
from rdzv_etcd.testing.servers import EtcdCluster, etcd_cluster, find_etcd
from rdzv_etcd.testing.tls import make_tls_files

AUTH_USER = "rdzv-agent"
AUTH_PASSWORD = "pw-0f5b8e"
#: Short timeouts so that failure tests finish quickly.
FAST = {"read_timeout": 5, "connect_timeout": 2}


@pytest.fixture(scope="session")
def etcd_binary() -> str:
    """The etcd binary; its absence is a failure, never a skip."""
    return required_binary(find_etcd)


@pytest.fixture(scope="session")
def etcd_server(etcd_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """A plain single-member etcd for the whole session."""
    with etcd_cluster(tmp_path_factory.mktemp("etcd-plain")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def password_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The auth user's password in a file, with the trailing newline editors write."""
    path = tmp_path_factory.mktemp("secrets") / "etcd-password"
    path.write_text(AUTH_PASSWORD + "\n")
    path.chmod(0o600)
    return str(path)


@pytest.fixture(scope="session")
def auth_etcd_server(etcd_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """etcd with auth on: a user with read-write on ``/rdzv/`` only."""
    with etcd_cluster(tmp_path_factory.mktemp("etcd-auth")) as cluster:
        cluster.enable_auth(AUTH_USER, AUTH_PASSWORD, "/rdzv/")
        yield cluster


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """CA, server and client certificates made for this session."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def tls_etcd_server(etcd_binary: str, tls_files: dict[str, str],
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """etcd serving clients over TLS only, requiring client certificates."""
    with etcd_cluster(tmp_path_factory.mktemp("etcd-tls"), tls=tls_files) as cluster:
        yield cluster


@pytest.fixture
def etcd3(etcd_binary: str, tmp_path: Path) -> Iterator[EtcdCluster]:
    """A fresh three-member cluster (tests may kill members)."""
    with etcd_cluster(tmp_path / "etcd3", size=3) as cluster:
        yield cluster


@pytest.fixture
def plain_harness(etcd_server: EtcdCluster) -> AdapterHarness:
    """A harness on the plain server with short timeouts."""
    return AdapterHarness(EtcdStateStore, endpoint=etcd_server.endpoint, conf=dict(FAST))


@pytest.fixture
def tls_conf(tls_files: dict[str, str]) -> dict[str, str]:
    """Conf keys for mutual TLS with the session CA."""
    return {"cacert": tls_files["ca"], "cert": tls_files["cert"], "key": tls_files["key"]}
