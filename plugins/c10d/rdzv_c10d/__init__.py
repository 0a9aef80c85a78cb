"""rdzv adapter for torch's c10d stores: TCPStore and FileStore."""

__version__ = "1.0.0"
