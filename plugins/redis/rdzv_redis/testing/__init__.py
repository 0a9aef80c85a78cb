"""Test helpers for rdzv-redis: real redis-server processes and TLS material.

Used by this distribution's own tests; usable by anyone who tests code on
top of the Redis adapter. Imports nothing heavy at import time.
"""
