"""rdzv adapter for sqlite (see adapter.py)."""
