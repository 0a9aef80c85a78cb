"""Real launches inspected and ended with the operator's commands (issue 13).

Drivers shared by the Redis and etcd tests: ``rdzv status`` of a live
3-agent launch, ``rdzv purge`` refusing it, ``rdzv close`` ending it (every
``rdzv-run`` agent exits 0), ``rdzv purge`` afterwards, and ``rdzv status``
of a run blocked at ``min_nodes``. Every command is a real ``rdzv`` process.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Callable

from rdzv_core.launcher import CLOSED_EXIT_LINE
from rdzv_core.testing.launch import (
    Agent,
    agent_command,
    launcher_executable,
    long_job,
    start_agent,
    stop_all,
    wait_for_round,
)

#: Quick heartbeats; a long last call so that the first round waits for all three agents.
CONF = {"last_call_timeout": 15, "keep_alive_interval": 1, "keep_alive_max_attempt": 3, "read_timeout": 30}


def rdzv(command: str, backend: str, endpoint: str, run_id: str | None, conf: dict[str, Any],
         *extra: str) -> subprocess.CompletedProcess:
    """One ``rdzv <command>`` with the launcher's flags."""
    args = [launcher_executable("rdzv"), command, f"--rdzv-backend={backend}", f"--rdzv-endpoint={endpoint}"]
    if run_id is not None:
        args.append(f"--rdzv-id={run_id}")
    if conf:
        args.append("--rdzv-conf=" + ",".join(f"{k}={v}" for k, v in conf.items()))
    return subprocess.run([*args, *extra], capture_output=True, text=True, timeout=120)


def status_json(backend: str, endpoint: str, run_id: str, conf: dict[str, Any], *extra: str) -> dict[str, Any]:
    """``rdzv status --json`` parsed (asserting that it succeeded)."""
    result = rdzv("status", backend, endpoint, run_id, conf, "--json", *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def close_a_live_launch(log_dir: Path, backend: str, endpoint: str, run_id: str, protocol: str,
                        list_store: Callable[[], list[str]], timeout: float = 180) -> dict[str, Any]:
    """Three ``rdzv-run`` agents (``--nnodes=2:3``, 1 worker each) run a long job.
    Returns ``rdzv status --json`` of the live job after checking that
    ``purge`` refused it, ``close`` made every agent exit 0, and ``purge``
    then left no key of the run in ``list_store()`` (the store's raw listing)."""
    conf = {**CONF, "protocol": protocol}
    command = agent_command("rdzv-run", backend, endpoint, run_id, "2:3", 1, conf, max_restarts=3,
                            worker_args=long_job(log_dir / "never-stop"))
    agents: list[Agent] = [start_agent(command, log_dir / f"agent{i}.log") for i in range(3)]
    try:
        wait_for_round(agents, 3, timeout, nproc_per_node=1)
        live = status_json(backend, endpoint, run_id, conf)
        refused = rdzv("purge", backend, endpoint, run_id, conf)
        assert refused.returncode == 1 and "is live" in refused.stderr, refused
        assert list_store(), "the live run has no keys in the store"
        closed = rdzv("close", backend, endpoint, run_id, conf)
        assert closed.returncode == 0 and f"closed run '{run_id}'" in closed.stdout, closed
        codes = [agent.wait(timeout) for agent in agents]
        logs = "\n---\n".join(a.output()[-3000:] for a in agents)
        assert codes == [0, 0, 0], logs
        assert all(CLOSED_EXIT_LINE in a.output() for a in agents), logs
    finally:
        stop_all(agents)
    purged = rdzv("purge", backend, endpoint, run_id, conf)
    assert purged.returncode == 0 and f"purged run '{run_id}'" in purged.stdout, purged
    assert list_store() == [], list_store()
    return live


def status_of_a_blocked_run(log_dir: Path, backend: str, endpoint: str, run_id: str, protocol: str,
                            timeout: float = 120) -> str:
    """One agent of a ``--nnodes=2:3`` run waits alone; returns the ``why`` of
    ``rdzv status --json --nnodes=2:3`` once the agent has joined."""
    conf = {**CONF, "protocol": protocol}
    agent = start_agent(agent_command("rdzv-run", backend, endpoint, run_id, "2:3", 1, conf),
                        log_dir / "alone.log")
    try:
        import time

        deadline = time.monotonic() + timeout
        while True:
            result = rdzv("status", backend, endpoint, run_id, conf, "--json", "--nnodes=2:3")
            if result.returncode == 0:
                why = json.loads(result.stdout)["why"]
                if "joined" in why:
                    return why
            assert time.monotonic() < deadline and agent.process.poll() is None, (result, agent.output()[-3000:])
            time.sleep(0.5)
    finally:
        stop_all([agent])


def assert_three_alive(live: dict[str, Any], protocol: str) -> None:
    """What ``rdzv status --json`` of a live 3-agent launch must show: the
    run's protocol, a complete and open round, three alive members ranked
    0..2 on this host, each with a pid and a beat age."""
    assert live["protocol"] == protocol and live["complete"] and not live["closed"], live
    members = live["members"]
    assert len(members) == 3 and {m["state"] for m in members} == {"alive"}, live
    assert sorted(m["rank"] for m in members) == [0, 1, 2], live
    assert all(m["host"] == "127.0.0.1" and m["pid"] and m["beat_age"] is not None for m in members), live
