"""Correcting real-device measurements for drift in machine speed.

A shared or thermally throttled machine does not run at one speed: on the
2-core VMs hwprof is tested on, the same network timed minutes apart differs by
5-20% when a neighbour wakes up. Samples of one network cannot see this, but a
fixed *reference network* timed between tasks can. ``hwprof measure`` times the
reference at least every ``every_s`` seconds on real devices and stores, with
each row, the reference latency interpolated to the moment the row was measured
(``ref_ms``). Predictors then learn ``median_ms * nominal / ref_ms``: latency at
one nominal machine speed, the same for the training run and any later test run
(`hwprof evaluate` corrects the test rows with the predictor's nominal).

A single reference timing is short (about 0.1 s) and so itself noisy; when a
dataset is read, each row's reference is replaced by the median of the
references within ``SMOOTHING_WINDOW_S`` around it (:func:`smoothed`), which
follows drift over tens of seconds and ignores one-off spikes.

The reference is an OFA-MobileNetV3 subnet with every kernel 5, expand 4, depth
3 at 192 px: mid-sized, so both compute-bound and memory-bound layers slow it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwprof.arch import Arch
from hwprof.device import Device, Session
from hwprof.protocol import Protocol, measure_session

REFERENCE_CONFIG = {"ks": [5] * 20, "e": [4] * 20, "d": [3] * 5, "r": [192]}
SMOOTHING_WINDOW_S = 20
REFERENCE_PROTOCOL = Protocol(warmup=2, min_samples=5, max_samples=200, target_ci=0.02, min_time_s=0.08,
                              time_cap_s=0.4)


REFERENCE_FILE = Path(__file__).with_name("reference_network.json")  # REFERENCE_CONFIG built by nas.interop_ofa


def reference_arch() -> Arch:
    """The fixed reference network (the same in every hwprof version): the OFA subnet ``REFERENCE_CONFIG``,
    stored as an architecture so the core needs no search space to build it (a test checks they agree)."""
    return Arch.from_json(REFERENCE_FILE.read_text())


@dataclass
class DriftReference:
    """Times the reference network on a device between measurement tasks.

    Args:
        device: The device being measured.
        every_s: Time the reference again once this many seconds have passed.
        protocol: Protocol for each reference timing (short by design).
    """

    device: Device
    every_s: float = 2.0
    protocol: Protocol = REFERENCE_PROTOCOL
    history: list[tuple[float, float]] = field(default_factory=list)  # (monotonic time, median ms)
    _session: Session | None = None

    def __post_init__(self) -> None:
        from hwprof.build_onnx import build_onnx

        self.arch = reference_arch()
        self._session = self.device.load(build_onnx(self.arch))
        measure_session(self._session, self.protocol)  # first runs after loading are slow; not recorded

    @property
    def session(self) -> Session | None:
        """The reference network's loaded session (the chunked protocol times it in every round)."""
        return self._session

    def due(self) -> bool:
        """Whether the last reference timing is older than ``every_s``."""
        return not self.history or time.monotonic() - self.history[-1][0] >= self.every_s

    def measure(self) -> tuple[float, float]:
        """Time the reference now; returns (monotonic time at the middle, median ms)."""
        start = time.monotonic()
        median = measure_session(self._session, self.protocol).median_ms
        point = ((start + time.monotonic()) / 2, median)
        self.history.append(point)
        return point

    def at(self, moments: list[float]) -> np.ndarray:
        """Reference latency interpolated (linearly in time) at ``moments``."""
        t, ms = np.array(self.history).T
        return np.interp(moments, t, ms)

    def spread(self) -> tuple[float, float, float]:
        """(min, median, max) of the reference timings so far, in ms."""
        ms = np.array([m for _, m in self.history])
        return float(ms.min()), float(np.median(ms)), float(ms.max())

    def describe(self) -> dict:
        """What rows record about the reference (stored in the row's protocol)."""
        return {"reference": self.arch.hash, "reference_every_s": self.every_s}

    def close(self) -> None:
        """Release the reference session."""
        if self._session is not None:
            self._session.close()
            self._session = None


def smoothed(timestamps, ref_ms, window_s: float = SMOOTHING_WINDOW_S) -> np.ndarray:
    """Centred running median of per-row reference timings over ``window_s`` seconds (same order as given)."""
    import pandas as pd

    times = pd.to_datetime(pd.Series(timestamps)).reset_index(drop=True)
    order = np.argsort(times.to_numpy(), kind="stable")
    series = pd.Series(np.asarray(ref_ms, dtype=float)[order], index=times.iloc[order].to_numpy())
    running = series.rolling(pd.Timedelta(seconds=window_s), center=True, min_periods=1).median().to_numpy()
    out = np.empty(len(order))
    out[order] = running
    return out


def corrected(latency_ms: np.ndarray, ref_ms: np.ndarray, nominal_ms: float) -> np.ndarray:
    """Latencies at the nominal machine speed: ``latency * nominal / ref``."""
    return np.asarray(latency_ms, dtype=float) * (nominal_ms / np.asarray(ref_ms, dtype=float))
