"""Prometheus metrics scraped over HTTP from real rdzv-run agents on Redis (issue 13, item 7)."""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

import pytest

from rdzv_core.testing.launch import Agent, agent_command, long_job, start_agent, stop_all, stop_job, wait_for_round
from rdzv_redis.testing.servers import RedisServer

pytestmark = pytest.mark.launch
CONF = {"last_call_timeout": 15, "keep_alive_interval": 1, "read_timeout": 30, "metrics_port": 0}
PORT_LINE = re.compile(r"Prometheus metrics on port (\d+)")


def scrape(agent: Agent, timeout: float = 60) -> dict[tuple[str, str], float]:
    """The agent's metrics: (sample name, operation label or "") -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + timeout
    while not PORT_LINE.search(agent.output()):
        assert time.monotonic() < deadline and agent.process.poll() is None, agent.output()[-3000:]
        time.sleep(0.2)
    port = int(PORT_LINE.search(agent.output()).group(1))  # type: ignore[union-attr]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {(sample.name, sample.labels.get("operation", "")): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


@pytest.mark.parametrize("protocol", ["scalable", "torch"])
def test_each_agent_serves_its_metrics(tmp_path: Path, redis_server: RedisServer, protocol: str) -> None:
    stop_file = tmp_path / "stop"
    command = agent_command("rdzv-run", "redis", redis_server.endpoint, f"metrics-{protocol}", "2", 1,
                            {**CONF, "protocol": protocol}, worker_args=long_job(stop_file))
    agents = [start_agent(command, tmp_path / f"agent{i}.log") for i in range(2)]
    try:
        wait_for_round(agents, 2, 120, nproc_per_node=1)
        time.sleep(3)  # a few heartbeats and watches
        scraped = [scrape(agent) for agent in agents]
        ports = {PORT_LINE.search(a.output()).group(1) for a in agents}  # type: ignore[union-attr]
        assert len(ports) == 2, "metrics_port=0 gave both agents one port"
        for metrics in scraped:
            assert metrics[("rdzv_rounds_joined_total", "")] == 1, metrics
            assert metrics[("rdzv_world_size", "")] == 2, metrics
            reads = metrics[("rdzv_store_operations_total", "read")]
            assert reads >= 1 and metrics[("rdzv_store_operation_seconds_count", "read")] == reads, metrics
            assert sum(v for (name, _op), v in metrics.items() if name == "rdzv_store_operations_total") >= 5
            assert metrics.get(("rdzv_store_errors_total", "read"), 0) == 0, metrics
            if protocol == "scalable":
                assert metrics[("rdzv_store_operations_total", "write")] >= 1, metrics  # heartbeats
                assert 0 <= metrics[("rdzv_heartbeat_lag_seconds", "")] < 3, metrics
                assert metrics[("rdzv_deaths_recorded_total", "")] == 0, metrics
            else:
                assert metrics[("rdzv_store_operations_total", "cas")] >= 1, metrics  # torch's state blob
        stop_job(stop_file)
        assert [agent.wait(120) for agent in agents] == [0, 0], "\n---\n".join(a.output()[-3000:] for a in agents)
    finally:
        stop_all(agents)
