"""The operator's commands on c10d: client only, and purge of every key of a run."""

from __future__ import annotations

import socket
from datetime import timedelta

import torch.distributed as dist
from torch.distributed.elastic.rendezvous import RendezvousParameters

from rdzv_core.handler import connect_adapter
from rdzv_core.testing.admin_launch import rdzv
from rdzv_core.testing.ports import free_port


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_status_never_hosts_a_store_and_says_so_when_nothing_answers() -> None:
    port = free_port()
    result = rdzv("status", "c10d", f"127.0.0.1:{port}", "gone", {"connect_timeout": 1})
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "nothing answers there: rdzv commands join a c10d TCPStore as clients only" in result.stderr
    assert not listening(port)


def test_purge_deletes_the_run_and_its_agents_store_keys_and_nothing_else() -> None:
    server = dist.TCPStore("127.0.0.1", 0, is_master=True, multi_tenant=True, timeout=timedelta(seconds=10))
    endpoint = f"127.0.0.1:{server.port}"
    adapter, _ = connect_adapter(RendezvousParameters("c10d", endpoint, "job", 1, 1, is_host="false"))
    other, _ = connect_adapter(RendezvousParameters("c10d", endpoint, "job.b", 1, 1, is_host="false"))
    try:
        adapter.write("state", b"x")
        adapter.write("p/round", b"1")
        server.set("torch.rendezvous.job.0/MASTER_ADDR", "h")
        server.set("rdzv.job.3/MASTER_PORT", "1")
        other.write("state", b"y")
        server.set("rdzv.job.b.0/MASTER_PORT", "2")
        listed = rdzv("runs", "c10d", endpoint, None, {})
        assert listed.returncode == 0 and {"job", "job.b"} <= {l.split()[0] for l in listed.stdout.splitlines()[1:]}
        result = rdzv("purge", "c10d", endpoint, "job", {})
        assert result.returncode == 0 and "deleted 4 keys" in result.stdout, result
        assert sorted(server.list_keys()) == ["rdzv.job.b.0/MASTER_PORT", "rdzv/job.b/state"]
    finally:
        adapter.close()
        other.close()
