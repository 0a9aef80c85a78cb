"""rdzv: pluggable rendezvous backends for PyTorch elastic training.

The package root imports nothing heavy (no torch, no client library): torch
imports rdzv's ``torchrun.handlers`` entry point on every launch. Import the
parts you need from their modules:

* :mod:`rdzv_core.adapter` -- the contract adapters implement
* :mod:`rdzv_core.handler` -- building torch's handler from parameters
* :mod:`rdzv_core.plugins` -- adapter discovery
* :mod:`rdzv_core.testing` -- the conformance suite for adapter authors
"""

__version__ = "1.1.0"
