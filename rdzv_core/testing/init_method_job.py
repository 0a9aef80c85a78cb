"""Real multi-process jobs started with an rdzv ``init_method`` URL (no torchrun).

:func:`run_job` starts ``world_size`` Python processes, each running this
module as a script: it imports :mod:`rdzv_core.init_method`, calls
``init_process_group("gloo", init_method=URL)`` with ``RANK`` set (and
``WORLD_SIZE`` unless the URL carries it), all-reduces ``rank + 1`` and
prints one line::

    RDZV-INIT {"rank": 0, "world_size": 4, "sum": 10.0, "seconds": 0.4}

or, when ``init_process_group`` raises::

    RDZV-INIT-ERROR {"type": "RdzvConfigError", "message": "...", "seconds": 0.1}

and exits 1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

REPORT = "RDZV-INIT "
ERROR = "RDZV-INIT-ERROR "


@dataclass
class JobProcess:
    """One finished process of a job."""

    rank: int
    returncode: int
    output: str

    def line(self, prefix: str) -> dict[str, Any] | None:
        """The JSON of the process's line starting with ``prefix``, if any."""
        found = re.search("^" + re.escape(prefix) + r"(\{.*\})$", self.output, re.MULTILINE)
        return json.loads(found.group(1)) if found else None

    @property
    def report(self) -> dict[str, Any] | None:
        """The success report."""
        return self.line(REPORT)

    @property
    def error(self) -> dict[str, Any] | None:
        """The error report."""
        return self.line(ERROR)


def start_process(url: str, rank: int, world_size: int | None, timeout_seconds: float = 60,
                  extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start one process of a job on ``url`` with ``$RANK`` set, and
    ``$WORLD_SIZE`` unless ``world_size`` is ``None``."""
    env = {**os.environ, "RANK": str(rank), "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    env.pop("WORLD_SIZE", None)
    if world_size is not None:
        env["WORLD_SIZE"] = str(world_size)
    command = [sys.executable, __file__, url, str(timeout_seconds)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # noqa: S603


def finish(processes: list[tuple[int, subprocess.Popen[str]]], wait_seconds: float = 120) -> list[JobProcess]:
    """Wait for ``(rank, process)`` pairs; kill them all if one outlasts ``wait_seconds``."""
    finished = []
    deadline = time.monotonic() + wait_seconds
    for rank, process in processes:
        try:
            output, _ = process.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for _rank, other in processes:
                other.kill()
            output, _ = process.communicate()
            raise AssertionError(f"rank {rank} did not finish within {wait_seconds} s:\n{output[-3000:]}") from None
        finished.append(JobProcess(rank, process.returncode, output))
    return finished


def run_job(url: str, world_size: int, env_world_size: bool = True, timeout_seconds: float = 60,
            extra_env: dict[str, str] | None = None, wait_seconds: float = 120) -> list[JobProcess]:
    """Run every rank of a ``world_size`` job on ``url`` at once and wait for
    them; ``env_world_size`` sets ``$WORLD_SIZE`` in every process."""
    started = [(rank, start_process(url, rank, world_size if env_world_size else None, timeout_seconds, extra_env))
               for rank in range(world_size)]
    return finish(started, wait_seconds)


def assert_all_reduced(processes: list[JobProcess], world_size: int) -> None:
    """Every rank exited 0 and reported the right world size and sum."""
    for process in processes:
        assert process.returncode == 0 and process.report is not None, f"rank {process.rank}:\n{process.output[-3000:]}"
    reports = [p.report for p in processes]
    assert sorted(r["rank"] for r in reports) == list(range(world_size)), reports  # type: ignore[index]
    for report in reports:
        assert report["world_size"] == world_size, report  # type: ignore[index]
        assert report["sum"] == world_size * (world_size + 1) / 2, report  # type: ignore[index]


IDENTITY_ENV = ("RANK", "WORLD_SIZE")


def init_error(url: str, seconds: float = 3) -> tuple[Exception, float]:
    """The error ``init_process_group("gloo", init_method=url)`` raises in this
    process (``$RANK``/``$WORLD_SIZE`` hidden meanwhile) and the seconds it
    took; fails if it raises none."""
    import torch.distributed as dist

    import rdzv_core.init_method  # noqa: F401 - registers the schemes

    saved = {name: os.environ.pop(name) for name in IDENTITY_ENV if name in os.environ}
    started = time.monotonic()
    try:
        dist.init_process_group("gloo", init_method=url, timeout=timedelta(seconds=seconds))
    except Exception as exc:  # noqa: BLE001 - what the caller checks
        return exc, time.monotonic() - started
    finally:
        os.environ.update(saved)
    dist.destroy_process_group()
    raise AssertionError(f"init_process_group on {url} did not fail")


def main() -> None:
    """One process of a job: ``python init_method_job.py URL TIMEOUT_SECONDS``."""
    import torch
    import torch.distributed as dist

    import rdzv_core.init_method  # noqa: F401 - registers the schemes

    url, timeout = sys.argv[1], float(sys.argv[2])
    started = time.monotonic()
    try:
        dist.init_process_group("gloo", init_method=url, timeout=timedelta(seconds=timeout))
    except Exception as exc:  # noqa: BLE001 - reported for the test to check
        report = {"type": type(exc).__name__, "message": str(exc), "seconds": round(time.monotonic() - started, 2)}
        print(ERROR + json.dumps(report), flush=True)
        sys.exit(1)
    tensor = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(tensor)
    report = {"rank": dist.get_rank(), "world_size": dist.get_world_size(), "sum": tensor.item(),
              "seconds": round(time.monotonic() - started, 2)}
    print(REPORT + json.dumps(report), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
