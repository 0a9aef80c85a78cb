"""End-to-end: the end of a job on Redis. A finished job never starts again.

torch's launcher calls the handler's ``shutdown()`` when an agent ends
normally or with a failure, and torch's handler closes the rendezvous there.
rdzv's scalable handler does the same, so a spare (3 agents,
``--nnodes=1:2``) exits instead of sealing a round of its own and running
the whole job again at world 1, and a late joiner that arrives after the job
ended starts no worker.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rdzv_core.launcher import SPARE_EXIT_LINE
from rdzv_core.testing.launch import Agent, agent_command, start_agent, stop_all
from rdzv_redis.testing.servers import RedisServer

pytestmark = pytest.mark.launch
#: A long last call: the first round waits for both members even when one
#: starts late on a loaded machine (it seals at once when the second joins).
CONF = {"last_call_timeout": 15, "keep_alive_interval": 1, "keep_alive_max_attempt": 3, "read_timeout": 30}
SHORT_JOB = ["--steps", "12", "--step-seconds", "0.25"]


def steps_of(agent: Agent) -> list[str]:
    """The worker start lines the agent printed (one per worker per round)."""
    return re.findall(r"RDZV-STEP rank=\d+ world_size=\d+ restart=\d+", agent.output())


def start(tmp_path: Path, server: RedisServer, run_id: str, protocol: str, name: str) -> Agent:
    """One ``rdzv-run`` agent of a 1:2 run, running the short job."""
    command = agent_command("rdzv-run", "redis", server.endpoint, run_id, "1:2", 2,
                            {**CONF, "protocol": protocol}, worker_args=SHORT_JOB)
    return start_agent(command, tmp_path / f"{name}.log")


@pytest.mark.parametrize("protocol", ["torch", "scalable"])
def test_a_spare_exits_when_the_job_ends(tmp_path: Path, redis_server: RedisServer, protocol: str) -> None:
    agents = [start(tmp_path, redis_server, f"end-spare-{protocol}", protocol, f"agent{i}") for i in range(3)]
    try:
        codes = [agent.wait(180) for agent in agents]
    finally:
        stop_all(agents)
    ran = [a for a in agents if steps_of(a)]
    spares = [a for a in agents if not steps_of(a)]
    assert len(ran) == 2 and len(spares) == 1, "\n---\n".join(a.output()[-3000:] for a in agents)
    # The members ran the job once, at world 4 (2 nodes x 2 workers); nobody ran it again.
    for agent in ran:
        assert steps_of(agent) == [s for s in steps_of(agent) if "world_size=4" in s], agent.output()[-3000:]
        assert len(steps_of(agent)) == 2 and len(agent.reports()) == 2, agent.output()[-3000:]
    assert codes == [0, 0, 0], "\n---\n".join(a.output()[-3000:] for a in agents)
    assert SPARE_EXIT_LINE in spares[0].output(), spares[0].output()[-3000:]


@pytest.mark.parametrize("protocol", ["torch", "scalable"])
def test_a_late_joiner_after_the_end_starts_no_worker(tmp_path: Path, redis_server: RedisServer,
                                                      protocol: str) -> None:
    run_id = f"end-late-{protocol}"
    members = [start(tmp_path, redis_server, run_id, protocol, f"agent{i}") for i in range(2)]
    late: list[Agent] = []
    try:
        assert [agent.wait(180) for agent in members] == [0, 0], "\n---\n".join(a.output()[-3000:] for a in members)
        late.append(start(tmp_path, redis_server, run_id, protocol, "late"))
        late[0].wait(120)
    finally:
        stop_all(members + late)
    assert all(len(steps_of(a)) == 2 for a in members)
    assert steps_of(late[0]) == [], late[0].output()[-3000:]
    assert "closed" in late[0].output().lower(), late[0].output()[-3000:]
