"""What the benchmarks ran on: CPU, memory, versions, date, load."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
from importlib import metadata


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def load_average() -> str:
    """The 1/5/15-minute load averages."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def describe(server_versions: dict[str, str]) -> dict[str, str]:
    """Rows of the machine table."""
    return {
        "date (UTC)": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "CPU": _cpu_model(),
        "cores": f"{os.cpu_count()} (usable here: {len(os.sched_getaffinity(0))})",
        "memory": _memory(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": sys.version.split()[0],
        "torch": _version("torch"),
        "rdzv-core / c10d / redis / etcd": " / ".join(
            _version(d) for d in ("rdzv-core", "rdzv-c10d", "rdzv-redis", "rdzv-etcd")),
        "redis-server": server_versions.get("redis", "not used"),
        "etcd": server_versions.get("etcd", "not used"),
        "redis-py / grpcio": f"{_version('redis')} / {_version('grpcio')}",
    }
