"""End-to-end: a partitioned node, on the network lab (rdzv_core/testing/netlab*.py, docs/lab.md).

Three ``rdzv-run`` agents, each in a network namespace of its own with its own
198.18.0.x address and hostname, rendezvous through Redis or etcd running in
a fourth namespace. One agent's link is cut while its processes live on: the
others must record it dead (the marker ``p/r/<R>/dead/<rank>``) within about
a heartbeat TTL and re-rendezvous without it. When the link comes back, the
cut-off agent must not corrupt the running round (no second seal, no death
recorded in it, no duplicate rank) and either rejoins as a newcomer or exits.
"""

from __future__ import annotations

import json
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from rdzv_core.codec import FrameCodec
from rdzv_core.testing import netlab, netlab_store
from rdzv_core.testing.launch import Agent, long_job, stop_all, stop_job

# Failures wait out several agent timeouts; a passing run takes 30-60 s.
pytestmark = [pytest.mark.launch, pytest.mark.slow, pytest.mark.timeout(900)]

INTERVAL, ATTEMPTS = 1, 3
TTL = INTERVAL * ATTEMPTS
SCALABLE = {"protocol": "scalable", "keep_alive_interval": INTERVAL, "keep_alive_max_attempt": ATTEMPTS,
            "last_call_timeout": 1}
#: The protocol's promise is TTL + 1 s (docs/design/protocol.md), measured here
#: from the cut; 1 s more for a 2-core machine that runs other launches at once.
DEAD_BOUND = TTL + 1 + 1
STEP = re.compile(r"RDZV-STEP rank=(\d+) world_size=(\d+)")
SEAL = re.compile(r"p/r/(\d+)/seal")
DEAD = re.compile(r"p/r/(\d+)/dead/\d+")


@contextmanager
def built_lab() -> Iterator[netlab.Lab]:
    """A 3-node lab; a machine that does not allow one fails the test, never skips it."""
    lab = netlab.Lab(3)
    problem = None
    try:
        lab.__enter__()
    except netlab.LabUnavailable as exc:
        problem = str(exc)
    if problem is not None:
        pytest.fail(f"the network lab cannot be built here: {problem}", pytrace=False)
    try:
        yield lab
    finally:
        lab.close()


@dataclass
class Timeline:
    """What one partition run observed (times in seconds after the cut)."""

    store: str
    victim: str = ""
    round_cut: int = -1  # the 3-node round the victim was cut from
    cut_at: str = ""  # wall-clock time of the cut (UTC), to read the agents' logs against
    to_dead_marker: float | None = None
    to_new_seal: float | None = None
    to_survivor_step: float | None = None
    healed_at: float | None = None
    victim_outcome: str = ""
    victim_exit: int | None = None
    #: Exit code of every agent waited for after the job was stopped (None: it did not end in time).
    exits: dict[str, int | None] = field(default_factory=dict)
    #: Dead markers created before the job was stopped: key -> seconds after the cut.
    dead_marker_at: dict[str, float] = field(default_factory=dict)
    #: Who logged which death: host -> ["member M of round R", ...].
    recorded_by: dict[str, list[str]] = field(default_factory=dict)
    #: Admitted tickets and the workers' store (rank 0's agent store) of every sealed round.
    seals: dict[int, list[int]] = field(default_factory=dict)
    masters: dict[int, str] = field(default_factory=dict)
    #: Hosts whose worker group failed (a restart torch counts) after the heal.
    failed_after_heal: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One JSON line for the test output (run pytest with -s or -rA to see it)."""
        return "RDZV-LAB " + json.dumps(self.__dict__, default=str)


def _tickets(seal: dict[str, Any]) -> list[int]:
    """The admitted tickets of a decoded seal (see rdzv_core/protocol/keys.py)."""
    return list(range(1, seal["first"] + 1)) if "first" in seal else list(seal["tickets"])


def _steps(text: str) -> list[tuple[int, int]]:
    return [(int(rank), int(world)) for rank, world in STEP.findall(text)]


def _wait_output(agent: Agent, pattern: str, offset: int, timeout: float) -> float | None:
    """Wall time at which ``pattern`` first showed in the agent's output after ``offset`` chars."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, agent.output()[offset:]):
            return time.time()
        if agent.process.poll() is not None:
            return None
        time.sleep(0.1)
    return None


def _wait_outcome(victim: Agent, offset: int, timeout: float) -> str:
    """After the heal: "rejoined" (a 6-worker round), "exited", or neither in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(r"world_size=6", victim.output()[offset:]):
            return "rejoined"
        if victim.process.poll() is not None:
            return "exited"
        time.sleep(0.2)
    return f"neither rejoined nor exited within {timeout:g} s"


def _exit_code(agent: Agent, timeout: float) -> int | None:
    """The agent's exit code, or ``None`` (and the agent killed) if it runs past ``timeout``."""
    try:
        return agent.wait(timeout)
    except AssertionError:  # launch.Agent.wait killed it
        return None


class Scenario:
    """One partition run: the lab's store, its key probe and three agents."""

    def __init__(self, lab: netlab.Lab, tmp_path: Path, store: str, conf: dict[str, Any]) -> None:
        self.lab, self.conf = lab, conf
        self.server = netlab_store.start_store(lab, store, tmp_path / store)
        self.probe = netlab_store.start_probe(lab, self.server, f"lab-{store}", tmp_path / "probe.jsonl")
        self.stop_file = tmp_path / "stop-job"
        self.timeline_path = tmp_path / "timeline.json"
        self.timeline = Timeline(store)
        self.agents: list[Agent] = []
        for host in lab.hosts:
            command = netlab.agent_command(host, "rdzv-run", store, self.server.endpoint, f"lab-{store}", "2:3", 2,
                                           conf, max_restarts=3, worker_args=long_job(self.stop_file, 600))
            self.agents.append(netlab.start_agent(host, command, tmp_path / f"{host.name}.log", {"LOGLEVEL": "INFO"}))

    def seal_docs(self) -> dict[int, list[dict[str, Any]]]:
        """Every write of every round's seal, decoded: round -> [seal, ...]."""
        found: dict[int, list[dict[str, Any]]] = {}
        for event in self.probe.events():
            match = SEAL.fullmatch(event.get("key", ""))
            if match and event["ev"] in ("new", "chg"):
                found.setdefault(int(match.group(1)), []).append(
                    json.loads(FrameCodec().decode(bytes.fromhex(event["value"])).payload))
        return found

    def members(self) -> dict[int, list[str]]:
        """The node id in the slot of every admitted ticket of every sealed round."""
        slots = {e["key"]: json.loads(bytes.fromhex(e["value"])) for e in self.probe.events()
                 if e["ev"] == "new" and "/slot/" in e.get("key", "")}
        return {r: [slots.get(f"p/r/{r}/slot/{t}", {}).get("node", f"(no slot {t})") for t in tickets]
                for r, tickets in self.timeline.seals.items()}

    def collect(self, cut: float, until: float, offsets: list[int]) -> None:
        """Fill the timeline from the probe (events before ``until``) and the agents' logs."""
        line = self.timeline
        line.dead_marker_at = {e["key"]: round(e["t"] - cut, 2) for e in self.probe.events()
                               if e["ev"] == "new" and DEAD.fullmatch(e.get("key", "")) and e["t"] < until}
        for r, docs in sorted(self.seal_docs().items()):
            doc = docs[-1]
            line.seals[r] = _tickets(doc)
            line.masters[r] = ":".join(map(str, doc.get("master") or ["?"]))
        line.failed_after_heal = [h.name for a, h, o in zip(self.agents, self.lab.hosts, offsets)
                                  if "Worker group FAILED" in a.output()[o:]]
        for agent, host in zip(self.agents, self.lab.hosts):
            logged = re.findall(r"member (\d+) of round (\d+) stopped beating", agent.output())
            line.recorded_by[host.name] = [f"member {m} of round {r}" for m, r in logged]

    def context(self) -> str:
        """The timeline and the end of every agent's log, for failure messages
        (the timeline is also written to ``timeline.json`` in the test's directory)."""
        self.timeline_path.write_text(self.timeline.summary() + "\n")
        logs = "\n=====\n".join(f"{a.log_path.name}:\n{a.output()[-3000:]}" for a in self.agents)
        return f"{self.timeline.summary()}\n{logs}"

    def close(self) -> None:
        """Kill whatever still runs (the lab removes the rest)."""
        stop_all(self.agents)
        self.probe.stop()
        self.server.stop()


def run_partition(lab: netlab.Lab, tmp_path: Path, store: str, conf: dict[str, Any], victim_rank: int) -> Timeline:
    """The scenario of the module docstring, on the node that holds group rank
    ``victim_rank`` in the 3-node round; returns what it saw, asserting as it goes."""
    run = Scenario(lab, tmp_path, store, conf)
    line, agents = run.timeline, run.agents
    try:
        for agent in agents:
            assert _wait_output(agent, r"world_size=6", 0, 180), f"no 6-worker round:\n{agent.output()[-4000:]}"
        index = next(i for i, a in enumerate(agents) if (2 * victim_rank, 6) in _steps(a.output()))
        victim, host = agents[index], lab.hosts[index]
        survivors = [a for a in agents if a is not victim]
        line.victim = f"{host.name} ({host.addr}, group rank {victim_rank})"
        line.round_cut = max((r for r, docs in run.seal_docs().items() if len(_tickets(docs[-1])) == 3), default=-1)
        offsets = [len(a.output()) for a in agents]

        cut = lab.partition(host)
        line.cut_at = time.strftime("%H:%M:%S", time.gmtime(cut)) + f".{int(cut % 1 * 1000):03d}"
        if conf.get("protocol") == "scalable":
            marker = f"p/r/{line.round_cut}/dead/{victim_rank}"
            found = run.probe.wait_for(lambda e: e.get("key") == marker and e["ev"] == "new", 60)
            assert found is not None, f"{marker} never appeared within 60 s\n{run.context()}"
            line.to_dead_marker = round(found["t"] - cut, 2)
        seen = [_wait_output(a, r"world_size=4", offsets[agents.index(a)], 120) for a in survivors]
        if not all(seen):
            run.collect(cut, time.time(), offsets)
            raise AssertionError(f"the survivors did not run a 4-worker round within 120 s\n{run.context()}")
        line.to_survivor_step = round(max(t for t in seen if t) - cut, 2)
        new_seals = [e["t"] for e in run.probe.events() if SEAL.fullmatch(e.get("key", "")) and e["t"] > cut]
        line.to_new_seal = round(new_seals[0] - cut, 2) if new_seals else None
        time.sleep(2)  # the 4-worker round runs for a while before the link returns

        line.healed_at = round(lab.heal(host) - cut, 2)
        heal_offsets = [len(a.output()) for a in agents]
        line.victim_outcome = _wait_outcome(victim, heal_offsets[index], 150)
        if line.victim_outcome == "rejoined":
            for agent in survivors:
                assert _wait_output(agent, r"world_size=6", heal_offsets[agents.index(agent)], 120), run.context()
        stopped = time.time()
        stop_job(run.stop_file)
        running = [a for a in agents if a is not victim or line.victim_outcome == "rejoined"]
        codes = [_exit_code(a, 180) for a in running]
        line.exits = {lab.hosts[agents.index(a)].name: code for a, code in zip(running, codes)}
        if victim.process.poll() is None:
            victim.kill()
        line.victim_exit = victim.process.returncode
        run.collect(cut, stopped, heal_offsets)
        print(line.summary())
        run.timeline_path.write_text(line.summary() + "\n")

        assert line.victim_outcome in ("exited", "rejoined"), run.context()
        assert codes == [0] * len(running), run.context()
        # No second seal: every round's seal was created once and never rewritten;
        # no node holds two places in one round.
        rewritten = {r: docs for r, docs in run.seal_docs().items() if len(docs) != 1}
        assert not rewritten, f"seals written more than once: {rewritten}\n{run.context()}"
        members = run.members()
        assert all(len(set(nodes)) == len(nodes) for nodes in members.values()), f"{members}\n{run.context()}"
        # No death recorded in a round after the one the victim was cut from (before the job was stopped).
        later = [k for k in line.dead_marker_at if int(k.split("/")[2]) > line.round_cut]
        assert not later, f"deaths recorded in the running round(s): {later}\n{run.context()}"
        # The last round all-reduced with distinct ranks 0..W-1: no duplicate rank.
        world = 6 if line.victim_outcome == "rejoined" else 4
        final = [r for a in running for r in a.reports()]
        assert sorted(r["rank"] for r in final) == list(range(world)), f"{final}\n{run.context()}"
        assert all(r["world_size"] == world and r["sum"] == r["expected_sum"] for r in final), run.context()
        return line
    finally:
        run.close()


@pytest.mark.parametrize("victim_rank", [1, 0], ids=["group-rank-1", "group-rank-0"])
@pytest.mark.parametrize("store", ["redis", "etcd"])
def test_partitioned_agent_is_dropped_and_does_no_harm(tmp_path: Path, store: str, victim_rank: int) -> None:
    """Group rank 1 sits in the middle of the heartbeat ring; group rank 0's
    agent also hosts the workers' store (the agent store is shared)."""
    with built_lab() as lab:
        timeline = run_partition(lab, tmp_path, store, SCALABLE, victim_rank)
    assert timeline.to_dead_marker is not None and timeline.to_dead_marker <= DEAD_BOUND, timeline.summary()
