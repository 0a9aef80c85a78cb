"""Plugins for the discovery tests: a good one, broken ones, a clashing one."""

from dataclasses import replace

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


class FutureStore(MemoryStateStore):
    """An adapter written for a contract this core does not speak (2.0)."""

    name = "future"
    contract_version = (2, 0)


class NewerMinorStore(MemoryStateStore):
    """An adapter that needs a newer minor version of the contract than 1.0."""

    name = "newer"
    contract_version = (1, 7)


class UndeclaredStore(MemoryStateStore):
    """An adapter that declares no contract version."""

    name = "undeclared"
    contract_version = None


class OverclaimingStore(MemoryStateStore):
    """Declares wait_read and read_many, implements neither (only the memory adapter's wait)."""

    name = "overclaiming"
    capabilities = replace(MemoryStateStore.capabilities, wait_read=True, read_many=True)


class UnderclaimingStore(MemoryStateStore):
    """Implements read_many without declaring it."""

    name = "underclaiming"

    def read_many(self, keys):
        return [None if (found := self.read(k)) is None else found.value for k in keys]


class contract_two:
    @staticmethod
    @hookimpl
    def rdzv_adapters():
        return [FutureStore]


class mismatched:
    @staticmethod
    @hookimpl
    def rdzv_adapters():
        return [NewerMinorStore, UndeclaredStore, OverclaimingStore, UnderclaimingStore]
