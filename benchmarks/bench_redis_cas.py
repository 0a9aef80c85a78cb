"""CAS round trip on Redis: through rdzv's core vs a raw redis-py EVALSHA.

Both sides run the same Lua script (``rdzv_redis.scripts.CAS``) against the
same server in the same process, interleaved so that drift affects both:

* ``core``: ``RdzvBackend.set_state`` built by ``rdzv_core.handler.create_backend``
  (framing + CRC, guarded retry wrapper, adapter, ``EVALSHA``), each call
  replacing the state it read last, as torch's handler does;
* ``raw``: ``redis.Redis.evalsha`` of the registered script with the same
  payload size and a matching version token.

Usage::

    python benchmarks/bench_redis_cas.py [--endpoint HOST:PORT] [--iterations N] [--payload BYTES]

Without ``--endpoint`` it starts its own ``redis-server`` on a free loopback port.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def percentile(samples: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, int(round(fraction * len(ordered))) - 1))
    return ordered[index]


def main() -> None:
    """Run the benchmark and print median and p99 for both paths (microseconds)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="an existing Redis (default: start one)")
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--payload", type=int, default=512, help="state size in bytes (torch's is ~0.3-5 KB)")
    args = parser.parse_args()

    import redis
    from torch.distributed.elastic.rendezvous import RendezvousParameters

    from rdzv_core.handler import create_backend
    from rdzv_core.plugins import AdapterInfo, BackendRegistry
    from rdzv_core.settings import CoreSettings
    from rdzv_redis import scripts
    from rdzv_redis.adapter import RedisStateStore

    server = None
    endpoint = args.endpoint
    if endpoint is None:
        from rdzv_redis.testing.servers import plain_server

        server = plain_server(Path(tempfile.mkdtemp(prefix="bench-redis-"))).start()
        endpoint = server.endpoint
    try:
        registry = BackendRegistry(adapters={"redis": AdapterInfo("redis", RedisStateStore, "rdzv-redis", "0")})
        run = f"bench-{os.getpid()}"
        backend, _store = create_backend(RendezvousParameters("redis", endpoint, run, 1, 1), registry)
        host, _, port = endpoint.rpartition(":")
        raw = redis.Redis(host.strip("[]"), int(port), protocol=2)
        cas = raw.register_script(scripts.CAS)
        data, version = f"rdzv:{{{run}-raw}}:state", f"rdzv:{{{run}-raw}}#v:state"
        channel = f"rdzv:{{{run}-raw}}#notify"
        payload = os.urandom(args.payload)

        state = backend.set_state(payload)
        assert state is not None and state[2]
        token = state[1]
        raw_token = ""
        core_times: list[float] = []
        raw_times: list[float] = []
        for i in range(args.warmup + args.iterations):
            started = time.perf_counter()
            result = backend.set_state(payload, token)
            elapsed = time.perf_counter() - started
            assert result is not None and result[2], "core CAS lost (no contention expected)"
            token = result[1]
            if i >= args.warmup:
                core_times.append(elapsed)

            started = time.perf_counter()
            applied, _current, new_version = cas(keys=[data, version], args=[raw_token, payload, 86_400_000, channel])
            elapsed = time.perf_counter() - started
            assert applied == 1, "raw CAS lost"
            raw_token = str(int(new_version))
            if i >= args.warmup:
                raw_times.append(elapsed)

        def show(name: str, samples: list[float]) -> None:
            med = statistics.median(samples) * 1e6
            p99 = percentile(samples, 0.99) * 1e6
            print(f"{name:<34} median {med:8.1f} us   p99 {p99:8.1f} us   (n={len(samples)})")

        print(f"Redis at {endpoint}, payload {args.payload} B, python {sys.version.split()[0]}, "
              f"redis-py {redis.__version__}")
        show("core: RdzvBackend.set_state", core_times)
        show("raw: redis-py EVALSHA (same script)", raw_times)
        overhead = (statistics.median(core_times) - statistics.median(raw_times)) * 1e6
        print(f"core overhead at the median: {overhead:.1f} us")
        raw.delete(data, version)
        params = RendezvousParameters("redis", endpoint, run, 1, 1)
        RedisStateStore.from_params(params, CoreSettings.parse(params, RedisStateStore.conf_keys)).purge()
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
