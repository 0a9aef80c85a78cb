"""Wake-ups for ``wait`` through the run's Pub/Sub channel (no busy polling).

Every write script ``PUBLISH``es on the run's channel. One background thread
per adapter keeps one subscription to it and counts events in a
*generation* number: every message, every (re)subscription and every lost
connection bumps it and wakes the waiters.

A waiter first makes sure the subscription is live, then takes the
generation, then checks its keys. A write that lands after that check is
published after it, reaches the live subscription, bumps the generation and
wakes the waiter: there is no window in which a wake-up is lost. A
subscription that breaks bumps the generation too, so waiters re-check
rather than sleep through messages that were lost with the connection. As a
last resort against anything else (a writer that bypasses the scripts)
waiters re-check every :data:`RECHECK_INTERVAL` seconds.

Pub/Sub works everywhere, including managed Redis services that refuse
``CONFIG SET notify-keyspace-events``; messages published on a master also
reach subscribers connected to its replicas.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from rdzv_core.retry import Backoff

from rdzv_redis.errors import is_transient

if TYPE_CHECKING:  # pragma: no cover
    import redis

logger = logging.getLogger(__name__)

#: Longest a waiter sleeps without re-checking its keys.
RECHECK_INTERVAL = 5.0
#: How often an idle subscription is pinged, to notice a dead connection.
PING_INTERVAL = 10.0
#: The listener stops (and frees its connection) after this long without waiters.
IDLE_STOP = 30.0
#: Longest a ``get_message`` call blocks (bounds how fast ``close`` is seen).
_POLL = 0.5


class Notifier:
    """One Pub/Sub subscription shared by all waiters of one adapter."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self._client = client
        self._channel = channel
        self._cond = threading.Condition()
        self._generation = 0
        self._subscribed = False
        self._closed = False
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._waiters = 0
        self._last_used = time.monotonic()

    @property
    def failure(self) -> BaseException | None:
        """The permanent error that stopped the subscription (e.g. NOPERM)."""
        return self._failure

    def generation(self) -> int:
        """The current event count (compare with :meth:`wait_for_change`)."""
        with self._cond:
            return self._generation

    def acquire(self, timeout: float) -> bool:
        """Register a waiter, start the listener if needed, and wait up to
        ``timeout`` s until it is subscribed. Pair with :meth:`release`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._waiters += 1
            self._last_used = time.monotonic()
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="rdzv-redis-notify", daemon=True)
                self._thread.start()
            while not self._subscribed and self._failure is None and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._subscribed

    def release(self) -> None:
        """Unregister a waiter; the listener stops after :data:`IDLE_STOP` s without any."""
        with self._cond:
            self._waiters -= 1
            self._last_used = time.monotonic()

    def _idle_exit(self) -> bool:
        """Whether the listener should stop now (no waiters for a while); marks it stopped."""
        with self._cond:
            if self._waiters > 0 or time.monotonic() - self._last_used < IDLE_STOP:
                return False
            self._thread = None
            self._subscribed = False
            self._generation += 1
            self._cond.notify_all()
            return True

    def wait_for_change(self, generation: int, timeout: float) -> None:
        """Sleep until the generation differs from ``generation`` or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._generation == generation and not self._closed and self._failure is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)

    def close(self) -> None:
        """Stop the listener thread (returns within about half a second)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2 * _POLL)

    # -- the listener thread ---------------------------------------------------

    def _bump(self, subscribed: bool | None = None) -> None:
        with self._cond:
            self._generation += 1
            if subscribed is not None:
                self._subscribed = subscribed
            self._cond.notify_all()

    def _run(self) -> None:
        backoff = Backoff(initial=0.05, maximum=1.0)
        while not self._closed:
            pubsub = self._client.pubsub(ignore_subscribe_messages=False)
            try:
                pubsub.subscribe(self._channel)
                last_ping = time.monotonic()
                while not self._closed:
                    message = pubsub.get_message(timeout=_POLL)
                    if message is None:
                        if self._idle_exit():
                            return
                        if time.monotonic() - last_ping >= PING_INTERVAL:
                            pubsub.ping()
                            last_ping = time.monotonic()
                        continue
                    kind = message.get("type")
                    if kind == "subscribe":
                        backoff = Backoff(initial=0.05, maximum=1.0)
                        self._bump(subscribed=True)
                    elif kind in ("message", "unsubscribe"):
                        self._bump()
            except Exception as exc:  # noqa: BLE001 - the thread must never die silently
                self._bump(subscribed=False)
                if not is_transient(exc):
                    logger.warning("rdzv-redis: cannot subscribe to %s (%s); waits fall back to polling",
                                   self._channel, exc)
                    with self._cond:
                        self._failure = exc
                        self._cond.notify_all()
                    return
                time.sleep(backoff.next_delay())
            finally:
                try:
                    pubsub.close()
                except Exception:  # noqa: BLE001 - best effort on a broken connection
                    pass
        self._bump(subscribed=False)
