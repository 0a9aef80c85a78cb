"""Real launches that lose a node, watched and ended with the operator's commands (issue 13).

Drivers shared by the Redis and etcd tests: ``rdzv status`` of a live
3-agent launch while one agent is killed (its heartbeat ages, then a new
round forms without it), and ``rdzv close`` while the survivors are
re-joining (every ``rdzv-run`` agent still exits 0). Every command is a real
``rdzv`` process; every agent a real ``rdzv-run``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdzv_core.launcher import CLOSED_EXIT_LINE
from rdzv_core.testing.admin_launch import CONF, assert_three_alive, rdzv, status_json
from rdzv_core.testing.launch import Agent, agent_command, long_job, start_agent, stop_all, wait_for_round


@dataclass
class DeathSeen:
    """What ``rdzv status`` showed from the kill of one agent to the next round."""

    live: dict[str, Any]  # the status before the kill
    victim_pid: int
    #: (beat age, state) of the victim's member in the old round, in the order seen.
    ageing: list[tuple[float, str]] = field(default_factory=list)
    after: dict[str, Any] | None = None  # the first status of a later, complete round
    #: Every status polled after the kill, in short (for failure messages).
    polled: list[str] = field(default_factory=list)


def _three_agents(log_dir: Path, backend: str, endpoint: str, run_id: str, conf: dict[str, Any],
                  timeout: float) -> list[Agent]:
    """Three ``rdzv-run`` agents (``--nnodes=2:3``, 1 worker each) running a long job, once round 1 runs."""
    command = agent_command("rdzv-run", backend, endpoint, run_id, "2:3", 1, conf, max_restarts=3,
                            worker_args=long_job(log_dir / "never-stop"))
    agents = [start_agent(command, log_dir / f"agent{i}.log") for i in range(3)]
    wait_for_round(agents, 3, timeout, nproc_per_node=1)
    return agents


def watch_a_death(log_dir: Path, backend: str, endpoint: str, run_id: str, protocol: str = "scalable",
                  ttl_beats: int = 30, timeout: float = 180) -> DeathSeen:
    """Kill one of three agents (1 s beats, a TTL of ``ttl_beats`` s: several
    ``rdzv status`` runs fit in it on a loaded machine, each 2-8 s; the last
    call is longer still, so that the survivors' round waits for the death
    to be recorded) and poll ``rdzv status --json`` until a later round is
    complete; then close the run and check that the survivors exit 0.

    The survivors' workers all-reduce every 0.25 s, so their collective fails
    at the kill and their agents re-join: on ``protocol=torch`` the round
    changes only once torch's handler drops the victim's stale heartbeat."""
    conf = {**CONF, "protocol": protocol, "keep_alive_max_attempt": ttl_beats, "last_call_timeout": ttl_beats + 10}
    agents: list[Agent] = []
    try:
        agents = _three_agents(log_dir, backend, endpoint, run_id, conf, timeout)
        live = status_json(backend, endpoint, run_id, conf)
        assert_three_alive(live, protocol)
        victim = agents[0]
        seen = DeathSeen(live, victim.process.pid)
        victim.kill()
        deadline = time.monotonic() + timeout
        while seen.after is None:
            assert time.monotonic() < deadline, f"no later round within {timeout} s; seen: {seen}"
            status = status_json(backend, endpoint, run_id, conf)
            seen.polled.append(f"round {status['round']}: {status['why']}; "
                               + ", ".join(f"{m['pid']} {m['state']} {m['beat_age']}" for m in status["members"]))
            if status["round"] != live["round"]:
                if status["complete"] and {m["state"] for m in status["members"]} == {"alive"}:
                    seen.after = status  # complete, and every member has beaten in it
                continue
            for member in status["members"]:
                if member["pid"] == seen.victim_pid and member["beat_age"] is not None:
                    seen.ageing.append((member["beat_age"], member["state"]))
        closed = rdzv("close", backend, endpoint, run_id, conf)
        assert closed.returncode == 0, closed
        codes = [agent.wait(timeout) for agent in agents[1:]]
        assert codes == [0, 0], "\n---\n".join(a.output()[-3000:] for a in agents[1:])
        return seen
    finally:
        stop_all(agents)


def assert_death_seen(seen: DeathSeen, interval: float = CONF["keep_alive_interval"]) -> None:
    """The victim's beat aged past a missed beat (``late`` or ``dead``), and
    the next round is complete with the two survivors alive, the victim gone."""
    ages = [age for age, _state in seen.ageing]
    assert len(ages) >= 2 and ages == sorted(ages) and ages[-1] > ages[0], seen.polled
    assert ages[-1] > interval + 1 and seen.ageing[-1][1] in ("late", "dead"), seen.polled
    after = seen.after
    assert after is not None and after["round"] > seen.live["round"] and not after["closed"], after
    assert len(after["members"]) == 2 and {m["state"] for m in after["members"]} == {"alive"}, after
    assert seen.victim_pid not in {m["pid"] for m in after["members"]}, after


def close_while_rejoining(log_dir: Path, backend: str, endpoint: str, run_id: str, protocol: str = "scalable",
                          timeout: float = 180) -> list[Agent]:
    """Kill one of three agents with a heartbeat TTL of 60 s: the survivors'
    workers fail, their agents stop them and wait in ``next_rendezvous`` for
    the dead member to come back or be recorded dead. ``rdzv close`` then;
    returns the survivors once each exited 0 (asserted) with the close line."""
    conf = {**CONF, "protocol": protocol, "keep_alive_max_attempt": 60}
    agents: list[Agent] = []
    try:
        agents = _three_agents(log_dir, backend, endpoint, run_id, conf, timeout)
        agents[0].kill()
        survivors = agents[1:]
        deadline = time.monotonic() + timeout
        while True:  # both survivors hold a ticket of the next round: they are re-joining
            waiting = status_json(backend, endpoint, run_id, conf)["waiting"]
            if sum(1 for node in waiting if node["state"] == "returning") == 2:
                break
            assert time.monotonic() < deadline, f"the survivors did not re-join within {timeout} s: {waiting}"
            time.sleep(0.2)
        closed = rdzv("close", backend, endpoint, run_id, conf)
        assert closed.returncode == 0, closed
        codes = [agent.wait(timeout) for agent in survivors]
        logs = "\n---\n".join(a.output()[-3000:] for a in survivors)
        assert codes == [0, 0], logs
        assert all(CLOSED_EXIT_LINE in a.output() for a in survivors), logs
        return survivors
    finally:
        stop_all(agents)
