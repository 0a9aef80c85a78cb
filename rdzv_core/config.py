"""Typed, validated access to ``--rdzv-conf`` values: the one reader of them.

:class:`ConfReader` reads the core's keys and every adapter's own
(:attr:`~rdzv_core.settings.CoreSettings.conf`), so a timeout, a secret or a
password from a file or an environment variable, a username, a key prefix
and a TLS file trio follow one set of rules whichever backend reads them.
Every bad value is reported as :class:`~rdzv_core.errors.RdzvConfigError`
naming the backend, the key, the value and what was expected. Unknown keys are
errors too (with a "did you mean"), because a misspelt ``read_timout`` that is
silently ignored is worse than a failed launch.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from rdzv_core.errors import RdzvConfigError

if TYPE_CHECKING:  # pragma: no cover
    from torch.distributed.elastic.rendezvous import RendezvousParameters

    from rdzv_core.endpoints import Endpoint

@dataclass(frozen=True)
class TlsFiles:
    """The TLS file trio as given (``None``: not given): each path names an
    existing file, and a private key comes with its certificate."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    @property
    def given(self) -> bool:
        """Whether any of the three files was given."""
        return any(path is not None for path in (self.ca, self.cert, self.key))


class ConfReader:
    """Reads and validates conf values of one backend's parameters."""

    def __init__(self, backend: str, config: dict[str, Any]) -> None:
        self.backend = backend
        self._config = config

    @classmethod
    def of(cls, params: RendezvousParameters) -> ConfReader:
        """A reader over ``params.config`` that names ``params.backend`` in errors."""
        return cls(params.backend, params.config)

    def error(self, key: str, value: Any, expected: str) -> RdzvConfigError:
        """Build the error for a bad value of ``key``."""
        return RdzvConfigError(
            f"rdzv backend '{self.backend}': --rdzv-conf {key}={value!r} is invalid: expected {expected}"
        )

    def raw(self, key: str) -> Any:
        """The value as given, or ``None``; blank strings count as absent."""
        value = self._config.get(key)
        if isinstance(value, str) and not value.strip():
            return None
        return value

    def string(self, key: str, default: str | None = None) -> str | None:
        """A string value, stripped."""
        value = self.raw(key)
        return default if value is None else str(value).strip()

    def seconds(self, key: str, default: float, allow_zero: bool = False, unit: str = "seconds") -> float:
        """A positive number of ``unit`` (seconds unless said; fractions allowed)."""
        value = self.raw(key)
        if value is None:
            return default
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self.error(key, value, f"a number of {unit}") from None
        if number != number or number in (float("inf"), float("-inf")) or number < 0 or (number == 0 and not allow_zero):
            raise self.error(key, value, f"a {'non-negative' if allow_zero else 'positive'} number of {unit}")
        return number

    def integer(self, key: str, default: int, minimum: int = 0) -> int:
        """An integer ``>= minimum``."""
        value = self.raw(key)
        if value is None:
            return default
        try:
            number = int(str(value).strip())
        except ValueError:
            raise self.error(key, value, "a whole number") from None
        if number < minimum:
            raise self.error(key, value, f"a whole number >= {minimum}")
        return number

    def boolean(self, key: str, default: bool | None = None) -> bool | None:
        """A boolean written as 1/0, true/false, yes/no, on/off."""
        value = self.raw(key)
        if value is None or isinstance(value, bool):
            return default if value is None else value
        text = str(value).strip().lower()
        if text in ("1", "true", "t", "yes", "y", "on"):
            return True
        if text in ("0", "false", "f", "no", "n", "off"):
            return False
        raise self.error(key, value, "a boolean (true/false, 1/0, yes/no)")

    def port(self, key: str) -> int | None:
        """A TCP port from 0 to 65535 (0: a free one), or ``None`` when ``key`` is not given."""
        if self.raw(key) is None:
            return None
        port = self.integer(key, 0)
        if port > 65535:
            raise self.error(key, self.raw(key), "a port number from 0 to 65535 (0: a free port)")
        return port

    def choice(self, key: str, choices: Iterable[str], default: str) -> str:
        """One of ``choices`` (case-insensitive)."""
        options = tuple(choices)
        value = self.raw(key)
        if value is None:
            return default
        text = str(value).strip().lower()
        if text not in options:
            raise self.error(key, value, "one of " + ", ".join(options))
        return text

    def existing_file(self, key: str) -> Path | None:
        """A path that must name a readable file."""
        value = self.string(key)
        if value is None:
            return None
        path = Path(value).expanduser()
        if not path.is_file():
            raise self.error(key, value, "the path of an existing, readable file")
        return path

    def file_bytes(self, key: str, path: Path) -> bytes:
        """The contents of ``path`` (the value of ``key``); an unreadable file is an error."""
        try:
            return path.read_bytes()
        except OSError as exc:
            raise self.error(key, str(path), f"a readable file ({exc.strerror})") from None

    def secret(self, file_key: str, env: str) -> bytes | None:
        """A secret from the file that ``file_key`` names, else from ``$env``
        (``None`` when neither is given).

        The one rule for every secret and password: the file wins over the
        variable; surrounding whitespace (a trailing newline) is stripped;
        a file or a set variable that holds nothing else is an error, never
        "no secret".
        """
        path = self.existing_file(file_key)
        if path is not None:
            secret = self.file_bytes(file_key, path).strip()
            if not secret:
                raise self.error(file_key, str(path), "a file holding a non-empty secret")
            return secret
        value = os.environ.get(env)
        if value is None:
            return None
        if not value.strip():
            raise RdzvConfigError(f"rdzv backend '{self.backend}': ${env} is set but empty")
        return value.strip().encode()

    def password(self, file_key: str, env: str) -> str | None:
        """:meth:`secret` as text: a password must be UTF-8."""
        secret = self.secret(file_key, env)
        if secret is None:
            return None
        try:
            return secret.decode("utf-8")
        except UnicodeDecodeError:
            source = f"--rdzv-conf {file_key}" if self.raw(file_key) is not None else f"${env}"
            raise RdzvConfigError(f"rdzv backend '{self.backend}': the password in {source} is not UTF-8 text") from None

    def username(self, endpoints: Iterable[Endpoint], key: str = "username") -> str | None:
        """The user named by ``key`` or in the endpoints' URLs (``user@host``);
        naming two different users is an error."""
        username = self.string(key)
        for ep in endpoints:
            if ep.username is None:
                continue
            if username is not None and username != ep.username:
                raise RdzvConfigError(
                    f"rdzv backend '{self.backend}': different users named: '{username}' and '{ep.username}' "
                    f"(in endpoint '{ep}'); give the user once, in --rdzv-conf {key} or in the endpoint"
                )
            username = ep.username
        return username

    def key_prefix(self, default: str, forbidden: str = "") -> str:
        """The ``key_prefix`` value (``default`` when absent or blank): no
        control characters and none of ``forbidden``."""
        prefix = self.string("key_prefix", default) or default
        bad = sorted({c for c in prefix if ord(c) < 32 or c in forbidden})
        if bad:
            shown = " ".join(repr(c) for c in bad)
            raise self.error("key_prefix", prefix, f"a key prefix without {shown} (control characters or {forbidden!r})"
                             if forbidden else f"a key prefix without {shown} (control characters)")
        return prefix

    def tls_files(self, ca: str, cert: str, key: str) -> TlsFiles:
        """The TLS file trio under this backend's key names (a CA bundle, a
        client certificate, its private key): each must exist, and a private
        key needs its certificate."""
        files = TlsFiles(self.existing_file(ca), self.existing_file(cert), self.existing_file(key))
        if files.key is not None and files.cert is None:
            raise RdzvConfigError(
                f"rdzv backend '{self.backend}': --rdzv-conf {key} is set but {cert} is not; "
                "a private key needs its client certificate"
            )
        return files

    def reject_unknown(self, known: Iterable[str]) -> None:
        """Raise for any key not in ``known`` (with a "did you mean")."""
        allowed = set(known)
        for key in sorted(self._config):
            if key in allowed:
                continue
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise RdzvConfigError(
                f"rdzv backend '{self.backend}': unknown --rdzv-conf key '{key}'.{hint} "
                f"Known keys: {', '.join(sorted(allowed))}."
            )
