"""The prose of docs/benchmarks.md: what each section measures and how."""

from __future__ import annotations

INSTRUMENTS = """\
Both sides of every comparison run in the same process, against the same
server, in the same run, measured by the same instrument:

* **torch c10d** is torch's own `C10dRendezvousBackend` +
  `DynamicRendezvousHandler`, built exactly as torch's `create_backend` /
  `create_handler` build them; a transparent proxy between the backend and
  its TCPStore client counts every store call.
* **rdzv *store*** is `rdzv_core.handler.create_rdzv_handler` with
  `protocol=torch` (torch's own handler on rdzv's backend) or, marked
  *· scalable*, `protocol=scalable` (rdzv's own handler); a subclass of the
  adapter class, handed to the core through the registry, counts every
  adapter primitive call.
* Counted: one *store call* per client call that reaches the store (a
  Redis/etcd `wait` is one call however long it blocks), and the *payload
  bytes* it moves — values and version tokens sent, values received; keys
  and protocol framing are not counted. For Redis and etcd the server's own
  counters are shown beside it where relevant.
* Agents are threads in one process, each with its own store client as
  separate agents have, unless the table says *processes*; the stores run in
  processes of their own (TCPStore in a child process, redis-server, etcd)
  on loopback. `local_addr` is 127.0.0.1 for every agent.
"""

OVERHEAD = """\
Per adapter, `RdzvBackend.set_state` (a CAS) and `get_state` — the core's
framing (CRC32, nonce and lineage, LZ4 from 1 KiB), fence token, retry and
deadline guard — against a raw client of the same store doing the same
operation, and against the adapter's own primitive without the core in
between. The three run interleaved, call by call in rotating order, so
drift in machine load hits all alike; the client process is pinned to one
CPU and the store servers to the other (`os.sched_setaffinity`). Two state
sizes: 8 nodes (below the compression threshold) and 256 nodes.
"""

SCALE = """\
N agents, each a torch `DynamicRendezvousHandler` (or rdzv's scalable
handler), `min_nodes = max_nodes = N`, all released at once; timed until
every `next_rendezvous()` has returned, and accepted only with ranks
0..N-1 in a world of N. For each N the backends run one after another, so
they are measured side by side in time; a backend's sweep stops at its
first timeout (the handlers get the same `join_timeout` and give up by
themselves), and rdzv's `protocol=torch` backends are skipped at an N where
torch's c10d timed out (they run the same handler). N ≤ 8 and, in threads
mode, N ≥ 512 are repeated three times (median and min–max shown): with a
thousand threads in one interpreter, single runs vary by 2× and more. A
repetition that timed out while most completed counts as +inf in the median
and shows as "timeout" in the spread.
"""

PROCESSES = """\
The same rendezvous with the agents spread over long-lived worker processes
(threads within each), so that they do not share one interpreter lock. The
parent releases all workers back to back and times until the last one has
reported its ranks.
"""

IDLE = """\
N agents hold a round and then do what a torchrun agent does between rounds:
the handler's own heartbeats plus a `num_nodes_waiting()` call every
`monitor_interval` (torchrun's default, 0.1 s; torch's handler serves it
from a 1-second cache). Counted over the window: store calls and payload
bytes per second, and for Redis/etcd the server's own counters. Each
backend joins on its own first; the idle windows of backends on different
servers then run side by side (idle traffic is set by timers, not CPU), so
each server's counters belong to one backend.
"""

RERDZV = """\
N agents (`min_nodes = N-1`, `max_nodes = N`) hold a round; then one falls
silent as a killed process would — its heartbeats stop, its store
connections close, it never rejoins — and the N-1 others call
`next_rendezvous()` at once. Timed from the silencing until every survivor
holds the new round with ranks 0..N-2. torch's handler notices a dead node
only after `keep_alive_interval × keep_alive_max_attempt` without a
heartbeat (torch's defaults: 5 s × 3) and then waits `last_call_timeout`.
Each backend holds its first round on its own; the deaths are then staggered
5 s apart from one backend to the next, so that the short CPU-bound rejoins
do not overlap while most of each re-rendezvous is spent waiting for the
heartbeat timeout.
"""

STATE = """\
What one write of the rendezvous state costs as N grows. torch's handler
pickles the whole state (participants, wait list, every node's last
heartbeat) and its c10d backend stores it base64-encoded; every heartbeat
rewrites the whole blob with `compare_set`. rdzv stores the same pickle in
a frame (header, up to 32 lineage nonces, LZ4 from 1 KiB). The
states are torch's own objects with a distinct host name per node.
"""

QUICK_WARNING = """\
**This is a `--quick` smoke run**: tiny sizes, and the backends of a section
run *concurrently* to save time, so its figures say nothing about
performance. Run `python benchmarks/run_all.py` for the real numbers.
"""

NOTES = """\
## Notes and caveats

* **One machine, two cores.** Threads mode runs every agent in one
  interpreter: their Python work is serialized by the GIL and shares two
  cores with the store server, so a protocol that makes N agents do O(N)
  work each shows up as O(N²) CPU here; on real clusters that work is spread
  over N hosts. The processes mode relieves the GIL, not the two cores.
* **Hundreds of threads in one interpreter.** From a few hundred agent
  threads on, the interpreter's GIL hand-off itself becomes the cost: every
  thread waiting for the GIL wakes every 5 ms (`sys.getswitchinterval()`),
  so a burst of N agents waking at once (the seal of a round) turns into
  N×200 futex wake-ups per second, and the same run can take 3 s or 15 s.
  Threads-mode figures at N ≥ 512 measure that as much as the store or the
  protocol; the processes mode (at most 64 agents per interpreter) is the
  closer model of a cluster, where every agent has its own process. rdzv
  adds no thread per agent: the scalable protocol's heartbeats share one
  timer and 4 workers per process (a thread per handler took the c10d join
  at N=1024 from 2 s to 17 s), and a woken node needs no store call to
  learn its rank where the wake-up carries the seal (Redis, etcd). redis-py
  still costs two or three GIL hand-offs per command (send, receive; plus a
  pool check where a connection is not held) against TCPStore's one, so
  Redis suffers most. That is why N ≥ 512 are repeated in threads mode.
* **TCPStore connects.** On this kind of machine a TCPStore client connect
  on loopback now and then stalls for 5 s (a few per cent of connects made
  one after another, most of a parallel burst; torch 2.13, libuv and legacy
  servers alike), so threads mode hands agents already connected clients
  from a pool (`benchmarks/tcp_pool.py`), one per agent and never shared
  within a run; connects are never part of a timed interval. The processes
  mode connects per agent as torchrun would.
* **Same instrument.** Calls and bytes are counted at the store client API
  on both sides: torch's `Store` calls under `C10dRendezvousBackend`, rdzv's
  adapter primitives under the core (so the scalable protocol is counted the
  same way). A Redis/etcd `wait` counts as one call however long it blocks.
* **Timeouts.** A backend's N-sweep stops at its first timeout, and the
  handlers' own `join_timeout` equals the harness timeout, so a timed-out
  run stops loading the store by itself.
* Regenerate with `python benchmarks/run_all.py` (about 15 minutes, needs
  redis-server and etcd as installed by `scripts/setup.sh --test`); `--help`
  lists the knobs (sizes, sections, backends, protocols). `--quick` is the
  smoke run the test suite uses.
"""
