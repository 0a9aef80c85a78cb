"""Exception types of the etcd adapter (pure Python: no gRPC import).

The client module translates every gRPC failure into one of these, so the
rest of the adapter and the core classify errors without knowing the client
library:

* :class:`EtcdUnavailable` (a ``ConnectionError``) and :class:`EtcdTimeout`
  (a ``TimeoutError``) are transient: a member is down, a leader election is
  under way, a call ran out of time. The core retries them.
* :class:`EtcdAuthError` and :class:`EtcdRequestError` are permanent: wrong
  credentials, missing permissions, a TLS or protocol mismatch, a request the
  server refuses. Retrying cannot help, so they fail at once.
"""

from __future__ import annotations


class EtcdError(Exception):
    """Base class of every error the etcd client raises.

    ``endpoint`` names the member the failing call went to (or all of them
    when none could be reached); ``code`` is the gRPC status name
    (``"UNAVAILABLE"``) when there was one.
    """

    def __init__(self, message: str, endpoint: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.code = code


class EtcdUnavailable(EtcdError, ConnectionError):
    """A transient failure: no member reachable, connection lost, no leader.

    ``unsent`` is true when the request provably never left this process
    (the connection could not be established), so repeating it cannot apply
    it twice.
    """

    def __init__(self, message: str, endpoint: str | None = None, code: str | None = None, unsent: bool = False) -> None:
        super().__init__(message, endpoint, code)
        self.unsent = unsent


class EtcdTimeout(EtcdError, TimeoutError):
    """A call did not finish within its time budget (outcome unknown)."""


class EtcdAuthError(EtcdError):
    """Authentication or authorization failed; retrying cannot help."""


class EtcdRequestError(EtcdError):
    """The server (or something that is not an etcd server) refused the
    request for a reason retrying cannot fix."""


class LeaseNotFound(EtcdError):
    """A put named a lease that has expired or been revoked."""
