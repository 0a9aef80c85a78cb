"""Follow a Sentinel failover at once instead of on the next reconnect.

redis-py asks the Sentinels for the master's address only when it opens a
new connection; pooled connections keep talking to the old master until it
is demoted, and writes that land there in between are discarded when it
re-syncs from the new master. :class:`MasterWatch` shortens that window: a
background thread subscribes to the Sentinels' ``+switch-master`` event
(and, as a fallback, asks for the master's address every
:data:`CHECK_INTERVAL` seconds); when our master moves, it closes every
pooled connection, so the next command connects to the new master.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)

#: How often the master's address is checked even without a Pub/Sub event.
CHECK_INTERVAL = 5.0
_POLL = 0.5


class MasterWatch:
    """Closes a Sentinel-managed pool's connections when the master changes."""

    def __init__(self, sentinel: Any, master_name: str, pool: Any) -> None:
        self._sentinel = sentinel
        self._name = master_name
        self._pool = pool
        self._stop = threading.Event()
        self._address: tuple[str, int] | None = None
        self._thread = threading.Thread(target=self._run, name="rdzv-redis-sentinel", daemon=True)

    def start(self) -> MasterWatch:
        """Start the watcher thread."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the watcher thread."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2 * _POLL)

    def _check(self) -> None:
        try:
            host, port = self._sentinel.discover_master(self._name)
        except Exception:  # noqa: BLE001 - no master right now: commands will fail and retry
            return
        address = (str(host), int(port))
        if self._address is not None and address != self._address:
            logger.warning("rdzv-redis: Sentinel master '%s' moved %s -> %s; reconnecting",
                           self._name, self._address, address)
            self._pool.disconnect(inuse_connections=True)
        self._address = address

    def _run(self) -> None:
        index = 0
        nodes = list(getattr(self._sentinel, "sentinels", []))
        while not self._stop.is_set():
            self._check()
            if not nodes:
                self._stop.wait(CHECK_INTERVAL)
                continue
            pubsub = nodes[index % len(nodes)].pubsub(ignore_subscribe_messages=True)
            index += 1
            try:
                pubsub.subscribe("+switch-master")
                last_check = time.monotonic()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=_POLL)
                    due = time.monotonic() - last_check >= CHECK_INTERVAL
                    if due or (message and str(message.get("data", b""), "utf-8", "replace").split(" ")[0] == self._name):
                        self._check()
                        last_check = time.monotonic()
            except Exception:  # noqa: BLE001 - try the next Sentinel
                self._stop.wait(_POLL)
            finally:
                try:
                    pubsub.close()
                except Exception:  # noqa: BLE001
                    pass
