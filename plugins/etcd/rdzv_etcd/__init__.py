"""rdzv adapter for etcd v3 (gRPC API): torchrun rendezvous on an etcd cluster."""

__version__ = "1.0.0"
