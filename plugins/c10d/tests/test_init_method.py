"""init_process_group(init_method="rdzv+c10d://...") without torchrun: one of
the processes hosts the TCPStore, the run's keys under a prefix of its own."""

from __future__ import annotations

import pytest

from rdzv_core.testing.init_method_job import assert_all_reduced, run_job
from rdzv_core.testing.ports import free_port


@pytest.mark.launch
def test_two_processes_all_reduce_on_a_tcpstore_they_host() -> None:
    assert_all_reduced(run_job(f"rdzv+c10d://127.0.0.1:{free_port()}/init-e2e", 2), 2)

