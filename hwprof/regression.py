"""Telling a real slowdown from noise: the verdict of ``hwprof compare``.

For one (model, device) pair with raw latency samples from a baseline run and
a current run, a change is reported only when it is both

- **statistically significant**: a two-sided Mann-Whitney U test rejects
  "same distribution" at ``alpha`` (default 0.01), and the bootstrap 95%
  confidence interval of the ratio of medians excludes 1; and
- **large enough to matter**: the ratio of medians is beyond ``1 ± threshold``
  (default 5%), and its CI clears ``1 ± threshold / 2``, as asv and
  pytest-benchmark require a minimum effect size.

Runs measured interleaved (``hwprof bench --baseline``) are judged **round by
round** when both record their chunks (``chunks``: round, median, quiet): a
baseline chunk and a current chunk of the same round were timed within a
fraction of a second of each other, so a neighbour that came and went hit
both alike and cancels in their ratio. The test is then the Wilcoxon
signed-rank test on the paired log-ratios, the effect their median, its CI a
bootstrap over the pairs (:func:`compare_paired`); pairs where both chunks
were quiet are used when there are enough of them for the test to reach
``alpha`` (:func:`min_pairs`: 8 at 0.01), else every pair. Interleaved runs without chunk records are judged on their raw samples.
Runs measured apart are
judged on the medians of their rounds when both have at least ``MIN_ROUNDS``
(``hwprof bench`` measures in round-robin rounds): on a shared machine, speed
drifts between minutes by more than samples within a burst vary. Files with
raw samples only (hwprof's own quick benchmarks) are judged on those. Noise alone rarely passes both conditions; a small real change (below
the threshold) is reported as no change by design.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

REGRESSION, IMPROVEMENT, NO_CHANGE = "regression", "improvement", "no change"
MIN_ROUNDS = 5  # with 5 rounds a side, complete separation gives p = 0.008 < 0.01


@dataclass(frozen=True)
class Verdict:
    """Outcome of comparing two sample sets (milliseconds)."""

    verdict: str
    ratio: float  # median(current) / median(baseline)
    ci_low: float
    ci_high: float
    p_value: float
    baseline_median_ms: float
    current_median_ms: float
    n_baseline: int
    n_current: int

    def as_dict(self) -> dict:
        return asdict(self)


def bootstrap_ratio_ci(baseline: np.ndarray, current: np.ndarray, n_boot: int = 2000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of median(current) / median(baseline)."""
    rng = np.random.default_rng(seed)
    b = np.median(rng.choice(baseline, size=(n_boot, len(baseline))), axis=1)
    c = np.median(rng.choice(current, size=(n_boot, len(current))), axis=1)
    ratios = c / b
    tail = (1 - level) / 2 * 100
    return float(np.percentile(ratios, tail)), float(np.percentile(ratios, 100 - tail))


def compare_samples(baseline: np.ndarray, current: np.ndarray, threshold: float = 0.05,
                    alpha: float = 0.01, seed: int = 0) -> Verdict:
    """Regression / improvement / no change of ``current`` against ``baseline``.

    Args:
        baseline: Latency samples of the baseline run: raw samples, or the
            medians of its rounds (then machine drift within a run is part of
            the noise the test allows for).
        current: The same for the current run.
        threshold: Minimum relative change of the median that counts.
        alpha: Significance level of the Mann-Whitney U test.
        seed: Seed of the bootstrap.
    """
    baseline = np.asarray(baseline, dtype=float)
    current = np.asarray(current, dtype=float)
    ratio = float(np.median(current) / np.median(baseline))
    low, high = bootstrap_ratio_ci(baseline, current, seed=seed)
    if np.array_equal(np.sort(baseline), np.sort(current)):
        p = 1.0
    else:
        p = float(stats.mannwhitneyu(current, baseline, alternative="two-sided").pvalue)
    return _verdict(ratio, low, high, p, threshold, alpha, baseline, current)


def _verdict(ratio: float, low: float, high: float, p: float, threshold: float, alpha: float,
             baseline: np.ndarray, current: np.ndarray) -> Verdict:
    """The verdict's rules, shared by the unpaired and the paired test."""
    significant = p < alpha and not (low <= 1.0 <= high)
    margin = threshold / 2  # the CI must also clear half the threshold: a change near the noise floor is not enough
    if significant and ratio > 1 + threshold and low > 1 + margin:
        verdict = REGRESSION
    elif significant and ratio < 1 - threshold and high < 1 - margin:
        verdict = IMPROVEMENT
    else:
        verdict = NO_CHANGE
    return Verdict(verdict, ratio, low, high, p, float(np.median(baseline)), float(np.median(current)),
                   len(baseline), len(current))


def compare_paired(baseline: np.ndarray, current: np.ndarray, threshold: float = 0.05, alpha: float = 0.01,
                   seed: int = 0, n_boot: int = 2000) -> Verdict:
    """Regression / improvement / no change from paired measurements (the same rounds of one interleaved run).

    Args:
        baseline: The baseline's median of each paired round, ms.
        current: The current run's median of the same rounds, in the same order.
        threshold: Minimum relative change that counts.
        alpha: Significance level of the two-sided Wilcoxon signed-rank test on the log-ratios.
        seed: Seed of the bootstrap.
        n_boot: Bootstrap resamples of the pairs.

    The ratio is ``exp(median(log(current / baseline)))``; the same rules as
    :func:`compare_samples` turn it, its CI and ``p`` into a verdict.
    """
    baseline = np.asarray(baseline, dtype=float)
    current = np.asarray(current, dtype=float)
    diffs = np.log(current / baseline)
    ratio = float(np.exp(np.median(diffs)))
    rng = np.random.default_rng(seed)
    boot = np.exp(np.median(rng.choice(diffs, size=(n_boot, len(diffs))), axis=1))
    low, high = float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))
    p = 1.0 if not np.any(diffs) else float(stats.wilcoxon(diffs, alternative="two-sided").pvalue)
    return _verdict(ratio, low, high, p, threshold, alpha, baseline, current)


def min_pairs(alpha: float = 0.01) -> int:
    """The fewest pairs with which the two-sided signed-rank test can reach ``alpha`` (all pairs agreeing)."""
    n = 1
    while 2 * 0.5 ** n >= alpha:
        n += 1
    return n


def paired_rounds(baseline: dict, current: dict,
                  alpha: float = 0.01) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """The medians of the rounds both results timed (``chunks`` records), and whether only quiet pairs were kept.

    Only pairs where both chunks were quiet are kept when there are enough of them for the test to reach
    ``alpha`` (8 at 0.01: with 5 to 7 pairs it never could, and a real change would be missed); else every
    pair. None if either lacks chunk records or they share fewer than ``MIN_ROUNDS`` rounds.
    """
    if "chunks" not in baseline or "chunks" not in current:
        return None

    def by_round(chunks: dict) -> dict[int, tuple[float, bool]]:
        return {int(r): (float(m), q is not False) for r, m, q in zip(chunks["round"], chunks["median_ms"],
                                                                       chunks["quiet"])}

    b, c = by_round(baseline["chunks"]), by_round(current["chunks"])
    common = sorted(b.keys() & c.keys())
    quiet = [r for r in common if b[r][1] and c[r][1]]
    use, only_quiet = (quiet, True) if len(quiet) >= max(MIN_ROUNDS, min_pairs(alpha)) else (common, False)
    if len(use) < MIN_ROUNDS:
        return None
    return np.array([b[r][0] for r in use]), np.array([c[r][0] for r in use]), only_quiet


def compare_results(baseline: dict, current: dict, threshold: float = 0.05, alpha: float = 0.01,
                    names: tuple[str, str] = ("baseline", "current")) -> list[dict]:
    """Verdict per (model, device) of two results documents (see :mod:`hwprof.benchsuite`).

    Raises:
        HwprofError: if a pair is missing from either side, or was measured with
            other device settings or on another device profile.
    """
    from hwprof.errors import HwprofError

    def index(doc: dict) -> dict[tuple[str, str], dict]:
        return {(r["model"], r["device"]): r for r in doc["results"]}

    base, cur = index(baseline), index(current)
    for (model, device) in base.keys() - cur.keys():
        raise HwprofError(f"model '{model}' on device '{device}' is in {names[0]} but missing from {names[1]}",
                          "run both with the same suite")
    for (model, device) in cur.keys() - base.keys():
        raise HwprofError(f"model '{model}' on device '{device}' is in {names[1]} but missing from {names[0]}",
                          "run both with the same suite")
    if not 0 < threshold < 1 or not 0 < alpha < 1:
        raise HwprofError("--threshold and --alpha must be between 0 and 1")
    rows = []
    for key in sorted(base):
        b, c = base[key], cur[key]
        settings = [{k: v for k, v in r.get("settings", {}).items() if k != "seed"} for r in (b, c)]
        checks = (("device settings", *settings),  # a simulated device's noise seed is not a setting
                  ("device/host profile", b.get("profile_hash"), c.get("profile_hash")))
        for what, ours, theirs in checks:
            if ours != theirs:
                raise HwprofError(f"'{key[0]}' on '{key[1]}' was measured with different {what} in {names[0]} "
                                  f"and {names[1]} ({ours} vs {theirs})",
                                  "compare runs made with the same device settings on the same kind of machine")
        rounds = min(len(b.get("round_medians_ms", [])), len(c.get("round_medians_ms", [])))
        together = bool(baseline.get("interleaved_with")) and bool(current.get("interleaved_with"))
        paired = paired_rounds(b, c, alpha) if together else None
        if paired is not None:  # measured interleaved: round by round, what hit both cancels
            v = compare_paired(paired[0], paired[1], threshold, alpha)
            judged = f"{len(paired[0])} paired rounds" + (" (both quiet)" if paired[2] else "")
        else:
            # interleaved without chunk records: drift hit both alike, raw samples give the most power;
            # measured apart: judge the rounds' medians, which carry the drift between minutes
            field = "round_medians_ms" if rounds >= MIN_ROUNDS and not together else "samples_ms"
            v = compare_samples(np.asarray(b[field]), np.asarray(c[field]), threshold, alpha)
            judged = "round medians" if field == "round_medians_ms" else "raw samples"
        rows.append({"model": key[0], "device": key[1], "simulated": bool(b.get("simulated", False)),
                     "judged_on": judged, **v.as_dict()})
    return rows
