"""Fitting one predictor on measurement data, scoring it, and checking it matches the data it meets.

The building blocks that :mod:`hwprof.predictors.selection` (choosing a
predictor by cross-validation) and :mod:`hwprof.predictors.training`
(``hwprof fit-predictor``) both use.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from hwprof.errors import HwprofError
from hwprof.predictors import create_predictor
from hwprof.predictors.base import LatencyPredictor
from hwprof.predictors.data import MeasurementData
from hwprof.predictors.metrics import prediction_metrics
from hwprof.runtime_graph import runtime_for


def fit_on(name: str, data: MeasurementData | list[MeasurementData], seed: int = 0,
           **params: Any) -> LatencyPredictor:
    """Fit the predictor ``name`` on ``data`` and record where its training data came from.

    ``data`` may be a list with one part per graph style of the same device
    (see :func:`~hwprof.predictors.data.load_styles`); only style-aware
    predictors (kernel-rf) take several. The predictor reads kernels from the
    graph the data's device executes (:func:`~hwprof.runtime_graph.runtime_for`).

    Raises:
        HwprofError: if the data lack what the model needs.
    """
    parts = data if isinstance(data, list) else [data]
    predictor = create_predictor(name, **params)
    if len(parts) > 1 and not predictor.style_aware:
        raise HwprofError(f"the {name} predictor learns one graph style, and the data hold "
                          f"{', '.join(p.graph_style for p in parts)}",
                          "fit kernel-rf, or give the data of one --graph-style")
    nominal = None
    if all(p.has_reference for p in parts):  # learn latency at one nominal machine speed (see hwprof.drift)
        nominal = parts[0].reference_nominal_ms()
        parts = [p.drift_corrected(nominal) for p in parts]
    for part in parts:
        _check_trainable(name, predictor, part)
    data = parts[0]
    predictor.graph_style = data.graph_style
    predictor.graph_runtime = runtime_for(data.device, data.settings, data.simulated)
    # per-node times of blocks measured with --per-op (kernel-rf shares block latency by them)
    predictor.block_profiles = {p.graph_style: p.block_node_ms for p in parts if p.block_node_ms}
    if len(parts) > 1:
        predictor.fit_styles([(p.graph_style, p.archs, p.latency_ms, p.blocks) for p in parts], seed=seed)
    else:
        predictor.fit(data.archs, data.latency_ms, data.blocks if predictor.needs_blocks else None, seed=seed)
    predictor.provenance_ = {**data.provenance(), "seed": seed}
    if len(parts) > 1:
        predictor.provenance_.update(
            graph_styles=[p.graph_style for p in parts], settings=without_keys(data.settings, ("graph_style",)),
            n_networks=sum(len(p.archs) for p in parts),
            n_blocks=sum(len(p.blocks) for p in parts),
            train_hash="+".join(p.fingerprint() for p in parts))
    if hasattr(predictor, "runtime_"):
        predictor.provenance_["kernel_source"] = predictor.runtime_.describe()
        predictor.provenance_["profiled_kernels"] = getattr(predictor, "profiled_kernels_", 0)
    elif getattr(predictor, "fallback_", None) is not None and hasattr(predictor.fallback_, "runtime_"):
        predictor.provenance_["kernel_source"] = predictor.fallback_.runtime_.describe()
    if nominal is not None:
        predictor.provenance_["reference_ms"] = nominal
    return predictor


def _check_trainable(name: str, predictor: LatencyPredictor, data: MeasurementData) -> None:
    if len(data.archs) < 2:
        raise HwprofError(f"{data.source or 'the dataset'} holds {len(data.archs)} end-to-end measurement(s); "
                          "predictors need at least 2", "measure more networks with `hwprof measure --mode both`")
    if predictor.needs_blocks and not data.blocks:
        raise HwprofError(f"the {name} predictor needs single-block measurements, and "
                          f"{data.source or 'the dataset'} has none",
                          "measure with `hwprof measure --mode both`, or fit `hwprof fit-predictor --model additive`")


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
        if field == "settings" and theirs is not None:  # a simulated device's noise seed is not a setting,
            theirs, ours = (without_keys(v, ("seed", "graph_style")) for v in (theirs, ours))  # styles: below
        if theirs is not None and theirs != ours:
            raise HwprofError(f"the predictor was fitted for {label} '{theirs}' but {data.source} is "
                              f"{label} '{ours}'", "evaluate on data measured with the same device and space")
    if data.graph_style not in predictor.fitted_styles():
        raise HwprofError(f"the predictor was fitted on graph style(s) {', '.join(predictor.fitted_styles())} but "
                          f"{data.source} holds '{data.graph_style}'", "evaluate on data of a style it was fitted on")


def without_keys(settings: str, keys: tuple[str, ...]) -> str:
    """Settings JSON without ``keys`` (those that do not make two devices' settings differ)."""
    try:
        values = json.loads(settings)
    except (TypeError, ValueError):
        return settings
    return json.dumps({k: v for k, v in values.items() if k not in keys}, sort_keys=True)


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
    predictor.use_style(data.graph_style)
    predicted = predictor.predict(data.archs)
    target, drift_corrected = comparable(predictor, data)
    metrics = prediction_metrics(target.latency_ms, predicted)
    metrics["drift_corrected"] = drift_corrected
    if drift_corrected:
        raw = prediction_metrics(data.latency_ms, predicted)
        metrics["raw_mape"], metrics["raw_within_10pct"] = raw["mape"], raw["within_10pct"]
    return metrics, predicted
