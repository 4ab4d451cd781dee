"""Choosing a predictor for a device by cross-validated error on its own networks.

No one predictor is best on every device: on onnxruntime's x86 CPU latency is
nearly additive over blocks, on LiteRT int8 a lookup table of measured blocks
is far ahead, and on OpenVINO (which fuses across blocks) the lookup table is
the weakest and boosted trees the best (``benchmarks/bench_runtimes``). So the
default is chosen per device: every candidate is fitted ``folds`` times, each
time on all but one fold of the networks, and scored on the fold it did not
see; the lowest pooled out-of-fold MAPE wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from hwprof.errors import HwprofError
from hwprof.predictors.data import MeasurementData
from hwprof.predictors.metrics import prediction_metrics

CANDIDATES = ("additive", "flops-linear", "gbm", "kernel-rf", "lut")
MIN_NETWORKS_PER_FOLD = 2


@dataclass
class Selection:
    """The outcome of :func:`select_predictor`.

    Attributes:
        name: The chosen predictor.
        scores: Per candidate, its out-of-fold metrics (``prediction_metrics``).
        folds: Number of folds.
        skipped: Candidates not tried, with why (e.g. no block rows).
    """

    name: str
    scores: dict[str, dict[str, float]]
    folds: int
    skipped: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"chosen": self.name, "criterion": "out-of-fold MAPE", "folds": self.folds,
                "scores": self.scores, "skipped": self.skipped}


def fold_indices(n: int, folds: int, seed: int) -> list[np.ndarray]:
    """``folds`` disjoint, sorted index sets covering ``range(n)``: scikit-learn's ``KFold`` over a seeded
    random order (numpy's Generator, as every seed in hwprof, so a seed keeps the folds it always had)."""
    from sklearn.model_selection import KFold

    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(order[held]) for _, held in KFold(folds).split(order)]


def select_predictor(data: MeasurementData, candidates: tuple[str, ...] = CANDIDATES, folds: int = 5,
                     seed: int = 0, status: Callable[[str], None] = lambda _m: None) -> Selection:
    """Pick the candidate with the lowest cross-validated MAPE on ``data``'s networks.

    Args:
        data: One device's measurements (end-to-end rows, and block rows for the
            candidates that need them).
        candidates: Predictor names to try; those that need block rows are
            skipped when ``data`` has none.
        folds: Number of folds (networks are split, their blocks follow them).
        seed: Seed of the fold assignment and of every fit.
        status: Called with a line of progress.

    Returns:
        The :class:`Selection`; ties go to the earlier candidate.

    Raises:
        HwprofError: if there are too few networks for ``folds`` folds, or no candidate can be fitted.
    """
    from hwprof.predictors.fitting import evaluate, fit_on
    from hwprof.registry import PREDICTORS

    n = len(data.archs)
    if folds < 2 or n < folds * MIN_NETWORKS_PER_FOLD:
        raise HwprofError(f"choosing a predictor by {folds}-fold cross-validation needs at least "
                          f"{max(folds, 2) * MIN_NETWORKS_PER_FOLD} networks, and {data.source or 'the data'} "
                          f"holds {n}", "measure more networks, or name a predictor with --model")
    parts = fold_indices(n, folds, seed)
    common = data.reference_nominal_ms() if data.has_reference else None
    measured = data.drift_corrected(common).latency_ms if common is not None else data.latency_ms
    scores: dict[str, dict[str, float]] = {}
    skipped: dict[str, str] = {}
    for name in candidates:
        if PREDICTORS.factory(name).needs_blocks and not data.blocks:
            skipped[name] = "needs single-block rows (measure with --mode both)"
            continue
        predicted = np.empty(n)
        for k, held in enumerate(parts):
            status(f"choosing a predictor: {name}, fold {k + 1} of {folds}")
            predictor = fit_on(name, data.subset(np.setdiff1d(np.arange(n), held)), seed=seed)
            _, predicted[held] = evaluate(predictor, data.subset(held))
            fold_nominal = predictor.provenance_.get("reference_ms")
            if common is not None and fold_nominal:  # each fold has its own nominal speed: use one for all
                predicted[held] *= common / float(fold_nominal)
        scores[name] = prediction_metrics(measured, predicted)
    if not scores:
        raise HwprofError(f"no predictor among {', '.join(candidates)} can be fitted on {data.source or 'the data'}",
                          "measure with --mode both so block-level predictors can be tried")
    best = min(scores, key=lambda name: scores[name]["mape"])
    return Selection(best, scores, folds, skipped)

