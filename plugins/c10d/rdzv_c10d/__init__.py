"""rdzv adapter for torch's c10d stores: TCPStore and FileStore."""

__version__ = "0.1.0"
