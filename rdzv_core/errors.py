"""rdzv's own exception types.

The rendezvous side raises torch's own ``Rendezvous*Error`` classes (torch's
handler and agent know how to treat those); the Store side raises torch's
``DistStoreError``/``DistNetworkError``. The types below cover what torch has
no name for: configuration and plugin errors, and transient store faults.
This module imports nothing from torch.
"""

from __future__ import annotations


class RdzvConfigError(ValueError):
    """A bad ``--rdzv-endpoint`` or ``--rdzv-conf`` value.

    The message names the backend, the key (or endpoint) and what was wrong.
    """


class UnknownBackendError(ValueError):
    """``--rdzv-backend`` names no installed adapter."""


class PluginError(RuntimeError):
    """A plugin failed to load, or two plugins claim the same backend name."""


class TransientStoreError(ConnectionError):
    """A store call failed in a way that may succeed when retried.

    Adapters may raise it for transient conditions their client library does
    not type precisely; the core always treats it as retryable.
    """

