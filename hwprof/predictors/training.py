"""Fitting predictors on measurement data and checking they match the data they meet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from hwprof.errors import HwprofError
from hwprof.predictors.base import LatencyPredictor
from hwprof.predictors.data import MeasurementData
from hwprof.predictors.fitting import check_compatible, comparable, evaluate, fit_on  # re-exported too
from hwprof.predictors.metrics import prediction_metrics
from hwprof.predictors.selection import select_predictor

BEST = "best"  # fit_and_test's name for "choose by cross-validation" (see hwprof.predictors.selection)


def fit_and_test(name: str, parts: list[MeasurementData], test_fraction: float = 0.2, refit: bool = True,
                 seed: int = 0, params: dict[str, Any] | None = None,
                 status=lambda _message: None) -> tuple[LatencyPredictor, dict[str, Any] | None]:
    """What ``hwprof fit-predictor`` does: hold out networks, fit, score, refit on everything.

    Args:
        name: Predictor name, or ``"best"``: the candidate with the lowest 5-fold
            cross-validated MAPE on the training networks (recorded in the
            provenance as ``selection``; see :mod:`hwprof.predictors.selection`).
        parts: The data, one part per graph style (one part for most datasets).
        test_fraction: Share of each part's networks held out (0: no test).
        refit: Refit on all networks after testing.
        seed: Seed of the split and the fit.
        params: Predictor parameters.
        status: Called with a line of progress.

    Returns:
        The predictor (its provenance records the test figures) and the test metrics:
        the pooled figures, ``by_style`` when several styles were fitted, and
        ``fallback_blocks`` for a lookup table whose fallback filled in blocks.
    """
    params = params or {}
    label, total = parts[0].label, sum(len(p.archs) for p in parts)
    single = parts[0] if len(parts) == 1 else parts
    metrics = None
    selection = None
    if name == BEST:
        if len(parts) > 1:
            raise HwprofError(f"--model {BEST} chooses among predictors of one graph style, and the data hold "
                              f"{', '.join(p.graph_style for p in parts)}", "fit kernel-rf, or give one --graph-style")
        if params:
            raise HwprofError(f"--model {BEST} takes no --param", "name the predictor to pass it parameters")
    splits = [p.split(test_fraction, seed) for p in parts] if test_fraction > 0 else []
    if name == BEST:  # chosen on the training networks only, so the held-out figures stay unseen
        selection = select_predictor(splits[0][0] if splits else parts[0], seed=seed, status=status)
        name = selection.name
    if splits:
        trains = [train for train, _ in splits]
        status(f"fitting {name} on {sum(len(t.archs) for t in trains)} of {total} networks ({label})")
        predictor = fit_on(name, trains[0] if len(trains) == 1 else trains, seed=seed, **params)
        scored = [(test, *evaluate(predictor, test)) for _, test in splits]
        if len(scored) == 1:
            metrics = scored[0][1]
        else:
            measured = np.concatenate([comparable(predictor, t)[0].latency_ms for t, _, _ in scored])
            metrics = {**prediction_metrics(measured, np.concatenate([p for _, _, p in scored])),
                       "drift_corrected": all(m["drift_corrected"] for _, m, _ in scored),
                       "by_style": {t.graph_style: m for t, m, _ in scored}}
        missing = [predictor.missing_blocks(t.archs) for t, _, _ in scored] if hasattr(predictor, "missing_blocks") else []
        if missing:
            metrics["fallback_blocks"] = [sum(m[0] for m in missing), sum(m[1] for m in missing)]
        if refit:
            status(f"refitting {name} on all {total} networks ({label})")
            predictor = fit_on(name, single, seed=seed, **params)
    else:
        predictor = fit_on(name, single, seed=seed, **params)
    if selection is not None:
        predictor.provenance_["selection"] = selection.as_dict()
    if metrics is not None:
        predictor.provenance_["test_metrics"] = metrics
        predictor.provenance_["test_fraction"] = test_fraction
    predictor.provenance_["refit_on_all"] = bool(refit or test_fraction <= 0)
    return predictor, metrics


@dataclass
class FitJob:
    """What :func:`fit_predictor_job` did.

    Attributes:
        predictor: The fitted (and saved) predictor.
        result: JSON-ready summary (``hwprof fit-predictor --json`` prints it).
        measured: The first part of the training data (its device, label, space).
    """

    predictor: LatencyPredictor
    result: dict[str, Any]
    measured: MeasurementData

    def report(self, test_fraction: float, refit: bool, out: str | Path) -> list[str | tuple[str, dict]]:
        """What ``hwprof fit-predictor`` prints, in order: lines, and ``(title, {name: metrics})`` tables."""
        from hwprof.predictors.transfer import MAX_HELD_OUT_FOLDS

        result, predictor, measured = self.result, self.predictor, self.measured
        model, selection, metrics = result["predictor"], result["selection"], result["test_metrics"]
        sim = " - SIMULATED device" if measured.simulated else ""
        parts: list[str | tuple[str, dict]] = []
        if selection:
            parts.append((f"Choosing the predictor: {selection['folds']}-fold cross-validation on the training "
                          f"networks{sim}", selection["scores"]))
            parts.append(f"chose {model} (lowest out-of-fold MAPE)"
                         + "".join(f"; {name} not tried: {why}" for name, why in selection["skipped"].items()))
        parts.append(f"fitted {model} on {result['networks']} networks and {result['blocks']} blocks measured on "
                     f"{measured.label} (space {measured.space or '-'}, graph style "
                     f"{', '.join(result['graph_styles'])})")
        loo = result.get("transfer", {}).get("leave_one_out_mape")
        if loo:
            levels = f", corrections by {predictor.levels_}" if predictor.levels_ else ""
            held = "leave-one-out" if result["networks"] <= MAX_HELD_OUT_FOLDS else f"{MAX_HELD_OUT_FOLDS}-fold"
            parts.append(f"transfer method: {predictor.method_}{levels} ({held} MAPE over the measured networks: "
                         + ", ".join(f"{m} {v:.2%}" for m, v in loo.items()) + ")")
        fallback = predictor.get_params().get("fallback")
        if result["kernel_source"] and (model == "kernel-rf" or fallback == "kernel-rf"):
            parts.append(f"kernels from: {result['kernel_source']}")
        if metrics is not None:
            rows = {model: metrics} if "by_style" not in metrics else {
                **{f"{model} [{s}]": m for s, m in metrics["by_style"].items()}, f"{model} [all]": metrics}
            parts.append((f"Held-out test: {metrics['n']} networks ({test_fraction:.0%}){sim}", rows))
            if metrics.get("fallback_blocks"):
                missing, total = metrics["fallback_blocks"]
                parts.append(f"{missing} of the {total} distinct blocks of the held-out networks were not in the "
                             f"lookup table and were predicted by the {fallback} fallback")
            if refit:
                parts.append("the saved predictor was then refitted on all networks")
        parts.append(f"saved {out}")
        return parts


def fit_predictor_job(data: Sequence[str | Path], out: str | Path, model: str = "auto", test_fraction: float = 0.2,
                      refit: bool = True, device: str | None = None, space: str | None = None,
                      graph_style: str | None = None, params: dict[str, Any] | None = None,
                      transfer_from: str | None = None, seed: int = 0, force: bool = False,
                      status: Callable[[str], Any] = lambda _message: None) -> FitJob:
    """What ``hwprof fit-predictor`` does, as one call: check the output, load the data, fit, test, save.

    Args:
        data: Dataset directories (one per graph style, or one holding several).
        out: Predictor file to write; refused before any fitting if it is an input, a directory, not
            writable, or an existing file that is not a predictor (unless ``force``).
        model: A registered predictor, ``auto`` (lut with blocks, kernel-rf for several graph styles,
            else additive) or ``best`` (chosen by cross-validation).
        test_fraction: Share of networks held out for the test metrics.
        refit: Refit on every network for the saved predictor.
        device, space, graph_style: Select within datasets that hold several.
        params: Predictor parameters.
        transfer_from: Comma-separated source predictor files: fits the transfer predictor.
        seed: Seed of the split and the fit.
        force: Overwrite a foreign ``out``.
        status: Called with a line of progress.

    Raises:
        HwprofError: for bad input, before any fitting where it can be told.
    """
    from hwprof.predictors import store
    from hwprof.predictors.data import load_measurements, load_styles
    from hwprof.registry import PREDICTORS

    params = dict(params or {})
    data = list(data)
    store.check_output(out, force, [*data, *(transfer_from or "").split(",")])  # before any fitting
    if transfer_from:
        from hwprof.predictors.transfer import load_sources

        if model not in ("auto", "transfer"):
            raise HwprofError(f"--transfer-from fits the transfer predictor, not {model}", "drop --model")
        model, params["sources"] = "transfer", [p.strip() for p in transfer_from.split(",") if p.strip()]
        load_sources(params["sources"])  # a missing or tampered source fails before any work
    if graph_style is not None or (len(data) == 1 and model not in ("auto", "kernel-rf")):
        parts = [load_measurements(path, device=device, space=space, style=graph_style) for path in data]
    else:
        parts = load_styles(data, device=device, space=space)
    measured = parts[0]
    if model == "auto":
        model = "kernel-rf" if len(parts) > 1 else "lut" if measured.blocks else "additive"
    if model != BEST:
        PREDICTORS.factory(model)  # unknown names fail before any work
    status(f"fitting {model} on {measured.label}")
    predictor, metrics = fit_and_test(model, parts, test_fraction, refit, seed, params, status)
    store.save(predictor, out)
    result = {"predictor": predictor.name, "params": predictor.get_params(), "out": str(out),
              "device": measured.device, "simulated": measured.simulated, "space": measured.space,
              "graph_styles": [p.graph_style for p in parts],
              "kernel_source": predictor.provenance_.get("kernel_source"),
              "networks": sum(len(p.archs) for p in parts), "blocks": sum(len(p.blocks) for p in parts),
              "test_metrics": metrics, "selection": predictor.provenance_.get("selection")}
    if predictor.name == "transfer":
        result["transfer"] = {"method": predictor.method_, "levels": predictor.levels_,
                              "leave_one_out_mape": predictor.loo_mape_}
    return FitJob(predictor, result, measured)


def evaluate_dataset(predictor_path, data, graph_style: str | None = None, plot=None, force: bool = False):
    """Score a saved predictor on a measured dataset (``hwprof evaluate``).

    Args:
        predictor_path: Predictor file from ``hwprof fit-predictor``.
        data: Dataset directory with end-to-end measurements.
        graph_style: Graph style to score when the dataset holds several.
        plot: Where to write the predicted-vs-measured scatter (PNG), or None.
        force: Let ``plot`` overwrite an existing file hwprof did not write (never an input).

    Returns:
        ``(result, predictor, measured, raw_measured)``: the JSON-ready result (metrics, with
        ``fallback_blocks`` for lookup tables), the predictor, the drift-comparable data and the data as read.
    """
    from hwprof.io import atomic_write_via
    from hwprof.predictors import store
    from hwprof.predictors.data import load_measurements
    from hwprof.outputs import guard_output, is_hwprof_png
    from hwprof.predictors.metrics import plot_predictions

    if plot is not None:
        guard_output(plot, "--plot", "PNG plot", is_hwprof_png, force, [predictor_path])
    predictor = store.load(predictor_path)
    prov = predictor.provenance_
    raw = load_measurements(data, device=prov.get("device"), space=prov.get("space") or None, style=graph_style)
    check_compatible(predictor, raw)
    metrics, predicted = evaluate(predictor, raw)
    if hasattr(predictor, "missing_blocks"):
        metrics["fallback_blocks"] = list(predictor.missing_blocks(raw.archs))
    measured, _ = comparable(predictor, raw)
    if plot is not None:
        title = f"{predictor.name} on {measured.label}, {measured.space}"
        atomic_write_via(plot, lambda png: plot_predictions(measured.latency_ms, predicted, png, title), ".png")
    result = {"predictor": predictor.name, "device": measured.device, "simulated": measured.simulated,
              "space": measured.space, "data": str(data), "metrics": metrics,
              "plot": str(plot) if plot else None}
    return result, predictor, measured, raw


def evaluation_notes(result: dict, predictor: LatencyPredictor, measured: MeasurementData,
                     raw: MeasurementData) -> list[str]:
    """What ``hwprof evaluate`` says under its table: fallback blocks, drift correction, the plot."""
    metrics, prov, notes = result["metrics"], predictor.provenance_, []
    if metrics.get("fallback_blocks"):
        missing, total = metrics["fallback_blocks"]
        fallback = predictor.get_params().get("fallback")
        notes.append(f"{missing} of the {total} distinct blocks were not in the lookup table"
                     + (f" and were predicted by the {fallback} fallback" if missing and fallback else ""))
    if metrics["drift_corrected"]:
        ref = raw.ref_ms
        notes.append(f"measured latencies corrected for machine-speed drift: reference network "
                     f"{ref.min():.2f}-{ref.max():.2f} ms in this run, {prov['reference_ms']:.2f} ms when the "
                     f"predictor's data were measured. Uncorrected: MAPE {metrics['raw_mape']:.2%}, "
                     f"within ±10% {metrics['raw_within_10pct']:.1%}")
    elif prov.get("reference_ms") and not measured.simulated:
        notes.append("note: this dataset has no reference timings, so drift in machine speed between the two runs "
                     "is not corrected (remeasure with a current hwprof)")
    if result["plot"]:
        notes.append(f"plot written to {result['plot']}")
    return notes
