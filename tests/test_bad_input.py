"""Bad input gets a clear error that names what was wrong, within the deadline."""

import time
from pathlib import Path

import pytest
from torch.distributed.elastic.rendezvous import RendezvousConnectionError, RendezvousParameters

from rdzv_core.errors import RdzvConfigError, UnknownBackendError
from rdzv_core.handler import create_rdzv_handler
from rdzv_core.testing.launch import agent_command, start_agent
from rdzv_core.testing.ports import free_port


def params(endpoint: str, backend: str = "c10d", **conf: object) -> RendezvousParameters:
    return RendezvousParameters(backend, endpoint, "bad-input", 1, 1, **conf)


def test_unknown_backend() -> None:
    with pytest.raises(UnknownBackendError, match="unknown rdzv backend 'rdzv-c1od'.*Did you mean 'c10d'"):
        create_rdzv_handler(params("127.0.0.1:1", backend="rdzv-c1od"))


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [("127.0.0.1:99999", "port '99999'"), ("[::1:5", "missing ']'"), ("a b:1", "not a valid hostname")],
)
def test_malformed_endpoint(endpoint: str, message: str) -> None:
    with pytest.raises(RdzvConfigError, match=rf"rdzv backend 'c10d': endpoint .*{message.replace('[', '.')}"):
        create_rdzv_handler(params(endpoint, is_host="false"))


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"read_timeout": "soon"}, "read_timeout='soon' is invalid: expected a number of seconds"),
        ({"store_type": "redis"}, "store_type='redis' is invalid: expected one of tcp, file"),
        ({"is_hots": "true"}, "unknown --rdzv-conf key 'is_hots'. Did you mean 'is_host'"),
        ({"protocol": "scalable", "keep_alive_max_attempt": "0"}, "keep_alive_max_attempt='0' is invalid: expected a whole number >= 1"),
        ({"protocol": "raft"}, "protocol='raft' is invalid: expected one of torch, scalable"),
    ],
)
def test_bad_conf_values(conf: dict, message: str) -> None:
    with pytest.raises(RdzvConfigError, match=message):
        create_rdzv_handler(params("127.0.0.1:1", **conf))


def test_unreachable_store_fails_within_connect_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(RendezvousConnectionError, match=r"rdzv backend 'c10d': cannot connect to '127.0.0.1:\d+'"):
        create_rdzv_handler(params(f"127.0.0.1:{free_port()}", is_host="false", connect_timeout="1.5", read_timeout="60"))
    assert time.monotonic() - started < 15  # bounded by connect_timeout, not read_timeout


def test_file_store_in_a_missing_directory() -> None:
    with pytest.raises(RdzvConfigError, match="directory of endpoint '/nonexistent/dir/store' does not exist"):
        create_rdzv_handler(params("/nonexistent/dir/store", store_type="file"))


@pytest.mark.launch
def test_rdzv_run_reports_a_bad_conf_value_and_fails(tmp_path: Path) -> None:
    command = agent_command("rdzv-run", "c10d", f"127.0.0.1:{free_port()}", "bad", "1", 1, {"read_timeout": "-3"})
    agent = start_agent(command, tmp_path / "agent.log")
    assert agent.wait(120) != 0
    assert "--rdzv-conf read_timeout='-3' is invalid: expected a positive number of seconds" in agent.output()
