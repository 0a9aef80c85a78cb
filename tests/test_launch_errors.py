"""Launch errors a person can read (issue 13, item 8): real ``rdzv-run`` and
``torchrun`` processes that fail to create their rendezvous handler."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rdzv_core.testing.launch import launcher_executable
from rdzv_core.testing.ports import free_port

pytestmark = pytest.mark.launch


def launch(launcher: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """One agent of a 1-node run that never gets as far as a worker."""
    import os

    command = [launcher_executable(launcher), *args[:-1], "--nnodes=1", "--nproc-per-node=1",
               "--rdzv-id=launch-errors", args[-1], "/nonexistent/never-run.py"]
    return subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LOGLEVEL": "WARNING", **(env or {})})


def lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


def test_a_misspelt_conf_key_is_one_line_with_the_suggestion() -> None:
    result = launch("rdzv-run", "--rdzv-backend=redis", "--rdzv-endpoint=127.0.0.1:1", "--rdzv-conf=read_timout=5")
    assert result.returncode == 1
    assert len(lines(result)) == 1, result.stderr
    line = lines(result)[0]
    assert line.startswith("rdzv-run: error: rdzv backend 'redis': unknown --rdzv-conf key 'read_timout'.")
    assert "Did you mean 'read_timeout'?" in line


def test_an_unreachable_store_ends_with_one_error_line_and_no_traceback() -> None:
    port = free_port()
    result = launch("rdzv-run", "--rdzv-backend=redis", f"--rdzv-endpoint=127.0.0.1:{port}",
                    "--rdzv-conf=connect_timeout=1")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    # The first failed attempt is logged as it happens; then the one error line.
    assert len(lines(result)) <= 2, result.stderr
    assert lines(result)[-1].startswith(f"rdzv-run: error: rdzv backend 'redis': cannot connect to '127.0.0.1:{port}'")


@pytest.mark.parametrize("how", ["--verbose", "LOGLEVEL=DEBUG"])
def test_the_traceback_is_there_when_asked_for(how: str) -> None:
    args = ["--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:1", "--rdzv-conf=store_type=redis"]
    if how == "--verbose":
        result = launch("rdzv-run", "--verbose", *args)
    else:
        result = launch("rdzv-run", *args, env={"LOGLEVEL": "DEBUG"})
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert lines(result)[-1].startswith("rdzv-run: error: rdzv backend 'c10d': --rdzv-conf store_type='redis' is invalid")


def test_plain_torchrun_ends_with_the_clear_line() -> None:
    result = launch("torchrun", "--rdzv-backend=rdzv-c10d", "--rdzv-endpoint=127.0.0.1:1", "--rdzv-conf=read_timout=5")
    assert result.returncode == 1
    assert lines(result)[-1].startswith("rdzv_core.errors.RdzvConfigError: rdzv backend 'rdzv-c10d': unknown "
                                        "--rdzv-conf key 'read_timout'. Did you mean 'read_timeout'?")
