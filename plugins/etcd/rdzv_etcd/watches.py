"""Every watch of one client on one long-lived gRPC Watch stream.

A wait used to open a Watch stream of its own, and gRPC's Python runtime
pays for each one with two threads started and stopped and an HTTP/2 stream
set up and torn down: about 4 ms of client CPU a wait, ten times a unary read.
Waiting nodes re-arm their wait every second or so, and at 1024 nodes in one
interpreter that cost alone outran the CPU. etcd multiplexes watchers on a
stream (its own Go client keeps one stream per context), so this module does
the same: one stream per client, opened on the first wait, carrying a
create and a cancel request per wait.

etcd answers the create requests of one stream in the order they were sent,
each with the watch id it assigned, and sends a watcher's events only after
its ``created`` answer; :class:`_Stream` binds ids to waits in that order.
A broken stream fails every wait on it (the caller retries, as it did when
its own stream broke); the next wait opens a new one on the client's current
member, with the current auth token.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol, Sequence

import grpc
from pyetcd import etcdrpc

from rdzv_etcd.errors import EtcdError, EtcdUnavailable
from rdzv_etcd.ops import KeyValue

#: A watch of more keys than this is one watcher over their key range.
WATCHERS_PER_CALL = 8
_STOP = object()  # ends a stream's request iterator
#: Streams inherited across ``fork``: kept alive, never used.
_ABANDONED: list[object] = []


class StreamOpener(Protocol):
    """What a hub needs from its client."""

    def open_watch_stream(self, requests: Iterator[Any]) -> tuple[Any, int, str | None, str]:
        """A new Watch call fed by ``requests``: the call, the index and label
        of the member it went to, and the auth token it used."""

    def watch_stream_error(self, exc: grpc.RpcError, index: int, token: str | None) -> EtcdError:
        """The error a broken stream stands for (renewing the token or moving on, as calls do)."""

    def watch_target(self) -> tuple[int, str | None]:
        """The member index and auth token a new stream would use now."""


def watch_ranges(keys: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
    """The (key, range_end) watchers for ``keys``: one each, or one range
    from the first to the last key when there are more than a few."""
    if len(keys) > WATCHERS_PER_CALL:
        return [(min(keys), max(keys) + b"\0")]
    return [(k, b"") for k in keys]


#: A single-key watcher nobody waits on any more is kept this long for the
#: next wait on that key (waiters re-arm their wait every second or so).
LINGER = 5.0


@dataclass(eq=False)
class _Watcher:
    """One etcd watcher on a stream and the waits it serves.

    A single-key watcher is shared by every wait on that key that started
    reading at or after the watcher's start revision, and remembers the
    key's latest event for the waits that join later (they ignore events at
    or below the revision they read at)."""

    key: bytes
    range_end: bytes
    start_revision: int
    waits: list[queue.SimpleQueue[Any]] = field(default_factory=list)
    watch_id: int | None = None
    latest: Any = None  # the newest answer with events (single-key watchers)
    idle_since: float | None = None  # when its last wait left (a lingering shared watcher)
    ended: bool = False  # canceled, or given up before etcd assigned its id

    @property
    def shareable(self) -> bool:
        """Whether other waits on the key may join it."""
        return not self.range_end


@dataclass(eq=False)
class _Stream:
    """One Watch call and the watchers it carries."""

    call: Any
    requests: queue.SimpleQueue[Any]
    index: int
    token: str | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: collections.deque[_Watcher] = field(default_factory=collections.deque)  # creates not answered yet
    bound: dict[int, _Watcher] = field(default_factory=dict)
    shared: dict[bytes, _Watcher] = field(default_factory=dict)  # single-key watchers by key
    broken: EtcdError | None = None

    def start(self, label: str, on_error: Callable[[grpc.RpcError], EtcdError]) -> _Stream:
        """Read the stream's answers in a thread of its own."""
        threading.Thread(target=self._read, args=(label, on_error), daemon=True,
                         name="rdzv-etcd-watch").start()
        return self

    def add(self, key: bytes, range_end: bytes, start_revision: int, answers: queue.SimpleQueue[Any]) -> _Watcher:
        """Watch ``key`` (to ``range_end``) from ``start_revision`` on; answers go to ``answers``."""
        with self.lock:
            if self.broken is not None:
                raise self.broken
            self._sweep(time.monotonic())
            watcher = self.shared.get(key) if not range_end else None
            if watcher is not None and not watcher.ended and watcher.start_revision <= start_revision:
                watcher.waits.append(answers)
                watcher.idle_since = None
                if watcher.latest is not None:
                    answers.put(watcher.latest)
                return watcher
            watcher = _Watcher(key, range_end, start_revision, [answers])
            if watcher.shareable and key not in self.shared:
                self.shared[key] = watcher
            self.pending.append(watcher)  # under the lock: the order of pending is the order sent
            self.requests.put(etcdrpc.WatchRequest(create_request=etcdrpc.WatchCreateRequest(
                key=key, range_end=range_end, start_revision=start_revision)))
        return watcher

    def remove(self, watcher: _Watcher, answers: queue.SimpleQueue[Any]) -> None:
        """A wait is done: a shared watcher lingers (:data:`LINGER`), any other is canceled."""
        with self.lock:
            if answers in watcher.waits:
                watcher.waits.remove(answers)
            if watcher.waits:
                return
            if self.shared.get(watcher.key) is watcher:
                watcher.idle_since = time.monotonic()
            else:
                self._end(watcher)

    def _sweep(self, now: float) -> None:
        """Cancel shared watchers that lingered long enough (holding the lock)."""
        for key, watcher in list(self.shared.items()):
            if watcher.idle_since is not None and now - watcher.idle_since > LINGER:
                del self.shared[key]
                self._end(watcher)

    def _end(self, watcher: _Watcher) -> None:
        """Cancel ``watcher`` now, or as soon as etcd names it (holding the lock)."""
        watcher.ended = True
        if watcher.watch_id is not None and self.bound.pop(watcher.watch_id, None) is not None:
            self._cancel(watcher.watch_id)

    def _cancel(self, watch_id: int) -> None:
        if self.broken is None:
            self.requests.put(etcdrpc.WatchRequest(cancel_request=etcdrpc.WatchCancelRequest(watch_id=watch_id)))

    def close(self) -> None:
        """End the stream (its waits fail as on a broken stream)."""
        self.requests.put(_STOP)
        self.call.cancel()

    def _read(self, label: str, on_error: Callable[[grpc.RpcError], EtcdError]) -> None:
        error: EtcdError
        try:
            for response in self.call:
                self._dispatch(response)
            error = EtcdUnavailable(f"etcd at {label}: the watch stream ended", label)
        except grpc.RpcError as exc:
            error = on_error(exc)
        with self.lock:
            self.broken = error
            waits = [w for watcher in (*self.pending, *self.bound.values()) for w in watcher.waits]
            self.pending.clear()
            self.bound.clear()
            self.shared.clear()
        self.requests.put(_STOP)
        for answers in waits:
            answers.put(error)

    def _dispatch(self, response: Any) -> None:
        with self.lock:
            if response.created and self.pending:
                watcher = self.pending.popleft()
                watcher.watch_id = response.watch_id
                if watcher.ended:
                    self._cancel(response.watch_id)
                    return
                if not response.canceled:
                    self.bound[response.watch_id] = watcher
            else:
                watcher = self.bound.get(response.watch_id)
                if watcher is None:
                    return
            if response.canceled:
                watcher.ended = True
                self.bound.pop(response.watch_id, None)
                if self.shared.get(watcher.key) is watcher:
                    del self.shared[watcher.key]
            elif not response.events:
                return
            elif watcher.shareable:
                watcher.latest = response
            waits = list(watcher.waits)
        for answers in waits:
            answers.put(response)


def _requests(source: queue.SimpleQueue[Any]) -> Iterator[Any]:
    while (request := source.get()) is not _STOP:
        yield request


class WatchHub:
    """The watches of one client, on one shared stream (see the module docstring)."""

    def __init__(self, client: StreamOpener) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._stream: _Stream | None = None

    def _current(self) -> _Stream:
        """The open stream to the client's current member with its current
        token, opened (and an outdated one closed) when needed."""
        index, token = self._client.watch_target()
        with self._lock:
            stream = self._stream
            if stream is not None and stream.broken is None and (stream.index, stream.token) == (index, token):
                return stream
            requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
            call, index, token, label = self._client.open_watch_stream(_requests(requests))
            self._stream = fresh = _Stream(call, requests, index, token).start(
                label, lambda exc: self._client.watch_stream_error(exc, index, token))
        if stream is not None and stream.broken is None:
            stream.close()
        return fresh

    def watch(self, keys: Sequence[bytes], start_revision: int, timeout: float,
              label: str = "") -> Iterator[list[tuple[bool, KeyValue]]]:
        """Yield batches of ``(is_put, key as written)`` events on ``keys``
        from ``start_revision`` on, until ``timeout`` seconds pass (then the
        iterator just ends). Raises ``EtcdUnavailable`` when the stream breaks
        or the server cancels the watcher (compaction, lost leader)."""
        end = time.monotonic() + timeout
        answers: queue.SimpleQueue[Any] = queue.SimpleQueue()
        stream = self._current()
        watchers = [stream.add(key, range_end, start_revision, answers) for key, range_end in watch_ranges(keys)]
        try:
            while (left := end - time.monotonic()) > 0:
                try:
                    answer = answers.get(timeout=left)
                except queue.Empty:
                    return
                if isinstance(answer, EtcdError):
                    raise answer
                if answer.canceled:
                    reason = answer.cancel_reason or f"compacted at revision {answer.compact_revision}"
                    raise EtcdUnavailable(f"etcd at {label}: watch canceled: {reason}", label)
                yield [(e.type == e.PUT, KeyValue.of(e.kv)) for e in answer.events]
        finally:
            for watcher in watchers:
                stream.remove(watcher, answers)

    def close(self) -> None:
        """Close the stream (a later watch opens a new one)."""
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def forget(self) -> None:
        """Abandon the stream untouched (after ``fork``; see ``EtcdClient.forget_connections``)."""
        if self._stream is not None:
            _ABANDONED.append(self._stream)
        self._lock = threading.Lock()
        self._stream = None
