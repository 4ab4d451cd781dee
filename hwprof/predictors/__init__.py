"""Latency predictors: one interface (:class:`LatencyPredictor`), several models.

Built-in models register in :data:`hwprof.registry.PREDICTORS`; third-party
packages add theirs to the ``hwprof.predictors`` entry-point group.
"""

from __future__ import annotations

from hwprof.predictors.base import CostTable, LatencyPredictor
from hwprof.registry import PREDICTORS


def create_predictor(name: str, **params) -> LatencyPredictor:
    """A new, unfitted predictor by registry name."""
    return PREDICTORS.create(name, **params)


def predictor_names() -> list[str]:
    """Names of the registered predictors."""
    return PREDICTORS.names()


__all__ = ["CostTable", "LatencyPredictor", "create_predictor", "predictor_names"]
