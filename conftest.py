"""How the suite is spread over pytest-xdist workers (scripts/test.sh).

scripts/test.sh runs the suite on several workers with ``--dist loadgroup``.
Two things are arranged here:

* Tests are handed out one at a time, except the modules in
  :data:`ONE_WORKER_MODULES`, whose tests share an expensive module-scoped
  fixture and go to one worker together (split up, each worker would build
  the fixture again: the benchmark smoke run alone takes 40 s and more).
  xdist's own ``xdist_group`` marks cannot do this here: with pytest 9.2
  ``--dist loadgroup`` silently ignores them (pytest-xdist issue #1386), so
  the scheduler below groups these modules by path.
* The longest tests start first: real launches (``launch`` marker, 10-50 s
  each, mostly waiting on agents) are moved to the front of the collection,
  so they overlap with the many short tests instead of forming a tail at the
  end. The sort is stable and the same in every worker (xdist requires
  that); in a single process it changes only the order.
"""

from __future__ import annotations

import pytest

#: Modules whose tests must run on one worker (they share a module fixture).
ONE_WORKER_MODULES = frozenset(
    {
        "tests/test_benchmarks_smoke.py",  # one ``run_all.py --quick`` for all its checks
        "plugins/redis/tests/test_sentinel.py",  # one master/replica/Sentinel group
        "tests/test_wheels.py",  # one virtualenv built from the wheels
    }
)


def _rank(item: pytest.Item) -> int:
    if item.get_closest_marker("launch") is not None:
        return 0 if item.get_closest_marker("slow") is not None else 1
    if item.nodeid.split("::", 1)[0] in ONE_WORKER_MODULES:
        return 2
    if item.get_closest_marker("slow") is not None:
        return 3
    return 4


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_rank)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):  # type: ignore[no-untyped-def]
    """``--dist loadgroup``, with :data:`ONE_WORKER_MODULES` kept together."""
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class ModuleGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER_MODULES else super()._split_scope(nodeid)

    return ModuleGroupScheduling(config, log)
