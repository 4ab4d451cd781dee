"""``hwprof doctor``: is this machine quiet enough to measure on, and what would make it quieter?

A short probe (20-30 s) before a long measurement run: the reference network
is timed in chunks, back to back, as the chunked protocol times models, and
the trace is read as :mod:`hwprof.quiet` reads a run's. Beside it the probe
reads what the operating system says: other processes' CPU use, time stolen
by the hypervisor, the CPU frequency governor, this process's core affinity
and the thread settings. It ends with a verdict and advice.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from hwprof.device import Device
from hwprof.errors import HwprofError
from hwprof.quiet import Classifier, LoadProbe, Trace, load_threshold

CHUNK_S = 0.03
WINDOW_S = 0.25  # what the contiguous protocol spends on one model (its --min-time)


@dataclass
class DoctorReport:
    """What the probe found (see :func:`probe`)."""

    device: str
    seconds: float
    reference_ms: float  # the reference's quiet latency
    median_ms: float
    spread: float  # (p90 - p10) / p10 of chunk medians
    quiet_share: float
    slowdown_p90: float
    quiet_stretch_s: float  # median length of a quiet stretch
    disturbed_stretch_s: float  # median length of a disturbed stretch
    foreign_load: float | None
    steal_share: float | None
    governor: str | None
    affinity: list[int]
    threads: int | None
    thread_env: dict[str, str]
    expected_retest_contiguous: float  # share of 0.25 s windows pairs within +-10% of each other
    verdict: str = ""
    advice: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}

    def rows(self) -> list[tuple[str, str]]:
        """(item, value) lines of the report, as ``hwprof doctor`` prints them."""
        load = "unknown (no /proc/stat)" if self.foreign_load is None else f"{self.foreign_load:.2f} cores"
        steal = "unknown" if self.steal_share is None else f"{self.steal_share:.1%}"
        return [("reference network, quiet latency", f"{self.reference_ms:.3f} ms (median {self.median_ms:.3f} ms)"),
                ("spread of 30 ms chunks (p10-p90)", f"{self.spread:.0%}"),
                ("time quiet (within 6%)", f"{self.quiet_share:.0%}"),
                ("slowdown when disturbed (p90)", f"{self.slowdown_p90:.2f}x"),
                ("quiet / disturbed stretches (median)",
                 f"{self.quiet_stretch_s:.1f} s / {self.disturbed_stretch_s:.1f} s"),
                ("other processes' CPU use", load), ("time stolen by the hypervisor", steal),
                ("CPU frequency governor", self.governor or "not exposed (usual in a VM)"),
                ("this process may run on cores", ",".join(map(str, self.affinity)) or "unknown"),
                ("intra-op threads", str(self.threads) + (f"; {self.thread_env}" if self.thread_env else "")),
                ("expected test-retest within ±10%, one stretch per model",
                 f"{self.expected_retest_contiguous:.0%}")]


def _steal_and_total() -> tuple[float, float] | None:
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except OSError:
        return None
    return float((fields + [0] * 8)[7]), float(sum(fields[:8]))


def governor() -> str | None:
    """The CPU frequency governor of the first core (None where it is not exposed, as in most VMs)."""
    path = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _stretches(flags: np.ndarray, start: np.ndarray, end: np.ndarray, value: bool) -> float:
    """Median duration of consecutive runs of ``flags == value`` (seconds; 0 if none)."""
    lengths, begin = [], None
    for i, f in enumerate(flags):
        if f == value and begin is None:
            begin = start[i]
        if f != value and begin is not None:
            lengths.append(end[i - 1] - begin)
            begin = None
    if begin is not None:
        lengths.append(end[-1] - begin)
    return float(np.median(lengths)) if lengths else 0.0


def expected_retest(start: np.ndarray, medians: np.ndarray, window_s: float = WINDOW_S, pairs: int = 2000,
                    seed: int = 0) -> float:
    """Share of random pairs of ``window_s`` windows whose medians agree within +-10%.

    What test-retest of the contiguous protocol (each model timed once in one
    stretch) would be on this trace, since two timings of one model fall in
    two random windows of the run.
    """
    bins = ((start - start[0]) // window_s).astype(int)
    windows = np.array([np.median(medians[bins == b]) for b in np.unique(bins)])
    if len(windows) < 2:
        return 1.0
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(windows), (2, pairs))
    keep = a != b
    return float(np.mean(np.abs(windows[a[keep]] / windows[b[keep]] - 1) <= 0.10))


def probe(device: Device, seconds: float = 20.0, on_progress: Callable[[float], None] | None = None,
          clock: Callable[[], float] = time.monotonic) -> DoctorReport:
    """Time the reference network in chunks for ``seconds`` and read the machine; see the module docstring.

    Raises:
        HwprofError: for a probe shorter than 5 seconds or a device that is not available.
    """
    if not seconds >= 5:
        raise HwprofError(f"--seconds must be at least 5, got {seconds}", "e.g. --seconds 20")
    device.require_available()
    from hwprof.affinity import pinned_timing, usable_cores

    allowed = usable_cores() if hasattr(os, "sched_getaffinity") else []
    with pinned_timing(device):  # the reference is timed where hwprof measure would time
        return _probe(device, seconds, on_progress, clock, allowed)


def _probe(device: Device, seconds: float, on_progress, clock, allowed: list[int]) -> DoctorReport:
    from hwprof.build_onnx import build_onnx
    from hwprof.drift import reference_arch
    from hwprof.interleave import runs_per_chunk
    from hwprof.protocol import Protocol

    session = device.load(build_onnx(reference_arch()))
    try:
        warm = session.run(5)
        runs = runs_per_chunk(warm, Protocol(rounds=8, chunk_s=CHUNK_S))
        trace, loads = Trace(), LoadProbe()
        stolen = _steal_and_total()
        began = clock()
        window_start, first = loads.read(), 0
        while clock() - began < seconds:
            start = clock()
            times = session.run(runs + 1)[1:]
            trace.add(-1, start, clock(), float(np.median(times)) * 1e3, float("nan"))
            if len(trace) - first >= 8:  # one load reading per 8 chunks (a few clock ticks)
                load = loads.since(window_start)
                for i in range(first, len(trace)):
                    trace.load[i] = load
                window_start, first = loads.read(), len(trace)
            if on_progress:
                on_progress(clock() - began)
        stolen_after = _steal_and_total()
    finally:
        session.close()
    classes = Classifier().classify(trace)
    start, end = np.array(trace.start), np.array(trace.end)
    medians = np.array(trace.median_ms)
    loads_known = np.array([x for x in trace.load if not np.isnan(x)])
    steal = None
    if stolen and stolen_after and stolen_after[1] > stolen[1]:
        steal = (stolen_after[0] - stolen[0]) / (stolen_after[1] - stolen[1])
    p10, p50, p90 = np.percentile(medians, [10, 50, 90])
    duration = end - start
    report = DoctorReport(
        device=device.name, seconds=float(end[-1] - start[0]),
        reference_ms=float(Classifier().reference_level(trace, float(start[len(start) // 2])) or p10),
        median_ms=float(p50), spread=float((p90 - p10) / p10),
        quiet_share=float((duration * classes.quiet).sum() / duration.sum()),
        slowdown_p90=float(np.percentile(classes.disturbance, 90)),
        quiet_stretch_s=_stretches(classes.quiet, start, end, True),
        disturbed_stretch_s=_stretches(classes.quiet, start, end, False),
        foreign_load=float(loads_known.mean()) if len(loads_known) else None, steal_share=steal,
        governor=governor(), affinity=allowed,
        threads=getattr(device, "threads", None),
        thread_env={k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
                    if k in os.environ},
        expected_retest_contiguous=expected_retest(start, medians))
    report.verdict, report.advice = _verdict_and_advice(report)
    return report


def _verdict_and_advice(r: DoctorReport) -> tuple[str, list[str]]:
    advice = []
    cores = os.cpu_count() or 1
    if r.quiet_share >= 0.9:
        verdict = (f"quiet: the reference ran within 6% of its quiet speed {r.quiet_share:.0%} of the time "
                   f"(spread p10-p90 {r.spread:.0%})")
    elif r.quiet_share >= 0.1:
        verdict = (f"intermittently disturbed: {1 - r.quiet_share:.0%} of the time the reference ran up to "
                   f"{r.slowdown_p90:.2f}x slower (90th percentile), in stretches of about "
                   f"{r.disturbed_stretch_s:.1f} s between quiet ones of {r.quiet_stretch_s:.1f} s")
    elif r.foreign_load is not None and r.foreign_load > load_threshold():
        verdict = (f"never quiet: other processes kept {r.foreign_load:.2f} cores busy throughout; measurements "
                   "here describe a loaded machine")
    else:
        verdict = ("never quiet: the reference never settled at one speed; measurements here describe a loaded "
                   "machine")
    if len(r.affinity) > 1 and cores > 1:
        advice.append(f"hwprof measure times on core {r.affinity[0]} (pinned; its preparation workers run on the "
                      "others): if other work is tied to that core, give it another one, e.g. "
                      f"`taskset -c {r.affinity[-1]} hwprof measure ...`")
    if r.foreign_load is not None and r.foreign_load > load_threshold():
        advice.append(f"other processes used {r.foreign_load:.2f} cores during the probe: stop what you can "
                      "(`top` shows them); the chunked protocol leaves out the chunks they disturb")
    if r.steal_share is not None and r.steal_share > 0.02:
        advice.append(f"the hypervisor took {r.steal_share:.0%} of the CPU time (steal): another VM shares this "
                      "host; a dedicated instance is quieter")
    if r.governor not in (None, "performance"):
        advice.append(f"the CPU frequency governor is '{r.governor}': `sudo cpupower frequency-set -g performance` "
                      "keeps the clock steady")
    if r.threads and r.threads > 1 and r.threads >= cores:
        advice.append(f"--threads {r.threads} uses every core, so any other work disturbs it: use fewer")
    if r.quiet_share < 0.9:
        advice.append(f"timed in one stretch per model, two runs would agree within ±10% for about "
                      f"{r.expected_retest_contiguous:.0%} of models here; `hwprof measure`'s chunked protocol "
                      "(the default on real devices) times each model in chunks spread over the run and keeps the "
                      "quiet ones" + (" - but there were none in this probe" if r.quiet_share < 0.1 else ""))
    if not advice:
        advice.append("nothing to change: measure away")
    return verdict, advice
