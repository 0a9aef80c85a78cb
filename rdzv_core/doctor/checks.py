"""What ``rdzv doctor`` reports: check results, and where an adapter connects.

These types are part of the adapter contract: an adapter describes where it
connects with :class:`NetworkTarget` (``StateStore.network_targets``) and
reports its own store-specific checks as :class:`Check` results
(``StateStore.diagnose``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

PASS = "PASS"
WARN = "WARN"
FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    """One line of ``rdzv doctor``: a verdict, what was checked, what was
    found, and for WARN/FAIL how to fix it."""

    verdict: str  # PASS | WARN | FAIL
    name: str
    detail: str
    fix: str = ""

    def line(self, width: int = 20) -> str:
        """The printed line: ``FAIL  name  detail -- fix: ...``."""
        text = f"{self.verdict:<4}  {self.name:<{width}}  {self.detail}"
        return text + (f" -- fix: {self.fix}" if self.fix and self.verdict != PASS else "")


def passed(name: str, detail: str) -> Check:
    """A PASS result."""
    return Check(PASS, name, detail)


def warned(name: str, detail: str, fix: str) -> Check:
    """A WARN result with its fix."""
    return Check(WARN, name, detail, fix)


def failed(name: str, detail: str, fix: str) -> Check:
    """A FAIL result with its fix."""
    return Check(FAIL, name, detail, fix)


@dataclass(frozen=True)
class TlsTarget:
    """How the adapter speaks TLS to one endpoint (``None`` files: the system defaults)."""

    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    check_hostname: bool = True
    #: The conf keys that set the CA file, for the fix text (``ssl_ca_certs``, ``cacert``).
    ca_key: str = "the CA file"


@dataclass(frozen=True)
class NetworkTarget:
    """One host and port the adapter dials; ``tls`` when it speaks TLS there."""

    host: str
    port: int
    tls: TlsTarget | None = None
    #: The store is hosted by an agent of the launch (c10d): nothing
    #: listening before the launch is expected, not a failure.
    hosted_by_launch: bool = False

    @property
    def netloc(self) -> str:
        """``host:port`` (IPv6 in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def failures(checks: Sequence[Check]) -> int:
    """How many checks failed."""
    return sum(1 for check in checks if check.verdict == FAIL)


def exit_status(checks: Sequence[Check]) -> int:
    """``rdzv doctor``'s exit status: 1 if any check failed, else 0."""
    return 1 if failures(checks) else 0


def summary(checks: Sequence[Check]) -> str:
    """The last line: how many checks passed, warned and failed."""
    counts = {verdict: sum(1 for c in checks if c.verdict == verdict) for verdict in (PASS, WARN, FAIL)}
    word = "all checks passed" if not counts[FAIL] and not counts[WARN] else (
        "some checks failed" if counts[FAIL] else "passed with warnings")
    return f"{word}: {counts[PASS]} PASS, {counts[WARN]} WARN, {counts[FAIL]} FAIL"


def render(checks: Sequence[Check]) -> str:
    """Every check's line, aligned, then the summary."""
    width = max((len(check.name) for check in checks), default=0)
    return "\n".join([*(check.line(width) for check in checks), summary(checks)])
