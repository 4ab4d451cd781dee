"""nas: search spaces, searchers and accuracy estimators for hardware-aware NAS.

Python API: :func:`nas.search` and :func:`nas.history_frame`.
"""

_API = {"search": "nas.api", "history_frame": "nas.api"}


def __getattr__(name: str):
    """``nas.search`` and ``nas.history_frame``, imported on first use."""
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'nas' has no attribute {name!r}")
