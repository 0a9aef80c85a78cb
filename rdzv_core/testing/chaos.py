"""Store and worker faults during real ``rdzv-run`` launches (issue 11, part 1).

Three agents (``--nnodes=2:4``, 2 gloo workers each) run one long job
(:func:`~rdzv_core.testing.launch.long_job`) on a store the test owns; once
every agent's workers run in the 6-worker round, a fault is injected:

* :func:`run_store_freeze`: the store process is stopped with SIGSTOP for
  longer than the heartbeat TTL, then continued;
* :func:`run_store_empty_restart`: the store is stopped, stays down longer
  than the TTL and comes back empty on the same port (Redis without
  persistence);
* :func:`run_worker_failure`: one node's worker exits with an error while the
  other nodes' workers are in a long compute step.

Each driver then waits for the job to run at full size again, stops it and
returns a :class:`FaultOutcome`: how often each agent started its workers
after the fault and how long the job took to be back at full size. Worker
starts are counted by a :class:`WorkerCensus` of the agents' child processes,
not from the ``RDZV-STEP`` lines alone: torch restarts workers without
counting a restart when it sees a node waiting (``TORCHELASTIC_RESTART_COUNT``
stays), and workers killed before their first step print no line at all.
Every driver kills its agents on the way out and never leaves a store frozen.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

from rdzv_core.testing.launch import (
    WORKER_SCRIPT,
    Agent,
    agent_command,
    assert_all_reduced,
    long_job,
    start_agent,
    stop_all,
    stop_job,
)

AGENTS = 3
NPROC_PER_NODE = 2
WORLD_SIZE = AGENTS * NPROC_PER_NODE
NNODES = "2:4"
MAX_RESTARTS = 3
#: Short heartbeats (TTL = 1 s x 3 = 3 s) and a read timeout long enough for
#: store calls to block through a fault instead of failing.
FAULT_CONF: dict[str, Any] = {"last_call_timeout": 5, "keep_alive_interval": 1, "keep_alive_max_attempt": 3,
                              "read_timeout": 30}
HEARTBEAT_TTL = FAULT_CONF["keep_alive_interval"] * FAULT_CONF["keep_alive_max_attempt"]
#: How long to let a fault's consequences (deaths found one TTL late, restarts,
#: a re-rendezvous with its last call) play out before judging the job.
SETTLE_SECONDS = 3 * HEARTBEAT_TTL + FAULT_CONF["last_call_timeout"] + 2
STEP_LINE = re.compile(r"RDZV-STEP rank=(\d+) world_size=(\d+) restart=(\d+)")
FAIL_LINE = re.compile(r"RDZV-FAIL rank=(\d+) group_rank=(\d+)")


class Freezable(Protocol):
    """A store process that can be stopped and continued (SIGSTOP/SIGCONT)."""

    def freeze(self) -> None:
        """Stop the process."""

    def thaw(self) -> None:
        """Continue the process (harmless if it runs)."""


class EmptyRestartable(Freezable, Protocol):
    """A store that can be restarted empty on the same port."""

    def restart_empty(self, down_seconds: float = 0.0) -> None:
        """Stop, stay down ``down_seconds``, start again with no data."""


def step_worlds(agent: Agent) -> list[int]:
    """The world size of every ``RDZV-STEP`` line ``agent``'s workers printed, in order."""
    return [int(world) for _rank, world, _restart in STEP_LINE.findall(agent.output())]


def output_tails(agents: Sequence[Agent], chars: int = 2500) -> str:
    """The end of every agent's output, for failure messages."""
    return "\n".join(f"--- agent {i} (exit {a.process.poll()}) ---\n{a.output()[-chars:]}" for i, a in enumerate(agents))


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def _is_worker(pid: int) -> bool:
    """Whether ``pid`` runs the worker script (not a forked agent before its exec)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            argv = cmdline.read().decode(errors="replace").split("\0")
    except OSError:
        return False
    return WORKER_SCRIPT in argv and not any(arg.startswith("--nproc-per-node") for arg in argv)


@dataclass(frozen=True)
class WorkerStart:
    """A worker process the census saw for the first time."""

    pid: int
    seen_at: float  # time.monotonic()
    step_lines_before: int  # RDZV-STEP lines its agent had printed by then


@dataclass
class WorkerCensus:
    """Every worker process each agent starts, seen in /proc by a thread
    every ``interval`` seconds (a worker lives far longer: it imports torch)."""

    agents: Sequence[Agent]
    interval: float = 0.1
    starts: list[list[WorkerStart]] = field(init=False)
    running: list[set[int]] = field(init=False)

    def __post_init__(self) -> None:
        self.starts = [[] for _ in self.agents]
        self.running = [set() for _ in self.agents]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="worker-census", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            children = _children_by_parent()
            for i, agent in enumerate(self.agents):
                known = {start.pid for start in self.starts[i]}
                current = {pid for pid in children.get(agent.process.pid, []) if pid in known or _is_worker(pid)}
                new = sorted(current - known)
                lines = len(step_worlds(agent)) if new else 0
                with self._lock:
                    self.starts[i] += [WorkerStart(pid, time.monotonic(), lines) for pid in new]
                    self.running[i] = current

    def stop(self) -> None:
        """End the watching thread."""
        self._stop.set()
        self._thread.join(5)

    def worker_starts(self, agent: int, after: float = -math.inf) -> int:
        """How many times agent ``agent`` started its workers after ``after``."""
        with self._lock:
            return math.ceil(sum(start.seen_at > after for start in self.starts[agent]) / NPROC_PER_NODE)

    def in_full_round(self, agent: int, started_after: float = -math.inf) -> bool:
        """Whether agent ``agent``'s newest workers run (and were started after
        ``started_after``) and printed their first step at ``WORLD_SIZE``."""
        with self._lock:
            newest = self.starts[agent][-NPROC_PER_NODE:]
            running = set(self.running[agent])
        if len(newest) < NPROC_PER_NODE or not {s.pid for s in newest} <= running:
            return False
        if newest[0].seen_at <= started_after:
            return False
        worlds = step_worlds(self.agents[agent])[newest[0].step_lines_before:]
        return len(worlds) >= NPROC_PER_NODE and set(worlds[-NPROC_PER_NODE:]) == {WORLD_SIZE}


@dataclass
class FaultJob:
    """Three agents running one long job until :meth:`finish` stops it."""

    agents: list[Agent]
    stop_file: Path
    census: WorkerCensus
    started_at: float = field(default_factory=time.monotonic)
    first_full_round_at: float = math.nan  # set by start_fault_job
    seconds_to_exit: float = math.nan  # from the stop to the last agent's exit, set by finish

    def in_full_round(self, started_after: float = -math.inf) -> bool:
        """Whether every agent's workers run in the ``WORLD_SIZE`` round."""
        return all(self.census.in_full_round(i, started_after) for i in range(len(self.agents)))

    def assert_running(self, doing: str) -> None:
        """Raise (with the agents' output) if an agent exited."""
        exited = [i for i, a in enumerate(self.agents) if a.process.poll() is not None]
        if exited:
            raise AssertionError(f"agents {exited} exited {doing}:\n{output_tails(self.agents)}")

    def wait_for_full_round(self, timeout: float, started_after: float = -math.inf) -> float:
        """Wait until every agent's workers (started after ``started_after``)
        run in the ``WORLD_SIZE`` round; return the ``time.monotonic()`` it was seen."""
        deadline = time.monotonic() + timeout
        while not self.in_full_round(started_after):
            self.assert_running(f"while waiting for the {WORLD_SIZE}-worker round")
            if time.monotonic() > deadline:
                starts = [self.census.worker_starts(i) for i in range(len(self.agents))]
                raise AssertionError(f"no {WORLD_SIZE}-worker round on every agent within {timeout:.0f} s "
                                     f"(worker starts per agent: {starts}):\n{output_tails(self.agents)}")
            time.sleep(0.1)
        return time.monotonic()

    def finish(self, timeout: float = 120) -> None:
        """Stop the job; every agent must exit 0 within ``timeout`` and the
        final round must have all-reduced correctly at ``WORLD_SIZE``."""
        stop_job(self.stop_file)
        stopped_at = time.monotonic()
        deadline = stopped_at + timeout
        for i, agent in enumerate(self.agents):
            code = agent.wait(max(1.0, deadline - time.monotonic()))
            assert code == 0, f"agent {i} exited {code}:\n{output_tails(self.agents)}"
        self.seconds_to_exit = time.monotonic() - stopped_at
        try:
            assert_all_reduced(self.agents, WORLD_SIZE)
        except AssertionError as exc:
            raise AssertionError(f"final round not at full size: {exc}\n{output_tails(self.agents)}") from None

    def stop(self) -> None:
        """Kill every agent still running and stop the census (teardown)."""
        stop_all(self.agents)
        self.census.stop()


def start_fault_job(log_dir: Path, backend: str, endpoint: str, run_id: str, protocol: str,
                    worker_args: Sequence[str] = (), startup_timeout: float = 180) -> FaultJob:
    """Start ``AGENTS`` agents on ``protocol`` and wait for their full round.

    The round counts whatever its restart count: an agent that starts late
    may first be left out and then admitted by a membership restart.
    """
    stop_file = log_dir / "stop-job"
    conf = {**FAULT_CONF, "protocol": protocol}
    args = [*long_job(stop_file, max_seconds=600), *worker_args]
    command = agent_command("rdzv-run", backend, endpoint, run_id, NNODES, NPROC_PER_NODE, conf,
                            max_restarts=MAX_RESTARTS, worker_args=args)
    started_at = time.monotonic()
    agents = [start_agent(command, log_dir / f"agent{i}.log") for i in range(AGENTS)]
    job = FaultJob(agents, stop_file, WorkerCensus(agents), started_at)
    try:
        job.first_full_round_at = job.wait_for_full_round(startup_timeout)
    except BaseException:
        job.stop()
        raise
    return job


@dataclass
class FaultOutcome:
    """What a fault did to the job."""

    fault: str
    starts_after_fault: list[int]  # worker starts per agent from the fault's beginning to the job's end
    final_restart_counts: list[int]  # TORCHELASTIC_RESTART_COUNT of each agent's last workers
    seconds_to_full_round: float  # from the fault's end to the last full round (0: it never left it)
    seconds_to_first_round: float  # from the agents' start to their first full round
    seconds_to_exit: float  # from the job's stop to the last agent's exit
    total_seconds: float  # from the agents' start to their exit

    def summary(self) -> str:
        """One line for the test log."""
        return (f"{self.fault}: worker starts after the fault {self.starts_after_fault}, restart counts "
                f"{self.final_restart_counts}, full round {self.seconds_to_full_round:.1f} s after the fault, "
                f"total {self.total_seconds:.1f} s (first round {self.seconds_to_first_round:.1f} s, "
                f"exit {self.seconds_to_exit:.1f} s)")


def _finish(fault: str, job: FaultJob, fault_began: float, fault_ended: float, full_at: float) -> FaultOutcome:
    job.finish()
    starts = [job.census.worker_starts(i, after=fault_began) for i in range(len(job.agents))]
    restarts = [max((r["restart"] for r in a.reports()), default=-1) for a in job.agents]
    outcome = FaultOutcome(fault, starts, restarts, max(0.0, full_at - fault_ended),
                           job.first_full_round_at - job.started_at, job.seconds_to_exit,
                           time.monotonic() - job.started_at)
    print(outcome.summary())
    return outcome


@contextmanager
def frozen(store: Freezable) -> Iterator[None]:
    """Keep ``store`` stopped (SIGSTOP) for the ``with`` block; it is always continued."""
    store.freeze()
    try:
        yield
    finally:
        store.thaw()


def _watch_until_settled(job: FaultJob, fault_ended: float, timeout: float) -> float:
    """Watch the job for ``SETTLE_SECONDS`` after ``fault_ended`` (deaths found
    a TTL late, restarts, a last call), then until it runs at full size;
    return the ``time.monotonic()`` since which its current full round has
    been seen (``fault_ended`` if it never left the round it ran before)."""
    full_since: float | None = None
    last_starts: list[int] | None = None
    while time.monotonic() < fault_ended + SETTLE_SECONDS:
        starts = [job.census.worker_starts(i) for i in range(len(job.agents))]
        if not job.in_full_round():
            full_since = None
        elif full_since is None or starts != last_starts:
            full_since = fault_ended if last_starts is None else time.monotonic()
        last_starts = starts
        job.assert_running("after the fault")
        time.sleep(0.1)
    return full_since if full_since is not None else job.wait_for_full_round(timeout)


def run_store_freeze(log_dir: Path, backend: str, endpoint: str, run_id: str, protocol: str, store: Freezable,
                     freeze_seconds: float = 8.0, recovery_timeout: float = 90) -> FaultOutcome:
    """Freeze ``store`` for ``freeze_seconds`` (more than the TTL) mid-job.

    ``seconds_to_full_round`` counts from the thaw.
    """
    job = start_fault_job(log_dir, backend, endpoint, run_id, protocol)
    try:
        time.sleep(2 * FAULT_CONF["keep_alive_interval"])  # a few beats of the full round first
        frozen_at = time.monotonic()
        with frozen(store):
            time.sleep(freeze_seconds)
        thawed_at = time.monotonic()
        full_at = _watch_until_settled(job, thawed_at, recovery_timeout)
        return _finish(f"store frozen {freeze_seconds:g} s ({protocol})", job, frozen_at, thawed_at, full_at)
    finally:
        store.thaw()
        job.stop()


def run_store_empty_restart(log_dir: Path, backend: str, endpoint: str, run_id: str, protocol: str,
                            store: EmptyRestartable, down_seconds: float = 8.0,
                            recovery_timeout: float = 90) -> FaultOutcome:
    """Stop ``store`` mid-job, keep it down ``down_seconds`` (more than the
    TTL), start it again empty on the same port.

    ``seconds_to_full_round`` counts from the moment the store is back.
    """
    job = start_fault_job(log_dir, backend, endpoint, run_id, protocol)
    try:
        time.sleep(2 * FAULT_CONF["keep_alive_interval"])
        stopped_at = time.monotonic()
        store.restart_empty(down_seconds)
        back_at = time.monotonic()
        full_at = _watch_until_settled(job, back_at, recovery_timeout)
        return _finish(f"store restarted empty after {down_seconds:g} s down ({protocol})", job, stopped_at,
                       back_at, full_at)
    finally:
        job.stop()


def worker_failure_args(group_rank: int, at_step: int, compute_seconds: float) -> list[str]:
    """Worker arguments: at step ``at_step`` (first run only) the node with
    ``group_rank`` fails while every other worker computes ``compute_seconds``."""
    return ["--fail-on-group-rank", str(group_rank), "--fail-at-step", str(at_step),
            "--compute-seconds", str(compute_seconds), "--compute-at-step", str(at_step)]


def run_worker_failure(log_dir: Path, backend: str, endpoint: str, run_id: str, protocol: str,
                       group_rank: int = 1, at_step: int = 40, compute_seconds: float = 120,
                       bound: float = 30) -> FaultOutcome:
    """The worker of the node with ``group_rank`` exits 1 at step
    ``at_step`` while the others are in a ``compute_seconds`` sleep; every
    node must restart its workers within ``bound`` seconds of it (the
    rendezvous: long before the compute step ends) and be back in a full
    round before half the compute step has passed (the workers' own start,
    which a loaded machine slows), else ``AssertionError``.

    The failure is timed from the moment its ``RDZV-FAIL`` line is seen
    (polled every 0.1 s). A failure before the full round is an error.
    """
    job = start_fault_job(log_dir, backend, endpoint, run_id, protocol,
                          worker_failure_args(group_rank, at_step, compute_seconds))
    try:
        if any(FAIL_LINE.search(a.output()) for a in job.agents):
            raise AssertionError(f"a worker failed before the full round:\n{output_tails(job.agents)}")
        deadline = time.monotonic() + 60 + at_step * 0.25
        while not any(FAIL_LINE.search(a.output()) for a in job.agents):
            job.assert_running("before the worker failure")
            if time.monotonic() > deadline:
                raise AssertionError(f"no worker failed at step {at_step}:\n{output_tails(job.agents)}")
            time.sleep(0.1)
        failed_at = time.monotonic()
        failing = next(i for i, a in enumerate(job.agents) if FAIL_LINE.search(a.output()))
        while not all(job.census.worker_starts(i, after=failed_at) for i in range(len(job.agents))):
            job.assert_running("after the worker failure")
            if time.monotonic() > failed_at + bound:
                starts = [job.census.worker_starts(i, after=failed_at) for i in range(len(job.agents))]
                raise AssertionError(f"agent {failing}'s worker failed; not every agent restarted its workers within "
                                     f"{bound:g} s (starts since: {starts}; the others' compute step lasts "
                                     f"{compute_seconds:g} s):\n{output_tails(job.agents)}")
            time.sleep(0.1)
        full_at = job.wait_for_full_round(failed_at + compute_seconds / 2 - time.monotonic(), started_after=failed_at)
        outcome = _finish(f"agent {failing}'s worker failed ({protocol})", job, failed_at, failed_at, full_at)
        assert outcome.final_restart_counts[failing] >= 1, f"the failing agent counted no restart: {outcome}"
        return outcome
    finally:
        job.stop()
