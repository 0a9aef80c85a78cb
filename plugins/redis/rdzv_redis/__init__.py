"""rdzv adapter for Redis: torchrun rendezvous that outlives any training node.

Install ``rdzv-redis`` and launch with ``--rdzv-backend=redis``. The adapter
class is :class:`rdzv_redis.adapter.RedisStateStore`; it is imported lazily
(torch imports every ``torchrun.handlers`` entry point on every launch).
"""

__version__ = "1.0.0"
