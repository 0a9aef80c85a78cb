"""rdzv's distributions built as wheels and installed as a user installs them.

The wheel tests build each project (``rdzv-core``, the plugins, the example
adapter, small generated packages) into a wheel and install it into a fresh
virtualenv that shares nothing with the test environment's editable
installs:

* :func:`build_wheels` copies each project's sources to a scratch folder
  first (a build writes ``build/`` and ``*.egg-info`` beside the sources, and
  a stale ``build/`` could leak old files into a wheel), then builds them all
  with one ``pip wheel --no-deps --no-build-isolation`` (the test
  environment's setuptools; isolated builds would fetch setuptools once per
  project).
* :func:`new_venv` makes a virtualenv without pip of its own; :func:`pip_install`
  runs the test environment's pip against it (``pip --python``), with pip's
  configured index, so third-party packages come from the registry as a
  user's pip would fetch them. ``--no-compile`` skips writing bytecode, which
  is most of the time a torch install takes.
* :func:`third_party_requirements` reads what the wheels require, without
  rdzv's own distributions and torch: those are installed from the registry
  first; rdzv's wheels are then installed by file with ``--no-index``, so
  none of them can come from anywhere else, and pip checks that every
  dependency they declare is met.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Iterable, Sequence

#: Folders of a project that never go into its wheel (tests, other projects, build output).
SKIPPED_AT_ROOT = frozenset({"tests", "plugins", "examples", "benchmarks", "docs", "scripts", ".ci"})
#: Build output and caches, skipped at every depth.
SKIPPED_EVERYWHERE = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__",
                                            ".pytest_cache", "*.pyc")
#: Distribution names of rdzv itself (never fetched from a registry by these tests).
OWN_PREFIX = "rdzv-"
PIP_TIMEOUT = 900.0


class CommandFailed(AssertionError):
    """A command the set-up needed exited non-zero (its output is the message)."""


def run_checked(command: Sequence[str], timeout: float, env: dict[str, str] | None = None) -> str:
    """Run ``command``; return its output, or raise :class:`CommandFailed` with it."""
    result = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout, env=env)
    if result.returncode != 0:
        raise CommandFailed(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout[-3000:]}"
                            f"\n{result.stderr[-3000:]}")
    return result.stdout


def copy_sources(project: Path, scratch: Path) -> Path:
    """A copy of ``project``'s sources (no tests, sub-projects or build output) under ``scratch``."""
    target = scratch / project.resolve().name

    def skipped(folder: str, names: list[str]) -> set[str]:
        ignored = set(SKIPPED_EVERYWHERE(folder, names))
        if Path(folder).resolve() == project.resolve():
            ignored |= SKIPPED_AT_ROOT & set(names)
        return ignored

    shutil.copytree(project, target, ignore=skipped)
    return target


def build_wheels(projects: Iterable[Path], out: Path, scratch: Path) -> list[Path]:
    """Build one wheel per project into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    copies = [copy_sources(project, scratch) for project in projects]
    run_checked([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                 "--disable-pip-version-check", "--wheel-dir", str(out), *map(str, copies)], PIP_TIMEOUT)
    return sorted(out.glob("*.whl"))


def new_venv(path: Path) -> Path:
    """A fresh virtualenv at ``path`` (no pip of its own, no system site-packages)."""
    run_checked([sys.executable, "-m", "venv", "--without-pip", str(path)], 120)
    return path


def venv_bin(venv: Path, name: str) -> str:
    """Path of the executable ``name`` in ``venv``."""
    return str(venv / "bin" / name)


def pip_install(venv: Path, *args: str) -> str:
    """``pip install --no-compile ARGS`` into ``venv`` with the test environment's pip."""
    return run_checked([sys.executable, "-m", "pip", "--python", venv_bin(venv, "python"), "install",
                        "--no-compile", "--disable-pip-version-check", "--quiet", *args], PIP_TIMEOUT)


def torch_requirement() -> str:
    """The torch the test environment has (``torch==2.13.0``): the one the set-up installs."""
    import torch

    return f"torch=={torch.__version__.split('+')[0]}"


def requirements(wheel: Path) -> list[str]:
    """The ``Requires-Dist`` lines of ``wheel`` that apply without extras."""
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(name).decode()
    found = []
    for line in metadata.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement = Requirement(line.split(":", 1)[1].strip())
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            found.append(requirement)
    return [str(r) for r in found]


def third_party_requirements(wheels: Iterable[Path]) -> list[str]:
    """What ``wheels`` require from others than rdzv and torch (sorted, unique)."""
    from packaging.requirements import Requirement

    wanted = set()
    for wheel in wheels:
        for line in requirements(wheel):
            name = Requirement(line).name.lower()
            if not name.startswith(OWN_PREFIX) and name != "torch":
                wanted.add(line)
    return sorted(wanted)


def venv_env(venv: Path, **extra: str) -> dict[str, str]:
    """An environment for commands of ``venv``: its ``bin`` first on PATH, no
    PYTHONPATH or PYTHONHOME from the test process (plus ``extra``)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env.update(extra)
    return env


def site_packages(venv: Path) -> Path:
    """The site-packages folder of ``venv``."""
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def in_venv(command: Sequence[str], venv: Path) -> list[str]:
    """``command`` (from :func:`rdzv_core.testing.launch.agent_command`) with its
    launcher and worker script taken from ``venv``'s installed copies."""
    from rdzv_core.testing.launch import WORKER_SCRIPT

    worker = site_packages(venv) / "rdzv_core" / "testing" / Path(WORKER_SCRIPT).name
    launcher = venv_bin(venv, Path(command[0]).name)
    return [launcher, *(str(worker) if part == WORKER_SCRIPT else part for part in command[1:])]
