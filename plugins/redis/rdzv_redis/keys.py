"""Where a run's data lives in Redis: key, version-key and channel names.

Layout for run ``job-1`` with the default prefix ``rdzv``::

    rdzv:{job-1}:state          a value (torch's state blob, Store keys, counters)
    rdzv:{job-1}#v:state        its version counter (the CAS token)
    rdzv:{job-1}#op:<nonce>     result of one counter increment (idempotent add)
    rdzv:{job-1}#notify:state   Pub/Sub channel announcing writes of ``state``

The run id sits in a hash tag (``{...}``), so every key of a run hashes to
the same Redis Cluster slot and multi-key scripts stay valid there. Run ids
are percent-encoded outside ``[A-Za-z0-9._-]`` so that no run id can close
the hash tag early or carry glob syntax into ``SCAN MATCH``: two different
runs never share a namespace. Values live right after ``}:``; bookkeeping
keys after ``}#``, so ``SCAN`` over ``rdzv:{run}:<prefix>*`` sees values only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_GLOB = re.compile(r"([*?\[\]\\])")


def encode_run_id(run_id: str) -> str:
    """Percent-encode every byte of ``run_id`` outside ``[A-Za-z0-9._-]``."""
    return _SAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), run_id)


def glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so ``text`` matches only itself."""
    return _GLOB.sub(r"\\\1", text)


@dataclass(frozen=True)
class Namespace:
    """Key names of one run under one key prefix."""

    prefix: str
    run_id: str

    @cached_property
    def tag(self) -> str:
        """``prefix:{encoded-run-id}`` — the start of every name of the run
        (computed once: every key name of every call starts with it)."""
        return f"{self.prefix}:{{{encode_run_id(self.run_id)}}}"

    def data(self, key: str) -> str:
        """The Redis key holding the value of relative ``key``."""
        return f"{self.tag}:{key}"

    def version(self, key: str) -> str:
        """The Redis key holding the version counter of relative ``key``."""
        return f"{self.tag}#v:{key}"

    def op(self, nonce: str) -> str:
        """The Redis key recording the result of one ``add`` call."""
        return f"{self.tag}#op:{nonce}"

    def channel_of(self, key: str) -> str:
        """The Pub/Sub channel on which writes of relative ``key`` are announced."""
        return f"{self.tag}#notify:{key}"

    def match(self, prefix: str) -> str:
        """A ``SCAN MATCH`` pattern for the run's values under ``prefix``."""
        return glob_escape(f"{self.tag}:{prefix}") + "*"

    @property
    def match_all(self) -> str:
        """A ``SCAN MATCH`` pattern for every key of the run (values and bookkeeping)."""
        return glob_escape(self.tag) + "*"
