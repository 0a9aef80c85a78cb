"""Plugins for the discovery tests: a good one, broken ones, a clashing one."""

from rdzv_core.hookspecs import hookimpl
from rdzv_core.testing.memory import MemoryStateStore


class SampleStore(MemoryStateStore):
    """A working adapter named 'sample'."""

    name = "sample"


class ClashingStore(MemoryStateStore):
    """Another adapter that also calls itself 'sample'."""

    name = "sample"


class good:
    @staticmethod
    @hookimpl
    def rdzv_adapters():
        return [SampleStore]


class clashing:
    @staticmethod
    @hookimpl
    def rdzv_adapters():
        return [ClashingStore]


class raising_hook:
    @staticmethod
    @hookimpl
    def rdzv_adapters():
        raise RuntimeError("the hook itself blew up")


class not_an_adapter:
    @staticmethod
    @hookimpl
    def rdzv_adapters():
        return [object]
