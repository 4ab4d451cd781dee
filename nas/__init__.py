"""nas: search spaces, searchers and accuracy estimators for hardware-aware NAS.

Python API: :func:`nas.search` and :func:`nas.history_frame`; :func:`nas.run_search_job` is the
whole of ``nas search`` (search, the winner measured, the output files) as one call.
"""

_API = {"search": "nas.api", "history_frame": "nas.api", "run_search_job": "nas.search_job"}


def __getattr__(name: str):
    """``nas.search``, ``nas.history_frame`` and ``nas.run_search_job``, imported on first use."""
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'nas' has no attribute {name!r}")
