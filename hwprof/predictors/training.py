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
    nominal = None
    if data.has_reference:  # learn latency at one nominal machine speed (see hwprof.drift)
        nominal = data.reference_nominal_ms()
        data = data.drift_corrected(nominal)
    if len(data.archs) < 2:
        raise HwprofError(f"{data.source or 'the dataset'} holds {len(data.archs)} end-to-end measurement(s); "
                          "predictors need at least 2", "measure more networks with `hwprof measure --mode both`")
    if predictor.needs_blocks and not data.blocks:
        raise HwprofError(f"the {name} predictor needs single-block measurements, and "
                          f"{data.source or 'the dataset'} has none",
                          "measure with `hwprof measure --mode both`, or use --model additive")
    predictor.fit(data.archs, data.latency_ms, data.blocks if predictor.needs_blocks else None, seed=seed)
    predictor.provenance_ = {**data.provenance(), "seed": seed}
    if nominal is not None:
        predictor.provenance_["reference_ms"] = nominal
    return predictor


def comparable(predictor: LatencyPredictor, data: MeasurementData) -> tuple[MeasurementData, bool]:
    """``data`` at the predictor's nominal machine speed when both track drift; else as measured.

    Returns:
        The data to compare predictions with, and whether it was drift-corrected.
    """
    nominal = predictor.provenance_.get("reference_ms")
    if nominal and data.has_reference:
        return data.drift_corrected(float(nominal)), True
    return data, False


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
    """Metrics of ``predictor`` on ``data``'s end-to-end rows, and the predictions.

    When the predictor and the data both carry reference timings, the measured
    latencies are first brought to the predictor's nominal machine speed
    (``drift_corrected`` is then true) and the uncorrected figures are kept as
    ``raw_mape`` and ``raw_within_10pct``.
    """
    if not data.archs:
        raise HwprofError(f"{data.source} has no end-to-end measurements to evaluate on",
                          "measure with `hwprof measure --mode e2e` or `--mode both`")
    predicted = predictor.predict(data.archs)
    target, drift_corrected = comparable(predictor, data)
    metrics = prediction_metrics(target.latency_ms, predicted)
    metrics["drift_corrected"] = drift_corrected
    if drift_corrected:
        raw = prediction_metrics(data.latency_ms, predicted)
        metrics["raw_mape"], metrics["raw_within_10pct"] = raw["mape"], raw["within_10pct"]
    return metrics, predicted
