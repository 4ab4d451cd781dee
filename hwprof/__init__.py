"""hwprof: hardware-aware neural architecture search.

Profile devices, fit latency predictors, and search networks that are both
accurate and fast on a target chip. Python API: :func:`hwprof.measure`,
:func:`hwprof.load_predictor`, :func:`hwprof.prepare_measure_job` and
:func:`hwprof.run_measure_job` (what ``hwprof measure`` runs), and
:func:`nas.search`.
"""

__version__ = "0.1.0"

_API = {"measure": "hwprof.api", "load_predictor": "hwprof.api", "to_onnx": "hwprof.api",
        "prepare_measure_job": "hwprof.measure_job", "run_measure_job": "hwprof.measure_job"}


def __getattr__(name: str):
    """``hwprof.measure`` and ``hwprof.load_predictor``, imported on first use (keeps the CLI fast)."""
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'hwprof' has no attribute {name!r}")
