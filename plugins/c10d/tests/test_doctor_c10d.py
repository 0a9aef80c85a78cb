"""``rdzv doctor`` on c10d: a client of a real TCPStore only (issue 13, item 5)."""

from __future__ import annotations

from pathlib import Path

import torch.distributed as dist

from rdzv_core.testing.doctor import assert_fails, assert_passes, doctor
from rdzv_core.testing.ports import free_port

FAST = {"connect_timeout": 3, "read_timeout": 5}


def test_doctor_passes_on_a_live_tcpstore() -> None:
    store = dist.TCPStore("127.0.0.1", 0, is_master=True, multi_tenant=True)
    run = doctor("c10d", f"127.0.0.1:{store.port}", FAST, run_id="doctor-c10d")
    assert_passes(run, "tcp connect", "connect", "c10d store", "c10d operations", "latency")
    assert not [key for key in store.list_keys() if "doctor" in key], store.list_keys()


def test_doctor_warns_and_hosts_nothing_when_no_store_answers() -> None:
    port = free_port()
    run = doctor("c10d", f"127.0.0.1:{port}", FAST)
    assert run.status == 0 and not run.lines("FAIL"), str(run)
    assert "never hosts one" in run.line("WARN", "tcp connect"), str(run)
    import socket

    with socket.socket() as probe:  # nothing listens there afterwards either: doctor hosted nothing
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_doctor_fails_on_a_listener_that_is_not_a_tcpstore(tmp_path: Path) -> None:
    from rdzv_redis.testing.servers import plain_server

    with plain_server(tmp_path / "redis") as other:
        run = doctor("c10d", other.endpoint, FAST)
    assert_fails(run, "connect", "does not answer as a c10d store", "fix: --rdzv-endpoint names another service")
