"""rdzv adapter for etcd v3 (gRPC API): torchrun rendezvous on an etcd cluster."""

__version__ = "0.1.0"
