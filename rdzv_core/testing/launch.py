"""Real ``rdzv-run``/``torchrun`` launches for end-to-end tests.

Each agent is a separate process group leader (so a test can kill an agent
and its workers together), its output goes to a log file, and the workers'
``RDZV-WORKER`` report lines are parsed back.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from rdzv_core.testing import allreduce_worker

WORKER_SCRIPT = allreduce_worker.__file__
REPORT_PREFIX = "RDZV-WORKER "
#: ``--rdzv-conf`` of the launch tests: a short last call and quick death
#: detection, and a read timeout that a loaded machine does not run out.
FAST = {"last_call_timeout": 1, "keep_alive_interval": 1, "keep_alive_max_attempt": 2, "read_timeout": 30}


def descendants(pid: int) -> list[int]:
    """All processes below ``pid`` (read from /proc; Linux only)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def launcher_executable(name: str) -> str:
    """Path of ``rdzv-run`` or ``torchrun`` beside the running interpreter."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


@dataclass
class Agent:
    """One running launcher process and its log."""

    process: subprocess.Popen
    log_path: Path
    command: list[str] = field(default_factory=list)

    def output(self) -> str:
        """Everything the agent and its workers printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def reports(self) -> list[dict[str, Any]]:
        """The workers' report lines."""
        # Workers share the agent's log, so a line may start mid-way through
        # another worker's output: find the reports anywhere.
        return [json.loads(found) for found in re.findall(REPORT_PREFIX + r"(\{[^{}]*\})", self.output())]

    def kill(self) -> None:
        """SIGKILL the agent and every process below it (a node dying).

        torch starts workers in sessions of their own, so killing the agent's
        process group is not enough: the whole process tree is collected first.
        """
        for pid in [self.process.pid, *descendants(self.process.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()

    def wait(self, timeout: float) -> int:
        """Wait for the agent to exit; kill it and raise if it takes too long."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"agent did not finish within {timeout} s; its output:\n{self.output()[-4000:]}")


def agent_command(
    launcher: str,
    backend: str,
    endpoint: str,
    run_id: str,
    nnodes: str,
    nproc_per_node: int = 2,
    conf: dict[str, Any] | None = None,
    max_restarts: int = 0,
    worker_args: Sequence[str] = (),
    monitor_interval: float = 0.5,
) -> list[str]:
    """The command line of one agent running :mod:`allreduce_worker`."""
    command = [
        launcher_executable(launcher),
        f"--nnodes={nnodes}",
        f"--nproc-per-node={nproc_per_node}",
        f"--rdzv-backend={backend}",
        f"--rdzv-endpoint={endpoint}",
        f"--rdzv-id={run_id}",
        f"--max-restarts={max_restarts}",
        f"--monitor-interval={monitor_interval}",
        "--local-addr=127.0.0.1",
    ]
    if conf:
        command.append("--rdzv-conf=" + ",".join(f"{k}={v}" for k, v in conf.items()))
    return [*command, WORKER_SCRIPT, *worker_args]


def start_agent(command: list[str], log_path: Path, env: dict[str, str] | None = None) -> Agent:
    """Start one agent in its own process group, logging to ``log_path``."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "LOGLEVEL": os.environ.get("LOGLEVEL", "WARNING"), **(env or {})}
    log = open(log_path, "wb")  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True)
    log.close()
    return Agent(process, log_path, command)


def wait_for_reports(agent: Agent, count: int, timeout: float) -> None:
    """Wait until ``agent`` has printed ``count`` worker reports."""
    deadline = time.monotonic() + timeout
    while len(agent.reports()) < count:
        if agent.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"expected {count} worker reports; agent output:\n{agent.output()[-4000:]}")
        time.sleep(0.2)


def wait_for_text(agent: Agent, pattern: str, timeout: float, since: str | None = None) -> None:
    """Wait until the regular expression ``pattern`` matches the agent's output.

    With ``since`` (a regular expression), only output after the first match
    of ``since`` counts: e.g. a round's line printed after an earlier round's,
    whatever restart count torch gave the later round (an agent that sees a
    node waiting restarts its workers without counting a restart).
    """
    deadline = time.monotonic() + timeout
    while not re.search(pattern, _output_since(agent.output(), since)):
        if agent.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"expected {pattern!r} after {since!r}; agent output:\n{agent.output()[-4000:]}")
        time.sleep(0.2)


def _output_since(output: str, since: str | None) -> str:
    """``output`` after the first match of ``since`` ('' before it matches)."""
    if since is None:
        return output
    found = re.search(since, output)
    return output[found.end():] if found else ""


def long_job(stop_file: Path, max_seconds: float = 300) -> list[str]:
    """Worker arguments for a job that all-reduces every 0.25 s until
    ``stop_file`` exists (:func:`stop_job`), for at most ``max_seconds``."""
    return ["--steps", str(int(max_seconds / 0.25)), "--step-seconds", "0.25", "--stop-file", str(stop_file)]


def stop_job(stop_file: Path) -> None:
    """End the jobs started with ``stop_file``: their workers leave the loop
    together at the next step and report."""
    stop_file.touch()


def stop_all(agents: Sequence[Agent]) -> None:
    """Kill whatever is still running (test teardown)."""
    for agent in agents:
        if agent.process.poll() is None:
            agent.kill()


def run_agents(
    log_dir: Path,
    launcher: str,
    backend: str,
    endpoints: Sequence[str],
    run_id: str,
    confs: Sequence[dict[str, Any]],
    timeout: float = 180,
    nproc_per_node: int = 2,
) -> list[Agent]:
    """Launch one agent per endpoint/conf (``--nnodes`` = their count,
    ``nproc_per_node`` workers each), wait for all to exit and assert that
    each exited 0."""
    count = len(endpoints)
    agents = [
        start_agent(agent_command(launcher, backend, endpoints[i], run_id, str(count), nproc_per_node, confs[i]),
                    log_dir / f"agent{i}.log")
        for i in range(count)
    ]
    try:
        for agent in agents:
            assert agent.wait(timeout) == 0, agent.output()[-4000:]
    finally:
        stop_all(agents)
    return agents


def assert_all_reduced(agents: Sequence[Agent], world_size: int) -> None:
    """Every rank 0..world_size-1 reported once, with the right world size and sum."""
    reports = [report for agent in agents for report in agent.reports()]
    assert sorted(r["rank"] for r in reports) == list(range(world_size)), reports
    for report in reports:
        assert report["world_size"] == world_size and report["sum"] == report["expected_sum"], report


# -- rounds as the workers' step lines show them -----------------------------------------

STEP_LINE = re.compile(r"RDZV-STEP rank=(\d+) world_size=(\d+) ")


def step_lines(agent: Agent) -> list[tuple[int, int]]:
    """``(rank, world_size)`` of every ``RDZV-STEP`` line ``agent``'s workers printed, in order."""
    return [(int(rank), int(world)) for rank, world in STEP_LINE.findall(agent.output())]


def current_round(agent: Agent, nproc_per_node: int = 2) -> tuple[int, set[int]]:
    """World size and global ranks of ``agent``'s workers in its latest round
    (its last ``nproc_per_node`` step lines; ``(0, set())`` before they exist)."""
    lines = step_lines(agent)[-nproc_per_node:]
    if len(lines) < nproc_per_node or len({world for _, world in lines}) != 1:
        return 0, set()
    return lines[0][1], {rank for rank, _ in lines}


def wait_for_round(agents: Sequence[Agent], world_size: int, timeout: float,
                   since: Sequence[int] | None = None, nproc_per_node: int = 2) -> None:
    """Wait until every agent's workers run in a ``world_size``-worker round
    (:func:`current_round`); with ``since``, agent ``i``'s first ``since[i]``
    step lines do not count."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [step_lines(a)[since[i] if since else 0:][-nproc_per_node:] for i, a in enumerate(agents)]
        if all(len(ls) == nproc_per_node and {world for _, world in ls} == {world_size} for ls in lines):
            return
        if time.monotonic() > deadline or any(a.process.poll() is not None for a in agents):
            logs = "\n---\n".join(a.output()[-3000:] for a in agents)
            raise AssertionError(f"no {world_size}-worker round on every agent within {timeout} s:\n{logs}")
        time.sleep(0.2)
