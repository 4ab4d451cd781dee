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

from hwprof.device import REAL_MIN_TIME_S, Session
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
        rounds: Chunks per model in the chunked protocol (:mod:`hwprof.interleave`); 0 times
            each model in one contiguous stretch (simulated devices, quick one-off timings).
        chunk_s: Seconds of inference in one chunk (chunked protocol).
        quiet_tol: A chunk within this fraction of quiet is quiet (chunked protocol).
        pool: Models loaded and interleaved at once (chunked protocol).
    """

    warmup: int = 5
    min_samples: int = 10
    max_samples: int = 2000
    target_ci: float = 0.02
    min_time_s: float = 0.0
    time_cap_s: float = 5.0
    mad_threshold: float = 3.5
    rounds: int = 0
    chunk_s: float = 0.03
    quiet_tol: float = 0.06
    pool: int = 12

    def __post_init__(self) -> None:
        if self.min_samples < 3 or self.max_samples < self.min_samples:
            raise HwprofError("need 3 <= min_samples <= max_samples")
        if not 0 < self.target_ci < 1:
            raise HwprofError(f"target CI must be between 0 and 1, got {self.target_ci}")
        if not self.min_time_s >= 0:
            raise HwprofError(f"--min-time must be 0 or more seconds, got {self.min_time_s}", "e.g. --min-time 0.25")
        if not self.time_cap_s > 0:
            raise HwprofError(f"--time-cap must be a positive number of seconds, got {self.time_cap_s}",
                              "e.g. --time-cap 5")
        if self.rounds < 0:
            raise HwprofError(f"--rounds must be at least 1, got {self.rounds}", "e.g. --rounds 8")
        if not self.chunk_s > 0:
            raise HwprofError(f"--chunk-ms must be a positive number of milliseconds, got {self.chunk_s * 1e3:g}",
                              "e.g. --chunk-ms 30")
        if not 0 < self.quiet_tol < 1:
            raise HwprofError(f"--quiet-tol must be between 0 and 1, got {self.quiet_tol}", "e.g. --quiet-tol 0.06")
        if self.pool < 1:
            raise HwprofError(f"--pool must be at least 1, got {self.pool}", "e.g. --pool 12")

    @property
    def chunked(self) -> bool:
        """Whether models are timed in interleaved chunks (see :mod:`hwprof.interleave`)."""
        return self.rounds > 0

    @property
    def min_quiet(self) -> int:
        """Quiet chunks a model needs before it may finish: a third of ``rounds``, at least 1 (its latency comes from
        them alone only when they are also a third of the chunks it took; see :mod:`hwprof.interleave`)."""
        return max(-(-self.rounds // 3), 1)

    @property
    def max_rounds(self) -> int:
        """Most chunks a model gets while it waits for quiet windows: three times ``rounds``."""
        return max(3 * self.rounds, 1)

    def as_dict(self) -> dict:
        values = dict(self.__dict__)
        if not self.chunked:  # rows of the contiguous protocol record what they always recorded
            for name in ("rounds", "chunk_s", "quiet_tol", "pool"):
                values.pop(name)
        return values


DEFAULT_ROUNDS = 8  # chunks per model in the chunked protocol, by default


def measurement_protocol(simulated: bool, name: str | None = None, rounds: int | None = None,
                         chunk_ms: float | None = None, min_time_s: float | None = None, time_cap_s: float = 5.0,
                         target_ci: float = 0.02, quiet_tol: float = 0.06, pool: int = 12) -> "Protocol":
    """The protocol ``hwprof measure`` uses, from its options (None: the device's default).

    Real devices default to the chunked protocol (``DEFAULT_ROUNDS`` chunks of
    ``min_time_s / rounds`` each) and ``REAL_MIN_TIME_S``; simulated ones to the
    contiguous protocol with no minimum time (their noise is drawn, not caused).

    Raises:
        HwprofError: for an unknown protocol name or an impossible setting.
    """
    if name not in (None, "chunked", "contiguous"):
        raise HwprofError(f"unknown --protocol '{name}'", "use chunked or contiguous")
    if rounds is not None and rounds < 1:
        raise HwprofError(f"--rounds must be at least 1, got {rounds}", "e.g. --rounds 8")
    if name == "contiguous" and rounds is not None:
        raise HwprofError("--rounds is a setting of the chunked protocol", "leave out --rounds or --protocol contiguous")
    if min_time_s is None:
        min_time_s = 0.0 if simulated else REAL_MIN_TIME_S
    chunked = name == "chunked" or (name is None and (rounds is not None or not simulated))
    rounds = (rounds or DEFAULT_ROUNDS) if chunked else 0
    if chunk_ms is None:
        chunk_ms = 1e3 * min_time_s / rounds if rounds and min_time_s > 0 else 30.0
    return Protocol(target_ci=target_ci, min_time_s=min_time_s, time_cap_s=time_cap_s, rounds=rounds,
                    chunk_s=chunk_ms / 1e3, quiet_tol=quiet_tol, pool=pool)


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
