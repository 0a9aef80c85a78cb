"""An explicit-state explorer of the scalable protocol for small worlds.

It runs the protocol's real decision functions
(:mod:`rdzv_core.protocol.decisions`) over every interleaving of a few
nodes with joins, leaves, deaths, lost replies, late joiners, re-joins,
store stalls and a store that loses its keys, up to a bound
(:class:`Config`), and checks safety at every step and liveness where the
run ends up. :data:`OLD` keeps the rules from before issue 12's fixes, so
tests show the explorer catches each of those defects.

    from rdzv_core.testing.explorer import NEW, Config, explore
    print(explore(Config("small", nodes=3, kill=1), NEW).summary())

See docs/design/protocol.md, "Model checking".
"""

from rdzv_core.testing.explorer.model import Config, Model
from rdzv_core.testing.explorer.rules import NEW, OLD, Rules
from rdzv_core.testing.explorer.search import Result, explore

__all__ = ["Config", "Model", "NEW", "OLD", "Rules", "Result", "explore"]
