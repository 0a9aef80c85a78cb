"""``rdzv new-adapter NAME``: a ready package folder for a new adapter.

:func:`check_name` and :func:`render` decide (pure functions); :func:`create`
writes. The templates are package data of rdzv-core
(``rdzv_core/templates/new_adapter``), filled in with :class:`string.Template`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from rdzv_core.plugins import FIRST_PARTY, NAME_PREFIX

#: Backend names torch's launcher has built in (an adapter of that name would
#: replace torch's under rdzv-run, and plain torchrun refuses it).
TORCH_BUILTINS = frozenset({"c10d", "etcd", "etcd-v2", "static"})
NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
#: Each generated file (relative path, with ``{package}`` for the package) and its template.
FILES = {
    "pyproject.toml": "pyproject.toml.tmpl",
    "README.md": "README.md.tmpl",
    "{package}/__init__.py": "package_init.py.tmpl",
    "{package}/plugin.py": "plugin.py.tmpl",
    "{package}/adapter.py": "adapter.py.tmpl",
    "tests/test_conformance.py": "test_conformance.py.tmpl",
}


class ScaffoldError(ValueError):
    """A name or folder ``rdzv new-adapter`` cannot use (the message says why)."""


@dataclass(frozen=True)
class AdapterNames:
    """Every name the generated package uses, derived from the backend name."""

    name: str  # the backend: --rdzv-backend=NAME
    dist: str  # the distribution: rdzv-NAME
    package: str  # the import package: rdzv_NAME
    cls: str  # the StateStore subclass: NameStateStore
    endpoint_env: str  # the test suite's endpoint variable

    @classmethod
    def of(cls, name: str) -> AdapterNames:
        """The names for backend ``name`` (checked with :func:`check_name`)."""
        check_name(name)
        words = name.split("-")
        return cls(
            name=name,
            dist=NAME_PREFIX + name,
            package="rdzv_" + "_".join(words),
            cls="".join(word.capitalize() for word in words) + "StateStore",
            endpoint_env=f"RDZV_{'_'.join(words).upper()}_TEST_ENDPOINT",
        )


def check_name(name: str) -> None:
    """Raise :class:`ScaffoldError` unless ``name`` can be a new backend's name."""
    if name.startswith(NAME_PREFIX):
        raise ScaffoldError(f"give the backend name without the '{NAME_PREFIX}' prefix: '{name[len(NAME_PREFIX):]}'")
    if not NAME_PATTERN.fullmatch(name):
        raise ScaffoldError(f"'{name}' is not a backend name: use lowercase letters, digits and single hyphens, "
                            "starting with a letter (e.g. 'mystore')")
    if name in FIRST_PARTY:
        raise ScaffoldError(f"'{name}' is rdzv's own backend ({FIRST_PARTY[name]}): choose another name")
    if name in TORCH_BUILTINS:
        raise ScaffoldError(f"'{name}' is a torch built-in backend: choose another name")


def torchrun_entry_points(names: AdapterNames) -> str:
    """The ``torchrun.handlers`` lines: ``rdzv-NAME`` and ``NAME`` (never a torch built-in)."""
    creator = '"rdzv_core.torchrun_entry:handler_creator"'
    return "\n".join(f"{alias} = {creator}" for alias in (names.dist, names.name))


def render(name: str) -> dict[str, str]:
    """The package's files for backend ``name``: relative path -> text."""
    names = AdapterNames.of(name)
    values = {**vars(names), "torchrun_entry_points": torchrun_entry_points(names)}
    folder = resources.files("rdzv_core") / "templates" / "new_adapter"
    return {
        path.format(package=names.package): Template((folder / template).read_text()).substitute(values)
        for path, template in FILES.items()
    }


def default_folder(name: str) -> Path:
    """Where the package goes without ``--dir``: ``./rdzv-NAME``."""
    return Path(NAME_PREFIX + name)


def create(name: str, folder: Path | None = None) -> tuple[Path, list[str]]:
    """Write the package for ``name`` into ``folder`` (which must not exist or be empty);
    return the folder and the files written."""
    files = render(name)
    folder = folder if folder is not None else default_folder(name)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ScaffoldError(f"'{folder}' already exists and is not an empty folder: give another --dir")
    for relative, text in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return folder, sorted(files)
