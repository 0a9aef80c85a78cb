"""Server-side Lua scripts: every mutation is one atomic round trip.

Each script touches only keys passed in ``KEYS`` (all in the run's hash-tag
slot) and publishes the value it wrote on the written key's channel, so
its waiters wake with the value in hand (see :mod:`rdzv_redis.notify`).
``ttl`` arguments are milliseconds; ``0`` means "never expire".

Versions: a value's version counter lives beside it (``...#v:key``) and is
bumped by every write, CAS and add. ``delete`` removes the value but keeps
the counter, so a re-created key never reuses a version an old token holds
(no ABA). A value written by something other than these scripts has no
counter and reads as version ``0``.
"""

from __future__ import annotations

#: Compare-and-swap. KEYS: data, version. ARGV: expected version ("" = the
#: key must be absent), new value, ttl ms, channel.
#: Returns {1, nil, new_version} or {0, current value or nil, its version or nil}.
CAS = """
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  if cur then return {0, cur, redis.call('GET', KEYS[2]) or '0'} end
else
  if not cur then return {0, false, false} end
  local ver = redis.call('GET', KEYS[2]) or '0'
  if ver ~= ARGV[1] then return {0, cur, ver} end
end
local v = redis.call('INCR', KEYS[2])
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
else
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('PERSIST', KEYS[2])
end
redis.call('PUBLISH', ARGV[4], ARGV[2])
return {1, false, v}
"""

#: Unconditional write. KEYS: data, version. ARGV: value, ttl ms, channel.
WRITE = """
redis.call('INCR', KEYS[2])
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('PERSIST', KEYS[2])
end
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
"""

#: Idempotent counter increment. KEYS: data, version, op record. ARGV:
#: amount, ttl ms, channel, op-record ttl ms. A repeated call with the same
#: op record returns the first call's result instead of adding again.
#: The result is read back as a string: Lua numbers are doubles.
ADD = """
local done = redis.call('GET', KEYS[3])
if done then return done end
redis.call('INCRBY', KEYS[1], ARGV[1])
local total = redis.call('GET', KEYS[1])
redis.call('INCR', KEYS[2])
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call('SET', KEYS[3], total, 'PX', ARGV[4])
redis.call('PUBLISH', ARGV[3], total)
return total
"""


def sharded(script: str) -> str:
    """``script`` for a Redis Cluster: it announces on the key's shard
    channel (``SPUBLISH``, Redis 7), which stays on the nodes serving the
    run's slot, instead of a ``PUBLISH`` that every node relays."""
    return script.replace("redis.call('PUBLISH',", "redis.call('SPUBLISH',")
