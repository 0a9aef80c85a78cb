"""Between :mod:`rdzv_etcd.ops` values and etcd's protobuf messages and gRPC errors."""

from __future__ import annotations

from typing import Any

import rdzv_etcd.channels  # noqa: F401 - first: sets gRPC's fork support before gRPC loads
import grpc
from pyetcd import etcdrpc

from rdzv_etcd.errors import EtcdError, classify
from rdzv_etcd.ops import Delete, Get, KeyValue, Op, OpResult, Put, RevisionIs


def translate(exc: grpc.RpcError, label: str) -> EtcdError:
    """Turn a gRPC failure at member ``label`` into an :mod:`rdzv_etcd.errors` type."""
    return classify(exc.code().name, exc.details() or "", label)  # type: ignore[attr-defined]


def fill_op(message: Any, op: Op) -> None:
    """Write ``op`` into the empty ``RequestOp`` ``message`` in place.

    Messages are filled in place rather than built with nested constructors:
    passing a sub-message to a constructor copies it, which costs ~10 µs per
    copy with the upb protobuf runtime (~50 µs per CAS transaction).
    """
    if isinstance(op, Put):
        put = message.request_put
        put.SetInParent()
        put.key, put.value, put.lease = op.key, op.value, op.lease
    elif isinstance(op, Get):
        get = message.request_range
        get.SetInParent()
        get.key = op.key
    else:
        delete = message.request_delete_range
        delete.SetInParent()
        delete.key = op.key


def op_result(op: Op, response: Any) -> OpResult:
    """What ``op`` returned, from its ``ResponseOp`` in a transaction's reply."""
    if isinstance(op, Get):
        kvs = response.response_range.kvs
        return KeyValue.of(kvs[0]) if kvs else None
    if isinstance(op, Delete):
        return int(response.response_delete_range.deleted)
    return None


def fill_compare(message: Any, cmp: RevisionIs) -> None:
    """Write ``cmp`` into the empty ``Compare`` ``message`` in place (result EQUAL is the default)."""
    message.key = cmp.key
    if cmp.created:
        message.target = etcdrpc.Compare.CREATE
        message.create_revision = cmp.revision
    else:
        message.target = etcdrpc.Compare.MOD
        message.mod_revision = cmp.revision
