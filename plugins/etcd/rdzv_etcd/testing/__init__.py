"""Helpers for tests and benchmarks: real etcd servers and TLS material.

Nothing here is imported by the adapter itself.
"""
