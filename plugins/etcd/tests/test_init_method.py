"""init_process_group(init_method="etcd://...") without torchrun: real gloo
jobs on a real etcd, and bad input failing clearly within the timeout."""

from __future__ import annotations

import pytest
import torch.distributed as dist

from rdzv_core.testing import AdapterHarness
from rdzv_core.testing.init_method_job import assert_all_reduced, init_error, run_job
from rdzv_core.testing.ports import free_port
from rdzv_etcd.adapter import EtcdStateStore
from rdzv_etcd.testing.servers import EtcdCluster

AUTH_USER = "rdzv-agent"  # the user conftest's auth_etcd_server creates


@pytest.mark.launch
def test_four_processes_all_reduce_on_etcd(etcd_server: EtcdCluster) -> None:
    url = f"etcd://{etcd_server.members[0].address}/init-e2e?key_prefix=/jobs"
    assert_all_reduced(run_job(url, 4), 4)
    adapter = AdapterHarness(EtcdStateStore, endpoint=etcd_server.endpoint, conf={"key_prefix": "/jobs"}).adapter("init-e2e")
    try:  # the run's keys, under the key_prefix the URL asked for
        assert (adapter.read("init/joined").value, adapter.read("init/world_size").value) == (b"4", b"4")
        assert adapter.count("init/kv/default_pg/") > 0
    finally:
        adapter.close()


@pytest.mark.launch
def test_two_processes_over_mutual_tls_from_query_parameters(tls_etcd_server: EtcdCluster,
                                                              tls_files: dict[str, str]) -> None:
    query = f"cacert={tls_files['ca']}&cert={tls_files['cert']}&key={tls_files['key']}"
    url = f"rdzv+etcd://{tls_etcd_server.members[0].address}/init-tls?{query}"
    assert_all_reduced(run_job(url, 2), 2)


def test_password_from_the_environment(auth_etcd_server: EtcdCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import AUTH_PASSWORD

    monkeypatch.setenv("RDZV_ETCD_PASSWORD", AUTH_PASSWORD)
    import rdzv_core.init_method  # noqa: F401 - registers etcd://

    url = f"etcd://{auth_etcd_server.members[0].address}/init-env?rank=0&world_size=1&username={AUTH_USER}"
    dist.init_process_group("gloo", init_method=url)
    try:
        assert dist.get_world_size() == 1
    finally:
        dist.destroy_process_group()


def test_a_wrong_password_fails_at_once(auth_etcd_server: EtcdCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RDZV_ETCD_PASSWORD", "not-the-password")
    url = f"etcd://{auth_etcd_server.members[0].address}/init-pw?rank=0&world_size=1&username={AUTH_USER}"
    error, elapsed = init_error(url, seconds=15)  # etcd checks passwords with bcrypt: slow on a busy machine
    message = str(error)
    assert message.startswith(f"init_method '{url}': ") and "authentication failed" in message, message
    assert "not-the-password" not in message and elapsed < 15


def test_an_unreachable_store_fails_within_the_timeout() -> None:
    error, elapsed = init_error(f"etcd://127.0.0.1:{free_port()}/init-down?rank=0&world_size=1", seconds=3)
    message = str(error)
    assert type(error).__name__ == "RendezvousConnectionError", message
    assert "connect_timeout=3 s has run out" in message and "Connection refused" in message
    assert elapsed < 10, elapsed  # torch's default would be 30 minutes
