"""Launch scenarios in which a node dies: the agents that survive, and what they must show.

Built on :mod:`rdzv_core.testing.launch`: real ``rdzv-run`` agents, each a
process group that :meth:`~rdzv_core.testing.launch.Agent.kill` ends with
its workers, so a "node" dies as a whole.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from rdzv_core.testing.launch import (
    Agent,
    agent_command,
    current_round,
    descendants,
    long_job,
    start_agent,
    step_lines,
    stop_all,
    stop_job,
    wait_for_round,
    wait_for_text,
)


def run_survivor_after_node_kill(
    log_dir: Path,
    backend: str,
    endpoint: str,
    run_id: str,
    confs: Sequence[dict[str, Any]],
    victim: int | None = None,
    timeout: float = 120,
) -> Agent:
    """Two ``rdzv-run`` agents (``--nnodes=1:2``, 2 workers each, ``confs[i]``
    for agent ``i``) run a job until the test stops it. Once a 4-worker round
    runs, one node dies with its workers: agent ``victim`` (by start order),
    or with ``victim=None`` the agent whose workers hold global rank 0. The
    survivor runs again alone, at world size 2 (after its workers failed on
    the dead peer, or at once when the scalable protocol records the death),
    and finishes; returns it once its last round all-reduced correctly.

    A long ``last_call_timeout`` in ``confs`` lets the first round wait for
    both agents even when one starts late on a loaded machine.
    """
    stop_file = log_dir / "stop-job"
    agents: list[Agent] = []
    try:
        for i, conf in enumerate(confs):
            command = agent_command("rdzv-run", backend, endpoint, run_id, "1:2", 2, conf, max_restarts=3,
                                    worker_args=long_job(stop_file))
            agents.append(start_agent(command, log_dir / f"agent{i}.log"))
        deadline = time.monotonic() + timeout
        rank0 = None
        while rank0 is None:
            rank0 = next((a for a in agents if "RDZV-STEP rank=0 world_size=4" in a.output()), None)
            if time.monotonic() > deadline or any(a.process.poll() is not None for a in agents):
                raise AssertionError("no 4-worker step: " + "\n---\n".join(a.output()[-3000:] for a in agents))
            time.sleep(0.2)
        dead = rank0 if victim is None else agents[victim]
        dead.kill()
        survivor = next(a for a in agents if a is not dead)
        wait_for_text(survivor, r"RDZV-STEP rank=\d+ world_size=2", timeout)
        stop_job(stop_file)
        assert survivor.wait(2 * timeout) == 0, survivor.output()[-4000:]
    finally:
        stop_all(agents)
    final = [r for r in survivor.reports() if r["world_size"] == 2]
    assert sorted(r["rank"] for r in final) == [0, 1], survivor.output()[-4000:]
    assert all(r["sum"] == r["expected_sum"] for r in final), final
    return survivor


def run_kill_and_replace(
    log_dir: Path,
    backend: str,
    endpoint: str,
    run_id: str,
    confs: Sequence[dict[str, Any]],
    victim: int,
    replacement_conf: dict[str, Any],
    steps: int = 1200,
    timeout: float = 240,
) -> tuple[list[Agent], Agent]:
    """Three ``rdzv-run`` agents (``--nnodes=2:3``, 2 workers each) run a job;
    agent ``victim`` is killed mid-run and a replacement agent starts.
    Returns the survivors and the replacement once all of them exited 0.

    The survivors' workers fail on the dead peer, their agents restart them and
    re-rendezvous; the replacement is admitted, so the job ends at full size:
    it is stopped (see :func:`stop_job`) once the replacement's workers run in
    a 6-worker round. ``steps`` (of 0.25 s) only bounds the job's length.
    """
    stop_file = log_dir / "stop-job"
    worker_args = ["--steps", str(steps), "--step-seconds", "0.25", "--stop-file", str(stop_file)]

    def command(conf: dict[str, Any]) -> list[str]:
        return agent_command("rdzv-run", backend, endpoint, run_id, "2:3", 2, conf, max_restarts=5, worker_args=worker_args)

    agents = [start_agent(command(conf), log_dir / f"agent{i}.log") for i, conf in enumerate(confs)]
    everyone = list(agents)
    try:
        survivor = agents[(victim + 1) % len(agents)]
        wait_for_text(survivor, r"RDZV-STEP rank=\d+ world_size=6", timeout)
        agents[victim].kill()
        replacement = start_agent(command(replacement_conf), log_dir / "replacement.log")
        everyone.append(replacement)
        wait_for_text(replacement, r"RDZV-STEP rank=\d+ world_size=6", timeout)
        stop_job(stop_file)
        survivors = [a for i, a in enumerate(agents) if i != victim]
        for agent in [*survivors, replacement]:
            assert agent.wait(timeout) == 0, agent.output()[-4000:]
    finally:
        stop_all(everyone)
    return survivors, replacement


def assert_full_size_after_restart(survivors: Sequence[Agent], replacement: Agent, world_size: int) -> None:
    """The last round of every survivor and the replacement had ``world_size``
    workers, all-reduced correctly, and the survivors' workers were started
    again (torch counts a restart for a failure but not for a membership
    change, so the workers' start lines are counted instead)."""
    final = [r for a in survivors for r in a.reports()] + replacement.reports()
    assert sorted(r["rank"] for r in final) == list(range(world_size)), final
    assert all(r["world_size"] == world_size and r["sum"] == r["expected_sum"] for r in final), final
    for agent in survivors:
        starts = re.findall(r"RDZV-STEP rank=\d+ world_size=\d+", agent.output())
        assert len(starts) >= 4, f"expected the survivor's 2 workers to run at least twice: {starts}"


# -- rank 0's node lost with three agents, the agent store shared (issue 11) ------------

TCP_LISTEN, TCP_ESTABLISHED = "0A", "01"


def tcp_ports(pid: int, state: str) -> set[int]:
    """Ports of the TCP sockets process ``pid`` holds in ``state`` (/proc, Linux):
    the local port of a listening socket, the remote port of a connected one."""
    inodes: set[str] = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[len("socket:["):-1])
    except OSError:  # the process is gone (or a descriptor closed meanwhile)
        pass
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as sockets:
                rows = [line.split() for line in sockets.readlines()[1:]]
        except OSError:
            continue
        for row in rows:
            if row[3] == state and row[9] in inodes:
                address = row[1] if state == TCP_LISTEN else row[2]
                ports.add(int(address.rsplit(":", 1)[1], 16))
    return ports


def workers_remote_ports(agent: Agent) -> set[int]:
    """Remote ports of the TCP connections of every process below ``agent``."""
    return {port for pid in descendants(agent.process.pid) for port in tcp_ports(pid, TCP_ESTABLISHED)}


@dataclass
class Rank0NodeLoss:
    """What :func:`run_rank0_node_loss` saw."""

    victim: Agent
    survivors: list[Agent]
    dead_master_ports: set[int]  # the victim's store ports the survivors' workers were connected to
    new_host_ports: set[int]  # ports the survivors' agents listened on in the final round
    seconds_to_full_round: float  # from the kill to both survivors' 4-worker round


def run_rank0_node_loss(
    log_dir: Path,
    backend: str,
    endpoint: str,
    run_id: str,
    conf: dict[str, Any],
    timeout: float = 240,
) -> Rank0NodeLoss:
    """Three ``rdzv-run`` agents (``--nnodes=2:3``, 2 gloo workers each, torch's
    default shared agent store): the node that holds rank 0 dies, the two
    others re-rendezvous at world size 4 and finish. Returns what it saw once
    :func:`assert_rank0_node_loss_recovered` holds.

    The victim is found by rank, not by start order: the agent whose workers
    run as global ranks 0 and 1 of the 6-worker round (group rank 0). Before
    it is killed (its whole tree, :meth:`Agent.kill`), the survivors' workers
    must be connected to a port the victim's agent listens on (the workers'
    store it hosts). ``timeout`` bounds each wait (first round, re-rendezvous,
    exit). ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE`` is not set here, and the
    workers' reports must show the agent store in use.
    """
    stop_file = log_dir / "stop-job"
    command = agent_command("rdzv-run", backend, endpoint, run_id, "2:3", 2, conf, max_restarts=3,
                            worker_args=long_job(stop_file))
    agents = [start_agent(command, log_dir / f"agent{i}.log") for i in range(3)]
    try:
        wait_for_round(agents, 6, timeout)
        rounds = [current_round(a) for a in agents]
        holders = [a for a, (_world, ranks) in zip(agents, rounds) if 0 in ranks]
        assert len(holders) == 1 and current_round(holders[0]) == (6, {0, 1}), f"rank 0 not on one agent: {rounds}"
        victim = holders[0]
        survivors = [a for a in agents if a is not victim]
        dead_master = tcp_ports(victim.process.pid, TCP_LISTEN) & set.union(*map(workers_remote_ports, survivors))
        assert dead_master, "no survivor's worker is connected to a port the rank-0 agent listens on (its store)"
        marks = [len(step_lines(a)) for a in survivors]
        killed_at = time.monotonic()
        victim.kill()
        wait_for_round(survivors, 4, timeout, since=marks)
        seconds = time.monotonic() - killed_at
        new_hosts = set.union(*(tcp_ports(a.process.pid, TCP_LISTEN) for a in survivors))
        stop_job(stop_file)
        for agent in survivors:
            assert agent.wait(timeout) == 0, agent.output()[-4000:]
    finally:
        stop_all(agents)
    result = Rank0NodeLoss(victim, survivors, dead_master, new_hosts, seconds)
    assert_rank0_node_loss_recovered(result)
    return result


def assert_rank0_node_loss_recovered(result: Rank0NodeLoss) -> None:
    """The survivors' last round: ranks 0..3 at world size 4 with correct sums,
    bootstrapped from the shared agent store of a survivor, not the dead node's."""
    final = [r for a in result.survivors for r in a.reports()]
    assert sorted(r["rank"] for r in final) == [0, 1, 2, 3], final
    assert all(r["world_size"] == 4 and r["sum"] == r["expected_sum"] for r in final), final
    assert {r["use_agent_store"] for r in final} == {"True"}, f"not torch's shared agent store: {final}"
    masters = {(r["master_addr"], r["master_port"]) for r in final}
    assert len(masters) == 1, f"the survivors' workers disagree on the master: {masters}"
    (_addr, port), = masters
    assert port not in result.dead_master_ports, f"the new round still used the dead node's store port {port}"
    assert port in result.new_host_ports, f"port {port} was not a survivor agent's store {result.new_host_ports}"
