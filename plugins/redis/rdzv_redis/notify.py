"""Wake-ups for ``wait`` through per-key Pub/Sub channels (no busy polling).

Every write script ``PUBLISH``es the value it wrote on the channel of the
key (:meth:`rdzv_redis.keys.Namespace.channel_of`). A waiting thread takes a
Pub/Sub connection of its own from the adapter's idle list, subscribes it to
the channels of the keys it waits for and blocks reading it, so a write
wakes only the threads waiting for that key: a round's seal reaches each of
its N waiters once, instead of every write of a round reaching every agent
(N writes x N subscribers), and no background thread or hand-off between
threads is involved.

Order of a wait: subscribe, wait for the server's acknowledgement, check
the keys, then read messages. A write that lands after the check is
published after it and reaches the live subscription: no wake-up is lost.
For a single key the write's own message is the proof that it exists (a
write publishes only after it landed) and carries the value, so the waiter
returns without another round trip, value in hand (``wait_read``); several
keys are re-checked with one ``EXISTS``. A broken connection is dropped and
the wait goes on by polling; as a last resort against anything else (a
writer that bypasses the scripts) waiters re-check every
:data:`RECHECK_INTERVAL` seconds.

Connections go back to the idle list after a wait, still subscribed to the
channels of that wait (subscriptions change by difference, so a loop that
waits for the same key again costs no extra round trip); messages that
arrive meanwhile are discarded at the next wait. :meth:`KeyWaiter.warm_up`
opens the first one when the adapter starts, so the first wait of a
rendezvous does not pay for a connection set-up. Pub/Sub works everywhere,
including managed Redis services that refuse ``CONFIG SET
notify-keyspace-events``.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

from rdzv_core.retry import poll_for

from rdzv_redis.errors import is_transient

if TYPE_CHECKING:  # pragma: no cover
    import redis

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Longest a waiter sleeps without re-checking its keys.
RECHECK_INTERVAL = 5.0


def _name(channel: Any) -> str:
    return channel.decode() if isinstance(channel, bytes) else str(channel)


@dataclass(frozen=True)
class PubSubCalls:
    """The names, in redis-py and on the wire, of one Pub/Sub flavour."""

    message: str  # the type of a published message
    acknowledged: str  # the type of a subscription's acknowledgement
    channels: str  # the pubsub attribute listing the subscribed channels
    subscribe: str
    unsubscribe: str
    get: str  # reads one message: get(timeout=...)
    subscribed_flag: str  # the pubsub attribute that is true while it holds a subscription

    def subscribed(self, pubsub: Any) -> bool:
        """Whether ``pubsub`` holds any subscription."""
        return bool(getattr(pubsub, self.subscribed_flag))

    def read(self, pubsub: Any, timeout: float) -> Any:
        """One message, or ``None`` after ``timeout`` seconds."""
        return getattr(pubsub, self.get)(timeout=timeout)


#: Classic Pub/Sub: a standalone server, Sentinel's master.
PLAIN = PubSubCalls("message", "subscribe", "channels", "subscribe", "unsubscribe", "get_message", "subscribed")
#: Sharded Pub/Sub (Redis 7, Redis Cluster): a run's channels share its hash
#: tag, so they live on the node that serves the run's slot.
SHARDED = PubSubCalls("smessage", "ssubscribe", "shard_channels", "ssubscribe", "sunsubscribe", "get_sharded_message",
                      "shard_channels")


class KeyWaiter:
    """Blocks the calling thread until a check passes, woken by Pub/Sub messages."""

    def __init__(self, client: redis.Redis, subscribe_timeout: float, idle_channel: str, sharded: bool = False) -> None:
        self._client = client
        self._calls = SHARDED if sharded else PLAIN
        self._subscribe_timeout = subscribe_timeout
        self._idle_channel = idle_channel  # nobody publishes there: what a warmed-up connection listens to
        self._idle: list[Any] = []
        self._open: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False
        self._failure: BaseException | None = None

    @property
    def failure(self) -> BaseException | None:
        """The permanent error (e.g. NOPERM on SUBSCRIBE) that made waits poll."""
        return self._failure

    def warm_up(self) -> None:
        """Open one Pub/Sub connection now (a failure only makes the first wait
        try again, or poll if it was permanent). The adapter's data client
        holds the connection ``verify()`` opened, so this one is new."""
        pubsub = self._subscribed_connection([self._idle_channel], time.monotonic() + self._subscribe_timeout)
        if pubsub is not None:
            self._give_back(pubsub)

    def wait(self, channels: Sequence[str], check: Callable[[], T | None], timeout: float) -> T | bytes | None:
        """The first result of ``check()`` that is not ``None`` (re-checked on
        every message on ``channels``, and at least every
        :data:`RECHECK_INTERVAL` s), or ``None`` after ``timeout`` s. When a
        single channel is waited for, a message on it ends the wait at once:
        its data (the value a write script wrote) is returned as the result."""
        deadline = time.monotonic() + timeout
        pubsub = None
        if self._failure is None and not self._closed:
            pubsub = self._subscribed_connection(channels, deadline)
        if pubsub is None:
            return poll_for(check, deadline - time.monotonic())
        try:
            result = self._listen(pubsub, channels, check, deadline)
        except Exception as exc:  # noqa: BLE001 - the connection broke: poll for the rest
            self._drop(pubsub, exc)
            return poll_for(check, deadline - time.monotonic(), check_first=False)
        self._give_back(pubsub)
        return result

    def _listen(self, pubsub: Any, channels: Sequence[str], check: Callable[[], T | None],
                deadline: float) -> T | bytes | None:
        """Check, then read messages until a result or ``deadline``."""
        result = check()
        if result is not None:
            return result
        wanted = set(channels)
        only_one = len(wanted) == 1
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            message = self._calls.read(pubsub, min(remaining, RECHECK_INTERVAL))
            if message is None:
                result = check()  # RECHECK_INTERVAL passed without a message
                if result is not None:
                    return result
                continue
            if _name(message.get("type")) != self._calls.message or _name(message.get("channel")) not in wanted:
                continue
            data = message.get("data")
            if only_one and isinstance(data, bytes):
                return data  # published by a write script after the write landed
            result = check()
            if result is not None:
                return result

    def _subscribed_connection(self, channels: Sequence[str], deadline: float) -> Any:
        """An idle or new Pub/Sub connection subscribed to exactly ``channels``,
        or ``None`` if that failed (see :meth:`_drop`) or timed out."""
        pubsub = self._take()
        try:
            if self._subscribed(pubsub, channels, deadline):
                return pubsub
            _close_quietly(pubsub)
        except Exception as exc:  # noqa: BLE001 - classified: the caller polls instead of failing
            self._drop(pubsub, exc)
        return None

    def _take(self) -> Any:
        """An idle Pub/Sub connection, or a new one."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        pubsub = self._client.pubsub(ignore_subscribe_messages=False)
        with self._lock:
            self._open.add(pubsub)
        return pubsub

    def _give_back(self, pubsub: Any) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(pubsub)
                return
        _close_quietly(pubsub)

    def _subscribed(self, pubsub: Any, channels: Sequence[str], deadline: float) -> bool:
        """Subscribe ``pubsub`` to exactly ``channels`` and wait for the
        acknowledgement; ``False`` if it did not come before ``deadline``."""
        calls = self._calls
        while calls.subscribed(pubsub) and calls.read(pubsub, 0) is not None:
            pass  # discard what arrived since the last wait
        current = {_name(c) for c in getattr(pubsub, calls.channels)}
        new = [c for c in dict.fromkeys(channels) if c not in current]
        # The idle channel stays: dropping it would only cost a reply that
        # wakes the waiter for nothing.
        stale = [c for c in current if c not in set(channels) and c != self._idle_channel]
        if new:
            getattr(pubsub, calls.subscribe)(*new)
        if stale:
            getattr(pubsub, calls.unsubscribe)(*stale)  # after subscribing: the connection never leaves Pub/Sub mode
        pending = set(new)
        until = min(deadline, time.monotonic() + self._subscribe_timeout)
        while pending:
            remaining = until - time.monotonic()
            if remaining <= 0:
                return False
            message = calls.read(pubsub, remaining)
            if message is not None and _name(message.get("type")) == calls.acknowledged:
                pending.discard(_name(message.get("channel")))
        return True

    def _drop(self, pubsub: Any, exc: BaseException) -> None:
        """Close ``pubsub`` after ``exc``; a permanent error (no right to
        SUBSCRIBE) makes every later wait poll."""
        _close_quietly(pubsub)
        if not is_transient(exc) and self._failure is None:
            self._failure = exc
            logger.warning("rdzv-redis: cannot use Pub/Sub (%s); waits fall back to polling", exc)

    def close(self) -> None:
        """Close every Pub/Sub connection, idle or in use. Idempotent."""
        with self._lock:
            self._closed = True
            open_now = list(self._open)
            self._open.clear()
            self._idle.clear()
        for pubsub in open_now:
            _close_quietly(pubsub)


def _close_quietly(pubsub: Any) -> None:
    try:
        pubsub.close()
    except Exception:  # noqa: BLE001 - best effort on a broken connection
        pass
