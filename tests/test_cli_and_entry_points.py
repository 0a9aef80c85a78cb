"""The rdzv command, rdzv-run's backend check, and torch's entry-point group."""

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from rdzv_core.testing.backends_table import BACKENDS_HEADER, table_rows

BIN = Path(sys.executable).parent


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*args], capture_output=True, text=True, timeout=120)


def test_rdzv_backends_lists_installed_adapters() -> None:
    result = run(str(BIN / "rdzv"), "backends")
    assert result.returncode == 0, result.stderr
    header, *rows = table_rows(result.stdout)
    assert header == BACKENDS_HEADER
    by_name = {row[0]: row for row in rows}
    assert by_name["c10d"] == ["c10d", "c10d, rdzv-c10d", "rdzv-c10d", "rdzv-c10d", "1.0.0", "1.0",
                               "wait,native_store,list_keys,run_ids,purge", "ok"]
    assert by_name["etcd"] == ["etcd", "etcd, rdzv-etcd", "rdzv-etcd", "rdzv-etcd", "1.0.0", "1.0",
                               "read_many,wait,wait_read,increment,list_keys,run_ids,purge,ttl", "ok"]
    assert by_name["redis"] == ["redis", "redis, rdzv-redis", "rdzv-redis, redis", "rdzv-redis", "1.0.0", "1.0",
                                "read_many,wait,wait_read,list_keys,run_ids,purge,ttl", "ok"]


def test_torchrun_handlers_never_claim_a_torch_builtin_name() -> None:
    names = {ep.name for ep in entry_points(group="torchrun.handlers")}
    assert "rdzv-c10d" in names
    assert not names & {"c10d", "etcd", "etcd-v2", "static"}


def test_entry_point_module_imports_nothing_heavy() -> None:
    code = "import sys, rdzv_core.torchrun_entry as e; e.handler_creator(); print(sorted(m for m in ('torch','redis','pyetcd','grpc') if m in sys.modules))"
    result = run(sys.executable, "-c", code)
    assert result.stdout.strip() == "[]", result.stderr


def test_rdzv_run_rejects_an_unknown_backend_with_a_suggestion() -> None:
    result = run(str(BIN / "rdzv-run"), "--nnodes=1", "--rdzv-backend=c10dd", "--rdzv-endpoint=x:1", "x.py")
    assert result.returncode == 2
    assert "unknown rdzv backend 'c10dd'" in result.stderr and "Did you mean 'c10d'" in result.stderr


def test_rdzv_run_subcommand_is_rdzv_run() -> None:
    result = run(str(BIN / "rdzv"), "run", "--nnodes=1", "--rdzv-backend=nope", "x.py")
    assert result.returncode == 2 and "unknown rdzv backend 'nope'" in result.stderr


def test_rdzv_run_says_when_a_builtin_name_falls_back_to_torch() -> None:
    from rdzv_core.launcher import check_backend
    from rdzv_core.plugins import BackendRegistry

    note = check_backend("etcd", BackendRegistry())
    assert note is not None and "torch's built-in 'etcd'" in note and "pip install rdzv-etcd" in note
    assert check_backend("static", BackendRegistry()) is None
