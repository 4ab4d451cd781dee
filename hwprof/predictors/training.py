"""Fitting predictors on measurement data and checking they match the data they meet."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from hwprof.errors import HwprofError
from hwprof.predictors import create_predictor
from hwprof.predictors.base import LatencyPredictor
from hwprof.predictors.data import MeasurementData
from hwprof.predictors.metrics import prediction_metrics


def fit_on(name: str, data: MeasurementData, seed: int = 0, **params: Any) -> LatencyPredictor:
    """Fit the predictor ``name`` on ``data`` and record where its training data came from.

    Raises:
        HwprofError: if the data lack what the model needs.
    """
    predictor = create_predictor(name, **params)
    if len(data.archs) < 2:
        raise HwprofError(f"{data.source or 'the dataset'} holds {len(data.archs)} end-to-end measurement(s); "
                          "predictors need at least 2", "measure more networks with `hwprof measure --mode both`")
    if predictor.needs_blocks and not data.blocks:
        raise HwprofError(f"the {name} predictor needs single-block measurements, and "
                          f"{data.source or 'the dataset'} has none",
                          "measure with `hwprof measure --mode both`, or use --model additive")
    predictor.fit(data.archs, data.latency_ms, data.blocks if predictor.needs_blocks else None, seed=seed)
    predictor.provenance_ = {**data.provenance(), "seed": seed}
    return predictor


def check_compatible(predictor: LatencyPredictor, data: MeasurementData) -> None:
    """Refuse to evaluate a predictor on data of another device, device profile or space."""
    prov = predictor.provenance_
    for field, label in (("device", "device"), ("profile_hash", "device profile"), ("settings", "device settings"),
                         ("space", "space")):
        theirs, ours = prov.get(field), getattr(data, field)
        if field == "settings" and theirs is not None:  # a simulated device's noise seed is not a setting
            theirs, ours = _without_seed(theirs), _without_seed(ours)
        if theirs is not None and theirs != ours:
            raise HwprofError(f"the predictor was fitted for {label} '{theirs}' but {data.source} is "
                              f"{label} '{ours}'", "evaluate on data measured with the same device and space")


def _without_seed(settings: str) -> str:
    try:
        values = json.loads(settings)
    except (TypeError, ValueError):
        return settings
    return json.dumps({k: v for k, v in values.items() if k != "seed"}, sort_keys=True)


def evaluate(predictor: LatencyPredictor, data: MeasurementData) -> tuple[dict[str, float], np.ndarray]:
    """Metrics of ``predictor`` on ``data``'s end-to-end rows, and the predictions."""
    if not data.archs:
        raise HwprofError(f"{data.source} has no end-to-end measurements to evaluate on",
                          "measure with `hwprof measure --mode e2e` or `--mode both`")
    predicted = predictor.predict(data.archs)
    return prediction_metrics(data.latency_ms, predicted), predicted
