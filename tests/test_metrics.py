"""``--rdzv-conf metrics_port``: validation, a port in use, and nothing added when off."""

from __future__ import annotations

import socket

import pytest

from rdzv_core.config import ConfReader
from rdzv_core.settings import CoreSettings
from rdzv_core.errors import RdzvConfigError
from rdzv_core.metrics import RdzvMetrics


@pytest.mark.parametrize("value", ["-1", "65536", "http", "9100.5"])
def test_a_bad_metrics_port_is_one_clear_error(value: str) -> None:
    with pytest.raises(RdzvConfigError) as raised:
        CoreSettings.from_reader(ConfReader("redis", {"metrics_port": value}))
    message = str(raised.value)
    assert f"--rdzv-conf metrics_port='{value}' is invalid" in message and "\n" not in message


def test_metrics_are_off_by_default_and_a_port_turns_them_on() -> None:
    assert CoreSettings.from_reader(ConfReader("redis", {})).metrics_port is None
    assert CoreSettings.from_reader(ConfReader("redis", {"metrics_port": "0"})).metrics_port == 0


def test_a_port_in_use_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(RdzvConfigError) as raised:
            RdzvMetrics("redis", "job").serve(port)
    assert f"metrics_port={port}: the port is in use on this host" in str(raised.value)


def test_a_free_port_is_served_and_reported() -> None:
    import urllib.request

    metrics = RdzvMetrics("redis", "job")
    metrics.joined(3)
    port = metrics.serve(0)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    assert "rdzv_world_size 3.0" in text and "rdzv_rounds_joined_total 1.0" in text
