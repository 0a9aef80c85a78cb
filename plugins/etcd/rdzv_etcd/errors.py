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


AUTH_HINT = "check --rdzv-conf username and password_file (or $RDZV_ETCD_PASSWORD)"
#: gRPC status codes that mean "try again" (a member down, a leader change,
#: a connection reset mid-call).
TRANSIENT_CODES = frozenset({"UNAVAILABLE", "UNKNOWN", "INTERNAL", "CANCELLED", "ABORTED"})


def _with_hint(details: str) -> str:
    """``details`` plus what the user most likely has to fix."""
    lowered = details.lower()
    if any(alert in lowered for alert in ("alert_bad_certificate", "alert_certificate_required")):
        return details + (" (the server refused this client's certificate or its lack of one: give --rdzv-conf "
                          "cert and key, signed by a CA the server trusts)")
    if any(word in lowered for word in ("ssl", "handshake", "certificate", "socket closed")):
        return details + " (TLS mismatch? check https:// versus http:// and --rdzv-conf cacert/cert/key)"
    if any(word in lowered for word in ("http/2", "http1", "settings frame")):
        return details + " (this port does not speak gRPC: is it an etcd client port?)"
    return details


def classify(code: str, details: str, label: str) -> EtcdError:
    """The error for a call to member ``label`` that failed with gRPC status
    ``code`` (its name, e.g. ``"UNAVAILABLE"``) and message ``details``."""
    details = _with_hint(details.strip() or code)
    message = f"etcd at {label}: {details}"
    if code == "DEADLINE_EXCEEDED":
        return EtcdTimeout(f"etcd at {label}: no answer in time ({details})", label, code)
    if code == "NOT_FOUND" and "lease not found" in details:
        return LeaseNotFound(message, label, code)
    if code == "RESOURCE_EXHAUSTED" and "too many requests" in details:
        return EtcdUnavailable(message, label, code)
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED") or (
        code == "INVALID_ARGUMENT" and ("authentication" in details or "user name" in details)
    ):
        return EtcdAuthError(f"{message} ({AUTH_HINT}, and the user's role on the key prefix)", label, code)
    if code == "UNIMPLEMENTED":
        return EtcdRequestError(f"{message} (is this an etcd v3 server?)", label, code)
    if code in TRANSIENT_CODES:
        # gRPC says this only when no connection could be made: nothing was sent.
        unsent = code == "UNAVAILABLE" and "failed to connect to all addresses" in details
        return EtcdUnavailable(message, label, code, unsent=unsent)
    return EtcdRequestError(message, label, code)
