"""The pure decisions of ``rdzv doctor`` (rdzv_core/doctor/verdicts.py) and its output."""

from __future__ import annotations

from rdzv_core.doctor.checks import FAIL, PASS, WARN, exit_status, failed, passed, render, warned
from rdzv_core.doctor.verdicts import (
    advertised_check,
    expiry_check,
    ipv6_check,
    is_local_address,
    latency_check,
    percentile,
)


def test_percentile_is_nearest_rank() -> None:
    samples = [float(n) for n in range(1, 101)]
    assert percentile(samples, 0.5) == 50.0 and percentile(samples, 0.99) == 99.0 and percentile([3.0], 0.99) == 3.0


def test_latency_verdicts() -> None:
    assert latency_check([0.001] * 30, 0, 60).verdict == PASS
    assert latency_check([0.001] * 29 + [0.5], 0, 60).verdict == WARN  # p99 of 30 is the slowest
    assert latency_check([0.001] * 29 + [61.0], 0, 60).verdict == FAIL
    assert latency_check([0.001] * 29, 1, 60).verdict == FAIL
    assert latency_check([], 30, 60).verdict == FAIL


def test_expiry_verdicts() -> None:
    now = 1_000_000.0
    assert expiry_check("h:1", now + 90 * 86400, now).verdict == PASS
    assert "expires in 2.0 days" in expiry_check("h:1", now + 2 * 86400, now).detail
    assert expiry_check("h:1", now - 86400, now).verdict == FAIL


def test_a_loopback_only_name_is_a_warning_only_for_a_remote_store() -> None:
    assert advertised_check("vm", "getfqdn", ["127.0.1.1"], None, store_is_local=False).verdict == WARN
    assert advertised_check("vm", "getfqdn", ["127.0.1.1"], None, store_is_local=True).verdict == PASS
    assert advertised_check("vm", "getfqdn", ["10.0.0.5"], None, store_is_local=False).verdict == PASS
    assert advertised_check("vm", "getfqdn", [], "Name or service not known", True).verdict == FAIL
    assert is_local_address(["127.0.0.1"], []) and not is_local_address(["10.0.0.9"], ["10.0.0.5"])


def test_ipv6_fails_only_where_the_run_needs_it() -> None:
    assert ipv6_check(False, []).verdict == PASS
    assert ipv6_check(False, ["::1"]).verdict == FAIL


def test_render_and_exit_status() -> None:
    checks = [passed("dns", "ok"), warned("tls expiry", "soon", "renew"), failed("connect", "no", "start it")]
    text = render(checks)
    assert text.splitlines()[2] == "FAIL  connect     no -- fix: start it"
    assert text.splitlines()[-1] == "some checks failed: 1 PASS, 1 WARN, 1 FAIL"
    assert exit_status(checks) == 1 and exit_status(checks[:2]) == 0
