"""The measurement protocol: warm up, repeat until the median is known well enough.

Warm-up runs are discarded (but recorded). Runs then come in batches until the
95% confidence interval of the median (distribution-free, from binomial order
statistics) is within ``target_ci`` of the median and at least ``min_time_s`` of
inference has been timed — or until ``time_cap_s`` or ``max_samples``. Outliers
are rejected by a MAD rule for the statistics, and counted; the raw samples are
kept so later tools (``hwprof compare``) can test on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from devices.base import Session
from hwprof.errors import HwprofError


@dataclass(frozen=True)
class Protocol:
    """Settings of the measurement protocol (recorded with every row).

    Attributes:
        warmup: Runs discarded before sampling.
        min_samples: Samples before the stopping rule is first checked.
        max_samples: Hard cap on samples.
        target_ci: Stop when the 95% CI half-width of the median is within this fraction.
        min_time_s: Keep sampling until this much inference time is recorded.
        time_cap_s: Stop when this much inference time is recorded.
        mad_threshold: Reject samples whose robust z-score exceeds this.
    """

    warmup: int = 5
    min_samples: int = 10
    max_samples: int = 2000
    target_ci: float = 0.02
    min_time_s: float = 0.0
    time_cap_s: float = 5.0
    mad_threshold: float = 3.5

    def __post_init__(self) -> None:
        if self.min_samples < 3 or self.max_samples < self.min_samples:
            raise HwprofError("need 3 <= min_samples <= max_samples")
        if not 0 < self.target_ci < 1:
            raise HwprofError(f"target CI must be between 0 and 1, got {self.target_ci}")

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Measurement:
    """Statistics of one measured model (milliseconds)."""

    samples_ms: np.ndarray
    warmup_ms: np.ndarray
    median_ms: float
    mean_ms: float
    std_ms: float
    p10_ms: float
    p90_ms: float
    iqr_ms: float
    ci_low_ms: float
    ci_high_ms: float
    n: int
    n_rejected: int
    converged: bool
    extra: dict = field(default_factory=dict)

    @property
    def ci_rel(self) -> float:
        """Half-width of the median's 95% CI relative to the median."""
        return (self.ci_high_ms - self.ci_low_ms) / (2 * self.median_ms)


def mad_inliers(x: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean mask of samples whose robust z-score (median/MAD) is within ``threshold``."""
    med = np.median(x)
    mad = np.median(np.abs(x - med)) * 1.4826
    if mad == 0:
        return np.ones(len(x), dtype=bool)
    return np.abs(x - med) / mad <= threshold


def median_ci(sorted_x: np.ndarray, z: float = 1.96) -> tuple[float, float]:
    """Distribution-free CI of the median from order statistics (normal approx. to the binomial)."""
    n = len(sorted_x)
    lo = max(int(math.floor(n / 2 - z * math.sqrt(n) / 2)), 0)
    hi = min(int(math.ceil(n / 2 + z * math.sqrt(n) / 2)), n - 1)
    return float(sorted_x[lo]), float(sorted_x[hi])


def summarize(samples_s: np.ndarray, warmup_s: np.ndarray, protocol: Protocol, converged: bool) -> Measurement:
    """Statistics of raw samples (seconds in, milliseconds out)."""
    ms = samples_s * 1e3
    keep = mad_inliers(ms, protocol.mad_threshold)
    x = np.sort(ms[keep])
    lo, hi = median_ci(x)
    p10, p25, p50, p75, p90 = np.percentile(x, [10, 25, 50, 75, 90])
    return Measurement(samples_ms=ms, warmup_ms=warmup_s * 1e3, median_ms=float(p50), mean_ms=float(x.mean()),
                       std_ms=float(x.std(ddof=1)) if len(x) > 1 else 0.0, p10_ms=float(p10), p90_ms=float(p90),
                       iqr_ms=float(p75 - p25), ci_low_ms=lo, ci_high_ms=hi, n=int(len(x)),
                       n_rejected=int((~keep).sum()), converged=converged)


def measure_session(session: Session, protocol: Protocol = Protocol()) -> Measurement:
    """Run the protocol on a loaded model."""
    warm = session.run(protocol.warmup) if protocol.warmup else np.empty(0)
    samples = session.run(protocol.min_samples)
    while True:
        m = summarize(samples, warm, protocol, converged=False)
        spent = samples.sum()
        precise = m.ci_rel <= protocol.target_ci and spent >= protocol.min_time_s
        if precise or spent >= protocol.time_cap_s or len(samples) >= protocol.max_samples:
            m.converged = m.ci_rel <= protocol.target_ci
            return m
        # grow geometrically, bounded by what the time cap and sample cap still allow
        per_run = max(spent / len(samples), 1e-9)
        want = max(len(samples) // 2, 5)
        if spent < protocol.min_time_s:
            want = max(want, int((protocol.min_time_s - spent) / per_run) + 1)
        want = min(want, protocol.max_samples - len(samples),
                   max(int((protocol.time_cap_s - spent) / per_run) + 1, 1))
        samples = np.concatenate([samples, session.run(want)])
