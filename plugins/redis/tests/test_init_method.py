"""init_process_group(init_method="redis://...") without torchrun: real gloo
jobs on a real redis-server, and bad input failing clearly within the timeout."""

from __future__ import annotations

import pytest

from rdzv_core.errors import RdzvConfigError
from rdzv_core.testing.init_method_job import assert_all_reduced, init_error, run_job
from rdzv_core.testing.ports import free_port
from rdzv_redis.testing.servers import RedisServer

from .conftest import ACL_USER


@pytest.mark.launch
def test_four_processes_all_reduce_on_redis(redis_server: RedisServer) -> None:
    """rank from $RANK, world_size from the URL; the keys land in the run's namespace."""
    url = f"redis://{redis_server.endpoint}/init-e2e?world_size=4&db=3"
    processes = run_job(url, 4, env_world_size=False)
    assert_all_reduced(processes, 4)
    keys = {k.decode() for k in redis_server.admin(db=3).keys("rdzv:{init-e2e}:*")}
    assert {"rdzv:{init-e2e}:init/world_size", "rdzv:{init-e2e}:init/joined"} <= keys
    assert any(k.startswith("rdzv:{init-e2e}:init/kv/default_pg/") for k in keys), keys


@pytest.mark.launch
def test_two_processes_on_an_acl_server_with_password_file(acl_redis_server: RedisServer, password_file: str) -> None:
    url = f"rdzv+redis://{acl_redis_server.endpoint}/init-acl?username={ACL_USER}&password_file={password_file}"
    assert_all_reduced(run_job(url, 2), 2)


@pytest.fixture(autouse=True)
def no_password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RDZV_REDIS_PASSWORD", raising=False)


def test_an_unknown_scheme_is_torchs_error_at_once() -> None:
    error, elapsed = init_error("rdzv+redsi://127.0.0.1:1/run?rank=0&world_size=1")
    assert str(error) == "No rendezvous handler for rdzv+redsi://" and elapsed < 2


@pytest.mark.parametrize(("query", "missing"), [("world_size=2", "rank"), ("rank=0", "world_size")])
def test_missing_rank_or_world_size(redis_server: RedisServer, query: str, missing: str) -> None:
    error, elapsed = init_error(f"redis://{redis_server.endpoint}/run-missing?{query}")
    assert isinstance(error, RdzvConfigError) and elapsed < 2
    assert f"no {missing}: add {missing}=N to the URL's query" in str(error)


def test_a_wrong_password_fails_at_once(acl_redis_server: RedisServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    wrong = tmp_path / "pw"
    wrong.write_text("not-the-password\n")
    url = f"redis://{ACL_USER}@{acl_redis_server.endpoint}/run-pw?rank=0&world_size=1&password_file={wrong}"
    error, elapsed = init_error(url)
    message = str(error)
    assert isinstance(error, RdzvConfigError) and elapsed < 2, message
    assert message.startswith(f"init_method '{url}': ") and "rejected the login of user 'rdzv-agent'" in message
    assert "not-the-password" not in message


def test_a_password_in_the_url_is_refused_and_masked(redis_server: RedisServer) -> None:
    error, _ = init_error(f"redis://u:hunter2@{redis_server.endpoint}/run-pw2?rank=0&world_size=1")
    message = str(error)
    assert "hunter2" not in message and "u:***@" in message and "query parameter allow_endpoint_password=true" in message


def test_an_unreachable_store_fails_within_the_timeout() -> None:
    error, elapsed = init_error(f"redis://127.0.0.1:{free_port()}/run-down?rank=0&world_size=1", seconds=3)
    message = str(error)
    assert type(error).__name__ == "RendezvousConnectionError", message
    assert "connect_timeout=3 s has run out" in message and "Connection refused" in message
    assert elapsed < 10, elapsed  # torch's default would be 30 minutes


def test_a_run_id_left_from_an_earlier_job_is_refused(redis_server: RedisServer) -> None:
    redis_server.admin().set("rdzv:{run-reused}:init/joined", 1)  # one process of an earlier 1-process job
    error, _ = init_error(f"redis://{redis_server.endpoint}/run-reused?rank=0&world_size=1")
    assert "process number 2 to join a run of world_size 1: the run id was used before" in str(error)


def test_rediss_with_the_ca_from_the_query(tls_redis_server: RedisServer, tls_files: dict[str, str]) -> None:
    import torch.distributed as dist

    import rdzv_core.init_method  # noqa: F401 - registers rediss://

    url = f"rediss://{tls_redis_server.endpoint}/init-tls?rank=0&world_size=1&ssl_ca_certs={tls_files['ca']}"
    dist.init_process_group("gloo", init_method=url)
    try:
        assert dist.get_world_size() == 1
    finally:
        dist.destroy_process_group()
    assert tls_redis_server.admin().get("rdzv:{init-tls}:init/joined") == b"1"
