"""The raw clients the core's overhead is measured against.

Each does what ``RdzvBackend.set_state`` / ``get_state`` do, in one round
trip, straight through the store's own client library: TCPStore/FileStore
``compare_set``/``get``; redis-py ``EVALSHA`` of a minimal version-checked
CAS script / ``GET``; an etcd ``Txn`` comparing ``mod_revision`` / a
``Range``. Values alternate between two payloads so every CAS changes the
key, as the core's (which adds a fresh nonce) does.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

#: KEYS: value, version. ARGV: expected version, new value.
REDIS_CAS = """
local ver = redis.call('GET', KEYS[2]) or ''
if ver ~= ARGV[1] then return {0, redis.call('GET', KEYS[1]), ver} end
local v = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[2])
return {1, false, v}
"""


class RawClient:
    """CAS and read of one key, the store's native way."""

    def __init__(self, payload: bytes) -> None:
        self._values = (payload, payload[:-1] + bytes([payload[-1] ^ 0xFF]))
        self._turn = 0

    def next_value(self) -> bytes:
        """The payload to write next (alternating)."""
        self._turn ^= 1
        return self._values[self._turn]

    def cas(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def get(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection."""


class C10dRaw(RawClient):
    """A TCPStore (``tcp host:port``) or FileStore (path) client."""

    def __init__(self, payload: bytes, store: Any) -> None:
        super().__init__(payload)
        self._store = store
        self._key = f"raw/{uuid.uuid4().hex}"
        self._current = b""  # compare_set with expected "" creates

    @classmethod
    def tcp(cls, payload: bytes, endpoint: str) -> C10dRaw:
        import torch.distributed as dist

        host, port = endpoint.rsplit(":", 1)
        return cls(payload, dist.TCPStore(host, int(port), is_master=False, multi_tenant=True, timeout=timedelta(seconds=60)))

    @classmethod
    def file(cls, payload: bytes, path: str) -> C10dRaw:
        import torch.distributed as dist

        store = dist.FileStore(path, -1)
        store.set_timeout(timedelta(seconds=60))
        return cls(payload, store)

    def cas(self) -> None:
        value = self.next_value()
        now = self._store.compare_set(self._key, self._current, value)
        if now != value:
            raise RuntimeError("raw c10d CAS lost with no competitor")
        self._current = now

    def get(self) -> bytes:
        return self._store.get(self._key)


class RedisRaw(RawClient):
    """redis-py: ``EVALSHA`` of :data:`REDIS_CAS`, ``GET``."""

    def __init__(self, payload: bytes, endpoint: str) -> None:
        import redis

        super().__init__(payload)
        host, port = endpoint.rsplit(":", 1)
        self._client = redis.Redis(host, int(port), socket_timeout=60, protocol=2)
        self._script = self._client.register_script(REDIS_CAS)
        tag = uuid.uuid4().hex
        self._keys = [f"raw:{{{tag}}}:state", f"raw:{{{tag}}}:state#v"]
        self._client.delete(*self._keys)
        self._version = ""

    def cas(self) -> None:
        applied, _, version = self._script(keys=self._keys, args=[self._version, self.next_value()])
        if not applied:
            raise RuntimeError("raw redis CAS lost with no competitor")
        self._version = str(int(version))

    def get(self) -> bytes:
        return self._client.get(self._keys[0])

    def close(self) -> None:
        self._client.connection_pool.disconnect()


class EtcdRaw(RawClient):
    """The etcd v3 gRPC stubs: ``Txn`` on ``mod_revision``, ``Range``."""

    def __init__(self, payload: bytes, endpoint: str) -> None:
        import rdzv_etcd.client  # noqa: F401 - first, so gRPC is configured as the adapter runs it (fork support)

        import grpc
        from pyetcd import etcdrpc

        super().__init__(payload)
        self._rpc = etcdrpc
        self._channel = grpc.insecure_channel(endpoint.split("://", 1)[-1])
        self._kv = etcdrpc.KVStub(self._channel)
        self._key = f"/raw-bench/{uuid.uuid4().hex}".encode()
        self._kv.DeleteRange(etcdrpc.DeleteRangeRequest(key=self._key), timeout=10)
        self._revision = 0  # create_revision == 0: the key must not exist

    def cas(self) -> None:
        rpc = self._rpc
        if self._revision:
            compare = rpc.Compare(key=self._key, result=rpc.Compare.EQUAL, target=rpc.Compare.MOD, mod_revision=self._revision)
        else:
            compare = rpc.Compare(key=self._key, result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE, create_revision=0)
        request = rpc.TxnRequest(compare=[compare],
                                 success=[rpc.RequestOp(request_put=rpc.PutRequest(key=self._key, value=self.next_value()))],
                                 failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=self._key))])
        response = self._kv.Txn(request, timeout=10)
        if not response.succeeded:
            raise RuntimeError("raw etcd CAS lost with no competitor")
        self._revision = response.header.revision

    def get(self) -> bytes:
        kvs = self._kv.Range(self._rpc.RangeRequest(key=self._key), timeout=10).kvs
        return kvs[0].value if kvs else b""

    def close(self) -> None:
        self._channel.close()
