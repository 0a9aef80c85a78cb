"""The operator's commands against a real Redis, without a launch (issue 13):
forged torch state, unknown runs, ``purge --older-than``, ``runs``."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from torch.distributed.elastic.rendezvous import RendezvousParameters

from rdzv_core.codec import FrameCodec, new_nonce
from rdzv_core.handler import connect_adapter
from rdzv_core.protocol import keys
from rdzv_core.testing.admin_launch import rdzv
from rdzv_redis.testing.servers import RedisServer


class WritesAFile:
    """Unpickled by plain ``pickle``, this runs a shell command that creates a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.path}",))


def put(server: RedisServer, run_id: str, key: str, value: bytes) -> None:
    adapter, _core = connect_adapter(RendezvousParameters("redis", server.endpoint, run_id, 1, 1))
    try:
        adapter.write(key, value)
    finally:
        adapter.close()


def test_a_forged_torch_state_is_an_error_and_runs_nothing(tmp_path: Path, redis_server: RedisServer) -> None:
    victim = tmp_path / "written-by-the-pickle"
    assert pickle.loads(pickle.dumps(WritesAFile(victim))) == 0 and victim.exists()  # the payload works
    victim.unlink()
    put(redis_server, "forged", "state", FrameCodec().encode(pickle.dumps(WritesAFile(victim)), new_nonce()))
    result = rdzv("status", "redis", redis_server.endpoint, "forged", {})
    assert result.returncode == 1
    assert result.stderr.strip() == ("rdzv status: error: run 'forged': the torch rendezvous state under key 'state' "
                                     "was not read: the state names posix.system, which a torch rendezvous state "
                                     "never holds")
    closing = rdzv("close", "redis", redis_server.endpoint, "forged", {})
    assert closing.returncode == 1 and "not closed" in closing.stderr
    assert not victim.exists()


def test_with_a_secret_an_unsigned_state_fails_the_signature_check_first(tmp_path: Path,
                                                                        redis_server: RedisServer) -> None:
    victim = tmp_path / "written-by-the-pickle"
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    put(redis_server, "forged-signed", "state", FrameCodec().encode(pickle.dumps(WritesAFile(victim)), new_nonce()))
    result = rdzv("status", "redis", redis_server.endpoint, "forged-signed", {"secret_file": secret})
    assert result.returncode == 1
    assert "carries no signature but a rendezvous secret is configured" in result.stderr, result.stderr
    assert not victim.exists()


def test_an_unknown_run_lists_the_nearest_run_ids(redis_server: RedisServer) -> None:
    for run_id in ("train-llama-7b", "train-llama-13b", "eval-bert"):
        put(redis_server, run_id, keys.ROUND, b"1")
    result = rdzv("status", "redis", redis_server.endpoint, "train-lama-7b", {})
    assert result.returncode == 1
    line = result.stderr.strip()
    assert line.startswith("rdzv status: error: no run 'train-lama-7b' in the redis store at redis://"), line
    nearest = line.split("nearest run ids", 1)[1]
    assert "train-llama-7b" in nearest and "train-llama-13b" in nearest and "eval-bert" not in nearest, line


def test_runs_lists_each_run_and_purge_older_than_spares_the_young(redis_server: RedisServer) -> None:
    put(redis_server, "gc-old", keys.slot(0, 1), b'{"node": "n", "addr": "h", "pid": 1, "at": 1000.0}')
    put(redis_server, "gc-old", keys.ticket(0), b"1")
    put(redis_server, "gc-young", keys.ROUND, b"0")
    put(redis_server, "gc-young", keys.alive(0, 0), keys.beat_value(1, __import__("time").time()))
    listed = rdzv("runs", "redis", redis_server.endpoint, None, {})
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert "gc-old" in rows and "gc-young" in rows, listed.stdout
    purged = rdzv("purge", "redis", redis_server.endpoint, None, {}, "--older-than=1d")
    assert purged.returncode == 0, purged.stderr
    assert "purged run 'gc-old'" in purged.stdout and "gc-young" not in purged.stdout, purged.stdout
    after = rdzv("runs", "redis", redis_server.endpoint, None, {})
    names = {line.split()[0] for line in after.stdout.splitlines()[1:]}
    assert "gc-old" not in names and "gc-young" in names, after.stdout


@pytest.mark.parametrize("force", [False, True])
def test_purge_of_a_young_run_needs_force_with_older_than(redis_server: RedisServer, force: bool) -> None:
    run_id = f"young-{force}"
    put(redis_server, run_id, keys.slot(0, 1), b'{"node": "n", "addr": "h", "pid": 1, "at": %.3f}'
        % __import__("time").time())
    put(redis_server, run_id, keys.ticket(0), b"1")
    result = rdzv("purge", "redis", redis_server.endpoint, run_id, {}, "--older-than=1h",
                  *(["--force"] if force else []))
    if force:
        assert result.returncode == 0 and f"purged run '{run_id}'" in result.stdout, result
    else:
        assert result.returncode == 1 and "is not older than 3600 s" in result.stderr, result
