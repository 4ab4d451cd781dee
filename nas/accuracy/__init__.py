"""Accuracy estimators: zero-cost proxies, an accuracy predictor, short training."""

from __future__ import annotations

import inspect

from hwprof.registry import ESTIMATORS
from nas.accuracy.base import AccuracyEstimator


def create_estimator(name: str, **options) -> AccuracyEstimator:
    """An estimator by registry name; options it does not take are ignored."""
    factory = ESTIMATORS.factory(name)
    params = inspect.signature(factory).parameters
    return factory(**{k: v for k, v in options.items() if k in params and v is not None})


__all__ = ["AccuracyEstimator", "create_estimator"]
