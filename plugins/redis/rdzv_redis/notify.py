"""Wake-ups for ``wait`` through per-key Pub/Sub channels (no busy polling).

Every write script ``PUBLISH``es on the channel of the key it wrote
(:meth:`rdzv_redis.keys.Namespace.channel_of`). A waiting thread subscribes
its own Pub/Sub connection to the channels of the keys it waits for and
blocks reading that connection, so a write wakes only the threads waiting
for that key: a round's seal reaches each of its N waiters once, instead of
every write of a round reaching every agent (N writes x N subscribers), and
no background thread or hand-off between threads is involved.

Order of a wait: subscribe, wait for the server's acknowledgement, check
the keys, then read messages. A write that lands after the check is
published after it and reaches the live subscription: no wake-up is lost.
A broken connection is dropped and the wait goes on by polling; as a last
resort against anything else (a writer that bypasses the scripts) waiters
re-check every :data:`RECHECK_INTERVAL` seconds.

Each thread keeps its connection between waits, still subscribed to the
channels of its last wait (subscriptions change by difference, so a loop
that waits for the same key again costs no extra round trip); messages that
arrive meanwhile are discarded at the next wait. Pub/Sub works everywhere,
including managed Redis services that refuse ``CONFIG SET
notify-keyspace-events``.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Sequence

from rdzv_core.retry import poll_until

from rdzv_redis.errors import is_transient

if TYPE_CHECKING:  # pragma: no cover
    import redis

logger = logging.getLogger(__name__)

#: Longest a waiter sleeps without re-checking its keys.
RECHECK_INTERVAL = 5.0


def _name(channel: Any) -> str:
    return channel.decode() if isinstance(channel, bytes) else str(channel)


class KeyWaiter:
    """Blocks the calling thread until a check passes, woken by Pub/Sub messages."""

    def __init__(self, client: redis.Redis, subscribe_timeout: float) -> None:
        self._client = client
        self._subscribe_timeout = subscribe_timeout
        self._local = threading.local()
        self._open: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False
        self._failure: BaseException | None = None

    @property
    def failure(self) -> BaseException | None:
        """The permanent error (e.g. NOPERM on SUBSCRIBE) that made waits poll."""
        return self._failure

    def wait(self, channels: Sequence[str], ready: Callable[[], bool], timeout: float) -> bool:
        """Return ``True`` as soon as ``ready()`` holds, ``False`` after
        ``timeout`` s; ``ready()`` is re-checked on every message on
        ``channels`` (and at least every :data:`RECHECK_INTERVAL` s)."""
        deadline = time.monotonic() + timeout
        pubsub = None
        if self._failure is None and not self._closed:
            try:
                pubsub = self._subscribed(channels, deadline)
            except Exception as exc:  # noqa: BLE001 - classified: poll instead of failing the wait
                self._drop(exc)
        if ready():
            return True
        if pubsub is None:
            return poll_until(ready, deadline - time.monotonic(), check_first=False)
        wanted = set(channels)
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                message = pubsub.get_message(timeout=min(remaining, RECHECK_INTERVAL))
                if message is not None and not (
                    message.get("type") == "message" and _name(message.get("channel")) in wanted
                ):
                    continue
                if ready():
                    return True
        except Exception as exc:  # noqa: BLE001 - the connection broke: poll for the rest
            self._drop(exc)
            return poll_until(ready, deadline - time.monotonic(), check_first=False)

    def _subscribed(self, channels: Sequence[str], deadline: float) -> Any:
        """This thread's Pub/Sub connection, subscribed to exactly ``channels``
        (acknowledged), or ``None`` if that did not happen before ``deadline``."""
        pubsub = getattr(self._local, "pubsub", None)
        if pubsub is None:
            pubsub = self._client.pubsub(ignore_subscribe_messages=False)
            self._local.pubsub = pubsub
            with self._lock:
                self._open.add(pubsub)
        while pubsub.subscribed and pubsub.get_message(timeout=0) is not None:
            pass  # discard what arrived since the last wait
        current = {_name(c) for c in pubsub.channels}
        new = [c for c in dict.fromkeys(channels) if c not in current]
        stale = [c for c in current if c not in set(channels)]
        if new:
            pubsub.subscribe(*new)
        if stale:
            pubsub.unsubscribe(*stale)  # after subscribing: the connection never leaves Pub/Sub mode
        pending = set(new)
        until = min(deadline, time.monotonic() + self._subscribe_timeout)
        while pending:
            remaining = until - time.monotonic()
            if remaining <= 0:
                return None
            message = pubsub.get_message(timeout=remaining)
            if message is not None and message.get("type") == "subscribe":
                pending.discard(_name(message.get("channel")))
        return pubsub

    def _drop(self, exc: BaseException) -> None:
        """Forget this thread's connection after ``exc``; a permanent error
        (no right to SUBSCRIBE) makes every later wait poll."""
        pubsub = getattr(self._local, "pubsub", None)
        self._local.pubsub = None
        if pubsub is not None:
            _close_quietly(pubsub)
        if not is_transient(exc) and self._failure is None:
            self._failure = exc
            logger.warning("rdzv-redis: cannot use Pub/Sub (%s); waits fall back to polling", exc)

    def close(self) -> None:
        """Close every thread's Pub/Sub connection. Idempotent."""
        with self._lock:
            self._closed = True
            open_now = list(self._open)
            self._open.clear()
        for pubsub in open_now:
            _close_quietly(pubsub)


def _close_quietly(pubsub: Any) -> None:
    try:
        pubsub.close()
    except Exception:  # noqa: BLE001 - best effort on a broken connection
        pass
