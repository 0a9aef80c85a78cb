"""rdzv as users get it: built wheels in a fresh virtualenv (issue 14, item 4).

Every other test uses the editable installs of ``scripts/setup.sh``; a wrong
``package_data``, entry point or dependency pin in a wheel would pass them.
Here the distributions are built as wheels and installed into a new
virtualenv (torch as the set-up installs it, third-party dependencies from
the registry, rdzv's own only from the wheel folder: see
:mod:`rdzv_core.testing.wheels`), and the installed commands run: ``rdzv
backends``, a 2-agent ``rdzv-run`` on c10d, plain ``torchrun`` on Redis. A
distribution that is installed without its backend's plugin (``rdzv-redis``
missing) and one whose plugin fails to import are reported as the user
would see them.

The virtualenv is built once for the module (its tests run on one worker,
see the root conftest.py); tests that add a distribution install it into a
folder of their own on ``PYTHONPATH`` so the others never see it.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from rdzv_core.testing.backends_table import BACKENDS_HEADER, table_rows
from rdzv_core.testing.launch import agent_command, assert_all_reduced, start_agent, stop_all
from rdzv_core.testing.ports import free_port
from rdzv_core.testing.wheels import (
    build_wheels,
    in_venv,
    new_venv,
    pip_install,
    site_packages,
    third_party_requirements,
    torch_requirement,
    venv_bin,
    venv_env,
)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
#: The distributions users install, by project folder.
PROJECTS = [ROOT, ROOT / "plugins" / "c10d", ROOT / "plugins" / "redis", ROOT / "plugins" / "etcd",
            ROOT / "examples" / "sqlite"]
#: Installed before the others, so that a missing first-party backend can be asked for.
FIRST_INSTALLED = ("rdzv_core-", "rdzv_c10d-")
FAST = {"last_call_timeout": 1, "keep_alive_interval": 1, "keep_alive_max_attempt": 2, "read_timeout": 30}


@dataclass
class UserVenv:
    """The virtualenv the wheels went into, and what its set-up saw."""

    path: Path
    wheels: list[Path]
    without_redis: subprocess.CompletedProcess  # rdzv-run --rdzv-backend=redis before rdzv-redis was installed
    seconds: dict[str, float] = field(default_factory=dict)

    def run(self, *command: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
        """Run one of the virtualenv's executables (``rdzv``, ``rdzv-run``...)
        in the virtualenv's folder (the repository's ``rdzv_core`` is no
        module there: ``python -c`` puts the working directory on ``sys.path``)."""
        return subprocess.run([venv_bin(self.path, command[0]), *command[1:]], capture_output=True, text=True,
                              timeout=timeout, env=venv_env(self.path, **env), cwd=self.path)


def one_rdzv_run(venv: UserVenv, backend: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``rdzv-run`` of a 1-node job on ``backend`` that never gets as far as a worker."""
    return venv.run("rdzv-run", "--nnodes=1", f"--rdzv-backend={backend}", "--rdzv-endpoint=127.0.0.1:1",
                    "--rdzv-id=wheels", *args, "/nonexistent/never-run.py", **env)


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory: pytest.TempPathFactory) -> UserVenv:
    """Wheels of :data:`PROJECTS` installed into a fresh virtualenv."""
    base = tmp_path_factory.mktemp("user-venv")
    seconds: dict[str, float] = {}
    started = time.monotonic()
    wheels = build_wheels(PROJECTS, base / "wheels", base / "sources")
    seconds["build"] = time.monotonic() - started
    venv = new_venv(base / "venv")
    mark = time.monotonic()
    pip_install(venv, torch_requirement())
    seconds["torch"] = time.monotonic() - mark
    mark = time.monotonic()
    pip_install(venv, *third_party_requirements(wheels))
    seconds["third-party"] = time.monotonic() - mark
    first = [w for w in wheels if w.name.startswith(FIRST_INSTALLED)]
    pip_install(venv, "--no-index", *map(str, first))
    without_redis = one_rdzv_run(UserVenv(venv, wheels, None), "redis")  # type: ignore[arg-type]
    mark = time.monotonic()
    pip_install(venv, "--no-index", *(str(w) for w in wheels if w not in first))
    seconds["rdzv"] = time.monotonic() - mark
    seconds["total"] = time.monotonic() - started
    print("wheel venv set-up, seconds:", {k: round(v, 1) for k, v in seconds.items()})
    return UserVenv(venv, wheels, without_redis, seconds)


@pytest.fixture(scope="module")
def redis_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A plain redis-server of the test's own (missing binary: a failure)."""
    from rdzv_redis.testing.servers import ServerBinaryMissing, find_redis_server, plain_server

    try:
        find_redis_server()
    except ServerBinaryMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    with plain_server(tmp_path_factory.mktemp("redis-wheels")) as server:
        yield server.endpoint


def test_everything_comes_from_the_wheels(user_venv: UserVenv) -> None:
    assert sorted(w.name.split("-")[0] for w in user_venv.wheels) == ["rdzv_c10d", "rdzv_core", "rdzv_etcd",
                                                                      "rdzv_redis", "rdzv_sqlite"]
    code = ("import torch, rdzv_core, rdzv_c10d, rdzv_redis, rdzv_etcd, rdzv_sqlite; "
            "print(torch.__version__.split('+')[0]); "
            "print('\\n'.join(m.__file__ for m in (rdzv_core, rdzv_c10d, rdzv_redis, rdzv_etcd, rdzv_sqlite)))")
    result = user_venv.run("python", "-c", code)
    assert result.returncode == 0, result.stderr
    version, *files = result.stdout.split()
    assert f"torch=={version}" == torch_requirement()
    site = site_packages(user_venv.path)
    assert all(Path(f).is_relative_to(site) for f in files), files
    assert not list(site.glob("__editable__*")), "an editable install leaked into the fresh virtualenv"


def test_rdzv_backends_lists_the_installed_wheels(user_venv: UserVenv) -> None:
    result = user_venv.run("rdzv", "backends")
    assert result.returncode == 0, result.stdout + result.stderr
    header, *rows = table_rows(result.stdout)
    assert header == BACKENDS_HEADER
    assert rows == [
        ["c10d", "c10d, rdzv-c10d", "rdzv-c10d", "rdzv-c10d", "1.0.0", "1.0",
         "wait,native_store,list_keys,run_ids,purge", "ok"],
        ["etcd", "etcd, rdzv-etcd", "rdzv-etcd", "rdzv-etcd", "1.0.0", "1.0",
         "read_many,wait,wait_read,increment,list_keys,run_ids,purge,ttl", "ok"],
        ["redis", "redis, rdzv-redis", "rdzv-redis, redis", "rdzv-redis", "1.0.0", "1.0",
         "read_many,wait,wait_read,list_keys,run_ids,purge,ttl", "ok"],
        ["sqlite", "sqlite, rdzv-sqlite", "rdzv-sqlite, sqlite", "rdzv-sqlite", "0.1.0", "1.0",
         "read_many,list_keys,run_ids,purge,ttl", "ok"],
    ]


def test_a_missing_first_party_backend_names_its_package(user_venv: UserVenv) -> None:
    """``rdzv-run`` where only rdzv-core and rdzv-c10d were installed."""
    result = user_venv.without_redis
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "rdzv-run: error: unknown rdzv backend 'redis'. It is provided by the 'rdzv-redis' package: "
        "pip install rdzv-redis. Installed rdzv backends: c10d."
    ]


@pytest.mark.launch
@pytest.mark.timeout(900)  # the fresh venv is built in this test's fixture time on a loaded 2-core machine
def test_rdzv_run_on_c10d_and_plain_torchrun_on_redis(user_venv: UserVenv, redis_endpoint: str,
                                                      tmp_path: Path) -> None:
    """Two jobs at once (one worker per agent, to spare the machine): two
    ``rdzv-run`` agents on c10d, two plain ``torchrun`` agents on Redis."""
    c10d_endpoint = f"127.0.0.1:{free_port()}"
    commands = {
        "c10d-host": agent_command("rdzv-run", "c10d", c10d_endpoint, "wheels-c10d", "2", 1, {**FAST, "is_host": "true"}),
        "c10d-client": agent_command("rdzv-run", "c10d", c10d_endpoint, "wheels-c10d", "2", 1,
                                     {**FAST, "is_host": "false"}),
        "redis-0": agent_command("torchrun", "redis", redis_endpoint, "wheels-redis", "2", 1, FAST),
        "redis-1": agent_command("torchrun", "redis", redis_endpoint, "wheels-redis", "2", 1, FAST),
    }
    agents = {}
    try:
        for name, command in commands.items():
            agents[name] = start_agent(in_venv(command, user_venv.path), tmp_path / f"{name}.log",
                                       env=venv_env(user_venv.path))
        for name, agent in agents.items():
            assert agent.wait(180) == 0, f"{name}: {agent.output()[-4000:]}"
    finally:
        stop_all(list(agents.values()))
    assert_all_reduced([agents["c10d-host"], agents["c10d-client"]], 2)
    assert_all_reduced([agents["redis-0"], agents["redis-1"]], 2)


def write_broken_project(root: Path) -> Path:
    """A distribution ``rdzv-broken`` whose plugin module imports a module nobody installs."""
    project = root / "rdzv-broken"
    package = project / "rdzv_broken"
    package.mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "rdzv-broken"\nversion = "0.3.1"\ndependencies = ["rdzv-core"]\n\n'
        '[project.entry-points.rdzv]\nbroken = "rdzv_broken.plugin"\n\n'
        '[tool.setuptools.packages.find]\ninclude = ["rdzv_broken*"]\n'
    )
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text("import rdzv_broken_missing_dependency  # never installed\n")
    return project


def test_a_distribution_that_fails_to_import(user_venv: UserVenv, tmp_path: Path) -> None:
    (wheel,) = build_wheels([write_broken_project(tmp_path / "src")], tmp_path / "wheels", tmp_path / "copies")
    target = tmp_path / "site"
    pip_install(user_venv.path, "--no-index", "--no-deps", "--target", str(target), str(wheel))
    listed = user_venv.run("rdzv", "backends", PYTHONPATH=str(target))
    assert listed.returncode == 1, listed.stdout + listed.stderr
    _header, *rows = table_rows(listed.stdout)
    assert [row[0] for row in rows] == ["c10d", "etcd", "redis", "sqlite", "broken"]
    assert rows[-1] == ["broken", "-", "-", "rdzv-broken", "0.3.1", "-", "-",
                        "FAILED: ModuleNotFoundError: No module named 'rdzv_broken_missing_dependency'"]
    selected = one_rdzv_run(user_venv, "broken", PYTHONPATH=str(target))
    assert selected.returncode == 2, selected.stderr
    assert selected.stderr.splitlines() == [
        "rdzv-run: error: rdzv backend 'broken' is installed but failed to load: plugin 'broken' from "
        "rdzv-broken 0.3.1: ModuleNotFoundError: No module named 'rdzv_broken_missing_dependency'"
    ]


def test_new_adapter_templates_ship_in_the_wheel(user_venv: UserVenv, tmp_path: Path) -> None:
    result = user_venv.run("rdzv", "new-adapter", "demo", "--dir", str(tmp_path / "pkg"))
    assert result.returncode == 0, result.stderr
    written = sorted(str(p.relative_to(tmp_path / "pkg")) for p in (tmp_path / "pkg").rglob("*") if p.is_file())
    assert written == ["README.md", "pyproject.toml", "rdzv_demo/__init__.py", "rdzv_demo/adapter.py",
                       "rdzv_demo/plugin.py", "tests/test_conformance.py"]
