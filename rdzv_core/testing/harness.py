"""How the conformance suite reaches an adapter under test."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from rdzv_core.adapter import StateStore
from rdzv_core.plugins import AdapterInfo, BackendRegistry


@dataclass
class AdapterHarness:
    """An adapter class plus the endpoint and conf that reach a live store.

    ``conf`` holds the ``--rdzv-conf`` keys every test uses (credentials,
    TLS files, ``is_host=false`` for c10d...). Tests add their own on top.
    """

    adapter_class: type[StateStore]
    endpoint: str
    conf: dict[str, Any] = field(default_factory=dict)
    backend_name: str | None = None

    @property
    def backend(self) -> str:
        """The ``--rdzv-backend`` value the suite uses (``rdzv-<name>``)."""
        return self.backend_name or f"rdzv-{self.adapter_class.name}"

    @staticmethod
    def new_run_id() -> str:
        """A run id no other test uses."""
        return f"test-{uuid.uuid4().hex[:12]}"

    def params(self, run_id: str | None = None, min_nodes: int = 1, max_nodes: int = 1, **conf: Any):  # type: ignore[no-untyped-def]
        """``RendezvousParameters`` for this store; ``conf`` overrides."""
        from torch.distributed.elastic.rendezvous import RendezvousParameters

        merged = {**self.conf, **conf}
        return RendezvousParameters(
            self.backend, self.endpoint, run_id or self.new_run_id(), min_nodes, max_nodes,
            local_addr="127.0.0.1", **merged,
        )

    def adapter(self, run_id: str, **conf: Any) -> StateStore:
        """A connected adapter instance for ``run_id``, given the core's
        settings parsed from the same parameters (as the core does)."""
        from rdzv_core.settings import CoreSettings

        params = self.params(run_id, **conf)
        return self.adapter_class.from_params(params, CoreSettings.parse(params, self.adapter_class.conf_keys))

    def registry(self) -> BackendRegistry:
        """A registry holding just this adapter (independent of entry points)."""
        cls = self.adapter_class
        return BackendRegistry(adapters={cls.name: AdapterInfo(cls.name, cls, "under-test", "0")})
