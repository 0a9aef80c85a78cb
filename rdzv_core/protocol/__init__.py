"""rdzv's scalable rendezvous protocol (``--rdzv-conf protocol=scalable``).

Written only against the adapter primitives, so it runs on every adapter.
See docs/design/protocol.md for the keys, the state machine and the failure
cases.
"""
