"""rdzv benchmarks: core overhead, rendezvous at scale, idle load,
re-rendezvous and state size, side by side with torch's c10d backend.

Run everything with ``python benchmarks/run_all.py [--quick]``; the results
land in ``docs/benchmarks.md`` (and the plots in ``docs/img/``).
"""
