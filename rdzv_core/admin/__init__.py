"""The operator's side of rdzv: ``rdzv status``, ``runs``, ``close`` and ``purge``.

Every command connects to a run's store exactly as an agent does (same
adapter, auth, TLS and secret) but never hosts a store.
"""
