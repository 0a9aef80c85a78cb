"""CAS latency on etcd: through the rdzv core vs a raw client transaction.

Starts its own single-member etcd (the binary the tests use) on loopback and
times a chain of successful compare-and-swaps of a ``--size``-byte state, in
the same process and interleaved in blocks so that drift hits every path
alike:

* ``raw pyetcd txn``   -- etcd-sdk-python's own client: ``transaction()``
  comparing ``mod_revision``, put on success, get on failure (the baseline);
* ``adapter cas``      -- ``EtcdStateStore.cas`` (rdzv's gRPC client, one txn);
* ``core set_state``   -- ``RdzvBackend.set_state`` from
  ``rdzv_core.handler.create_backend``: framing (nonce, lineage, CRC, HMAC
  with a secret), retry guard, adapter -- what torch's handler calls.

Usage: python benchmarks/bench_etcd_cas.py [--iterations 2000] [--size 1024] [--fsync]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import rdzv_etcd.client  # noqa: F401  (first: sets gRPC's fork support as in production)


def percentile(samples: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    """Run the benchmark and print a table (milliseconds)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=2000, help="timed CAS calls per path")
    parser.add_argument("--size", type=int, default=1024, help="state size in bytes")
    parser.add_argument("--block", type=int, default=100, help="calls per path before switching paths")
    parser.add_argument("--fsync", action="store_true", help="let etcd fsync its WAL (default: --unsafe-no-fsync)")
    args = parser.parse_args()

    import pyetcd
    from rdzv_core.handler import create_backend
    from rdzv_core.testing import AdapterHarness
    from rdzv_etcd.adapter import EtcdStateStore
    from rdzv_etcd.testing.servers import etcd_cluster

    state = os.urandom(args.size)  # incompressible: the codec's LZ4 attempt is paid and kept out
    with tempfile.TemporaryDirectory() as tmp, etcd_cluster(Path(tmp), fsync=args.fsync) as cluster:
        member = cluster.members[0]
        secret = Path(tmp) / "secret"
        secret.write_text("bench-secret")
        harness = AdapterHarness(EtcdStateStore, endpoint=cluster.endpoint, conf={"secret_file": str(secret)})
        backend, _ = create_backend(harness.params("bench-core"), harness.registry())
        adapter = harness.adapter("bench-adapter")
        raw = pyetcd.client("127.0.0.1", member.client_port, timeout=10)

        core_token = [None]

        def core() -> None:
            result = backend.set_state(state, core_token[0])
            assert result is not None and result[2]
            core_token[0] = result[1]

        adapter_token = [None]

        def via_adapter() -> None:
            result = adapter.cas("state", adapter_token[0], state)
            assert result.applied
            adapter_token[0] = result.token

        raw_key = "/bench/raw/state"
        raw.put(raw_key, b"")
        raw_rev = [raw.get(raw_key)[1].mod_revision]

        def raw_txn() -> None:
            ok, responses = raw.transaction(
                compare=[raw.transactions.mod(raw_key) == raw_rev[0]],
                success=[raw.transactions.put(raw_key, state)],
                failure=[raw.transactions.get(raw_key)],
            )
            assert ok
            raw_rev[0] = responses[0].response_put.header.revision

        paths: dict[str, Callable[[], None]] = {
            "raw pyetcd txn": raw_txn, "adapter cas": via_adapter, "core set_state": core}
        samples: dict[str, list[float]] = {name: [] for name in paths}
        for call in paths.values():  # warm up connections and caches
            for _ in range(50):
                call()
        done = 0
        while done < args.iterations:
            block = min(args.block, args.iterations - done)
            for name, call in paths.items():
                for _ in range(block):
                    started = time.perf_counter()
                    call()
                    samples[name].append((time.perf_counter() - started) * 1000)
            done += block

        raw.close()
        adapter.close()

    base = statistics.median(samples["raw pyetcd txn"])
    print(f"etcd {cluster.binary} | {args.iterations} CAS per path | state {args.size} B | "
          f"fsync {'on' if args.fsync else 'off'} | single member on loopback")
    print(f"{'path':<16} {'median ms':>10} {'p99 ms':>9} {'mean ms':>9} {'median vs raw':>14}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:<16} {median:>10.3f} {percentile(values, 0.99):>9.3f} {statistics.fmean(values):>9.3f} "
              f"{median - base:>+12.3f}ms")


if __name__ == "__main__":
    main()
