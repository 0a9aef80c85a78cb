"""A small multi-host lab in network namespaces, for launch tests that need
each agent on a host of its own (see docs/lab.md).

Layout of one :class:`Lab` (root only; nothing is added to the root namespace)::

    <prefix>-sw      "switch": bridge br0 and one veth port per host (p-<host>)
    <prefix>-store   eth0 198.18.0.2/24     the store server runs here
    <prefix>-node0   eth0 198.18.0.11/24    one agent per node namespace
    <prefix>-node1   eth0 198.18.0.12/24    ...

``<prefix>`` is ``rdzvlab-<pid>-<n>``: parallel pytest-xdist workers never
collide, and :func:`remove_stale_labs` removes labs whose process is gone.
198.18.0.0/24 (RFC 2544 benchmarking range) exists only inside these
namespaces; the root namespace has no address or route in it, so no lab
traffic can leave the machine. Processes enter a host with ``ip netns exec``
and, for agents, ``unshare --uts`` with the host's name as hostname.

The store servers that run in the lab, and a probe that logs the run's
protocol keys from inside it, are in :mod:`rdzv_core.testing.netlab_store`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # launch imports torch; the helpers that run inside the lab do not need it
    from rdzv_core.testing.launch import Agent

#: The lab's address range: RFC 2544 benchmarking addresses, only inside the lab.
LAB_NETWORK = ipaddress.ip_network("198.18.0.0/24")
STORE_ADDR = "198.18.0.2"
FIRST_NODE_ADDR = 11
#: The interface name of every host's end of its veth pair (GLOO_SOCKET_IFNAME).
IFACE = "eth0"
PREFIX = "rdzvlab"
_NAME = re.compile(rf"^{PREFIX}-(\d+)-\d+-")
_counter = iter(range(1 << 30))


class LabUnavailable(RuntimeError):
    """This machine does not let the lab be built (no root, no netns, no veth...)."""


@dataclass(frozen=True)
class Host:
    """One lab host: a network namespace with one address on the lab's switch."""

    name: str  # also its hostname (``unshare --uts``)
    netns: str
    addr: str
    port: str  # its veth end inside the switch namespace

    def command(self, argv: Sequence[str], hostname: bool = True) -> list[str]:
        """``argv`` run inside this host (with its own UTS namespace and hostname)."""
        if not hostname:
            return ["ip", "netns", "exec", self.netns, *argv]
        return ["ip", "netns", "exec", self.netns, "unshare", "--uts", "sh", "-c",
                'hostname "$0" && exec "$@"', self.name, *argv]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)  # noqa: S603, S607
    if check and result.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed ({result.returncode}): {result.stderr.strip()}")
    return result


def lab_namespaces() -> list[str]:
    """Every network namespace whose name starts with the lab prefix."""
    listed = _ip("netns", "list", check=False).stdout.splitlines()
    return [line.split()[0] for line in listed if line.startswith(PREFIX + "-")]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_namespace(netns: str) -> None:
    """SIGKILL every process still inside ``netns`` (all started by a lab), then delete it."""
    for pid in _ip("netns", "pids", netns, check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    for _ in range(50):
        if not _ip("netns", "pids", netns, check=False).stdout.split():
            break
        time.sleep(0.1)
    _ip("netns", "del", netns, check=False)


def remove_stale_labs() -> list[str]:
    """Remove the namespaces of labs whose creating process has died; return their names."""
    stale = [ns for ns in lab_namespaces() if (m := _NAME.match(ns)) and not _pid_alive(int(m.group(1)))]
    for netns in stale:
        _remove_namespace(netns)
    return stale


def check_tools() -> None:
    """Raise :class:`LabUnavailable` naming what is missing to build a lab."""
    missing = [tool for tool in ("ip", "unshare", "hostname") if shutil.which(tool) is None]
    if missing:
        raise LabUnavailable(f"the network lab needs {', '.join(missing)} on PATH "
                             "(Debian: apt-get install -y iproute2 util-linux hostname)")
    if os.geteuid() != 0:
        raise LabUnavailable("the network lab needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) "
                             f"to create network namespaces; running as uid {os.geteuid()}")


@dataclass
class Lab:
    """Namespaces, a bridge and veth pairs for one store host and ``nodes`` agent
    hosts; a context manager that creates them and removes all of them (and every
    process left inside them) on exit, also after a failure."""

    nodes: int = 3
    prefix: str = field(default_factory=lambda: f"{PREFIX}-{os.getpid()}-{next(_counter)}")
    store: Host = field(init=False)
    hosts: list[Host] = field(init=False)
    _created: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if self.nodes + FIRST_NODE_ADDR >= LAB_NETWORK.num_addresses - 1:
            raise ValueError(f"{self.nodes} nodes do not fit in {LAB_NETWORK}")
        self.store = self._host("store", STORE_ADDR)
        self.hosts = [self._host(f"node{i}", str(LAB_NETWORK[FIRST_NODE_ADDR + i])) for i in range(self.nodes)]

    def _host(self, name: str, addr: str) -> Host:
        return Host(name, f"{self.prefix}-{name}", addr, f"p-{name}")

    @property
    def switch(self) -> str:
        """The namespace holding the bridge."""
        return f"{self.prefix}-sw"

    def __enter__(self) -> Lab:
        check_tools()
        remove_stale_labs()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add_namespace(self, netns: str) -> None:
        result = _ip("netns", "add", netns, check=False)
        if result.returncode != 0:
            raise LabUnavailable(
                f"cannot create network namespace {netns!r}: `ip netns add` failed: {result.stderr.strip()} "
                "(the lab needs root with CAP_SYS_ADMIN/CAP_NET_ADMIN and a kernel with network namespaces; "
                "an unprivileged container does not allow them)")
        self._created.append(netns)
        # IPv6 off: the lab speaks IPv4 only and sends no router/neighbour solicitations.
        subprocess.run(["ip", "netns", "exec", netns, "sh", "-c",  # noqa: S603, S607
                        "for f in all default; do echo 1 > /proc/sys/net/ipv6/conf/$f/disable_ipv6; done"],
                       capture_output=True, timeout=30)
        _ip("-n", netns, "link", "set", "lo", "up")

    def _build(self) -> None:
        self._add_namespace(self.switch)
        try:
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        except RuntimeError as exc:
            raise LabUnavailable(f"the kernel refused a bridge device: {exc}") from exc
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for host in [self.store, *self.hosts]:
            self._add_namespace(host.netns)
            try:
                _ip("-n", self.switch, "link", "add", host.port, "type", "veth", "peer", "name", IFACE,
                    "netns", host.netns)
            except RuntimeError as exc:
                raise LabUnavailable(f"the kernel refused a veth pair: {exc}") from exc
            _ip("-n", self.switch, "link", "set", host.port, "master", "br0", "up")
            _ip("-n", host.netns, "addr", "add", f"{host.addr}/{LAB_NETWORK.prefixlen}", "dev", IFACE)
            _ip("-n", host.netns, "link", "set", IFACE, "up")
        named = subprocess.run(self.hosts[0].command(["hostname"]), capture_output=True, text=True,  # noqa: S603
                               timeout=30) if self.hosts else None
        if named is not None and named.stdout.strip() != self.hosts[0].name:
            raise LabUnavailable(f"cannot give a lab host its own hostname (`unshare --uts` then `hostname`): "
                                 f"{named.stderr.strip() or named.stdout.strip()}")

    def close(self) -> None:
        """Kill whatever still runs in the lab and delete its namespaces."""
        for netns in reversed(self._created):
            _remove_namespace(netns)
        self._created.clear()

    # -- running things inside ---------------------------------------------------

    def run(self, host: Host, argv: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside ``host`` to completion (output captured)."""
        return subprocess.run(host.command(argv, hostname=False), capture_output=True, text=True,  # noqa: S603
                              timeout=timeout)

    def popen(self, host: Host, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
              hostname: bool = True) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside ``host`` in a session of its own, output to ``log_path``."""
        with open(log_path, "ab") as log:
            return subprocess.Popen(host.command(argv, hostname), stdout=log, stderr=subprocess.STDOUT,  # noqa: S603
                                    stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                                    start_new_session=True)

    # -- faults ---------------------------------------------------------------------

    def partition(self, host: Host) -> float:
        """Cut ``host`` off (its ``eth0`` down, inside its namespace); its processes
        live on. Returns the wall-clock time of the cut."""
        _ip("-n", host.netns, "link", "set", IFACE, "down")
        return time.time()

    def heal(self, host: Host) -> float:
        """Bring ``host``'s ``eth0`` back up (its address and route return with it)."""
        _ip("-n", host.netns, "link", "set", IFACE, "up")
        return time.time()


# -- agents ------------------------------------------------------------------------------


def agent_command(host: Host, *args: Any, **kwargs: Any) -> list[str]:
    """:func:`rdzv_core.testing.launch.agent_command` run inside ``host``, advertising
    the host's lab address (``--local-addr=<host.addr>`` instead of loopback)."""
    from rdzv_core.testing import launch

    argv = launch.agent_command(*args, **kwargs)
    return host.command([f"--local-addr={host.addr}" if a.startswith("--local-addr=") else a for a in argv])


def start_agent(host: Host, command: list[str], log_path: Path, env: dict[str, str] | None = None) -> Agent:
    """Start an agent made by :func:`agent_command` (it already runs inside ``host``);
    gloo is pointed at the host's lab interface."""
    from rdzv_core.testing import launch

    if command[:4] != ["ip", "netns", "exec", host.netns]:
        raise ValueError(f"not a command for {host.name}: {command[:4]} (use netlab.agent_command)")
    return launch.start_agent(command, log_path, {"GLOO_SOCKET_IFNAME": IFACE, **(env or {})})
