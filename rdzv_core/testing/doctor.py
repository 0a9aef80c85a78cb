"""``rdzv doctor`` as a test runs it: a real ``rdzv`` process, its lines parsed back."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Any

from rdzv_core.testing.admin_launch import rdzv


@dataclass
class DoctorRun:
    """One finished ``rdzv doctor``."""

    result: subprocess.CompletedProcess

    @property
    def status(self) -> int:
        """The exit status."""
        return self.result.returncode

    def lines(self, verdict: str) -> list[str]:
        """The check lines with ``verdict`` (``PASS``, ``WARN``, ``FAIL``)."""
        return [line for line in self.result.stdout.splitlines() if line.startswith(verdict + " ")]

    def line(self, verdict: str, name: str) -> str:
        """The one ``verdict`` line of check ``name`` (asserted to exist)."""
        found = [line for line in self.lines(verdict) if line[6:].startswith(name + " ")]
        assert len(found) == 1, f"no single {verdict} line for {name!r}:\n{self}"
        return found[0]

    def __str__(self) -> str:
        return f"[exit {self.status}]\n{self.result.stdout}{self.result.stderr}"


def doctor(backend: str, endpoint: str, conf: dict[str, Any] | None = None, run_id: str = "doctor-test") -> DoctorRun:
    """Run ``rdzv doctor`` with the launcher's flags."""
    return DoctorRun(rdzv("doctor", backend, endpoint, run_id, conf or {}))


def assert_passes(run: DoctorRun, *names: str) -> None:
    """Exit 0, no FAIL line, and a PASS line for each of ``names``."""
    assert run.status == 0 and not run.lines("FAIL"), str(run)
    for name in names:
        run.line("PASS", name)


def assert_fails(run: DoctorRun, name: str, *words: str) -> str:
    """Exit 1 and a FAIL line for check ``name`` holding each of ``words``; returns it."""
    assert run.status == 1, str(run)
    line = run.line("FAIL", name)
    assert all(word in line for word in words), f"{words} not all in: {line}\n{run}"
    return line
