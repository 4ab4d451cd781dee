"""Telling quiet stretches of a measurement run from disturbed ones.

The quantity hwprof estimates is a model's *quiet* latency: what it takes when
nothing else on the machine disturbs it. On laptops, CI runners and cloud VMs
something usually does, on and off: a neighbour streaming memory on the other
core, another VM on the same host, a build in the background. A disturbance
only ever slows a model down, and it slows every model timed during it.

The chunked protocol (:mod:`hwprof.interleave`) times each model in short
chunks, interleaved at random with the other models of a pool and with a fixed
reference network, and spread over the run. This module reads that trace:

- each *member* (a model, or the reference) has a quiet *level*: the median of
  its chunk medians within ``tol`` of its fastest chunk (a disturbance cannot
  make a chunk faster, so the fastest chunks are the quiet ones);
- each chunk's *slowdown* is its median over its member's level;
- the machine's *disturbance* at a chunk is the median slowdown of the chunks
  timed around it (any other member), so a chunk that looks quiet to its own model
  because every chunk of that model was disturbed is still seen as disturbed;
- other processes' CPU use (:class:`LoadProbe`) marks a chunk disturbed too,
  which is what tells a neighbour that is always on from a quiet machine;
- a chunk is *quiet* when all three are within bounds; a model's latency is
  the median of the samples of its quiet chunks.

A run ends with a :class:`Verdict`: how much of it was quiet, how much slower
the machine ran when it was not, and whether every row could be timed in a
quiet window. A run that was never quiet says so: its figures describe a
loaded machine.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

NEIGHBOURS = 3  # chunks each side whose slowdowns decide the machine's disturbance at a chunk


def member_level(medians: np.ndarray, tol: float) -> float:
    """A member's quiet level: the median of its chunk medians within ``tol`` of the fastest one."""
    medians = np.asarray(medians, dtype=float)
    fastest = medians.min()
    return float(np.median(medians[medians <= fastest * (1 + tol)]))


def load_threshold(cores: int | None = None) -> float:
    """Other processes' CPU use (in cores) above which the machine is not quiet.

    0.3 of a core on a 2-core machine; on a larger one 15% of the other cores,
    since a few background processes there share little with the timed core.
    """
    cores = cores or os.cpu_count() or 2
    return max(0.3, 0.15 * (cores - 1))


@dataclass
class Trace:
    """The chunks of a run in the order they were timed.

    Attributes:
        member: Which member each chunk belongs to (an id; the reference is -1).
        start: Chunk start, seconds on the run's clock.
        end: Chunk end.
        median_ms: Median of the chunk's timed samples (its warm-up run excluded).
        load: Other processes' CPU use during the chunk's round, in cores (NaN if unknown).
    """

    member: list[int] = field(default_factory=list)
    start: list[float] = field(default_factory=list)
    end: list[float] = field(default_factory=list)
    median_ms: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    by_member: dict[int, list[float]] = field(default_factory=dict)  # chunk medians of each member

    def add(self, member: int, start: float, end: float, median_ms: float, load: float = float("nan")) -> int:
        """Append a chunk; returns its index."""
        self.member.append(member)
        self.start.append(start)
        self.end.append(end)
        self.median_ms.append(median_ms)
        self.load.append(load)
        self.by_member.setdefault(member, []).append(median_ms)
        if member < 0:
            self._ref_start.append(start)
        return len(self.member) - 1

    def __post_init__(self) -> None:
        self._ref_start: list[float] = []
        self._ref_arrays: tuple[int, np.ndarray, np.ndarray] = (0, np.empty(0), np.empty(0))

    def chunks_of(self, member: int) -> int:
        """How many chunks ``member`` has."""
        return len(self.by_member.get(member, ()))

    def reference_medians(self, at: float, window_s: float) -> np.ndarray:
        """The reference's chunk medians within ``window_s`` seconds of ``at``."""
        if self._ref_arrays[0] != len(self._ref_start):
            self._ref_arrays = (len(self._ref_start), np.asarray(self._ref_start),
                                np.asarray(self.by_member.get(-1, []), dtype=float))
        _, starts, medians = self._ref_arrays
        lo, hi = np.searchsorted(starts, [at - window_s, at + window_s])
        return medians[lo:hi]

    def __len__(self) -> int:
        return len(self.member)


@dataclass
class Classifier:
    """Classifies a :class:`Trace`'s chunks as quiet or disturbed.

    Args:
        tol: A chunk within this fraction of its member's level (and a machine
            within it of quiet around it) is quiet.
        load_limit: Other processes' CPU use, in cores, above which a chunk is disturbed.
        min_chunks: A member's chunks count towards the machine's disturbance
            once it has this many (before that its level is a guess).
        reference_window_s: The reference's level is taken over its chunks within
            this many seconds (so a slow drift of the machine's speed is followed).
    """

    tol: float = 0.06
    load_limit: float = field(default_factory=load_threshold)
    min_chunks: int = 4
    reference_window_s: float = 30.0

    def levels(self, trace: Trace, members: set[int] | None = None) -> dict[int, float]:
        """Quiet level of each model member (of ``members``, or all); the reference's is local (see below)."""
        return {m: member_level(np.array(v), self.tol) for m, v in trace.by_member.items()
                if m >= 0 and (members is None or m in members)}

    def reference_level(self, trace: Trace, at: float) -> float | None:
        """The reference's quiet level around ``at`` (its chunks within ``reference_window_s``), or None."""
        ms = trace.reference_medians(at, self.reference_window_s)
        return member_level(ms, self.tol) if len(ms) else None

    def classify(self, trace: Trace, indices: list[int] | None = None) -> "Classes":
        """Slowdown, disturbance and quiet flag of the chunks at ``indices`` (default: all)."""
        n = len(trace)
        indices = list(range(n)) if indices is None else list(indices)
        if not indices:
            return Classes(np.array([], int), np.array([]), np.array([]), np.array([]), np.array([], bool))
        around = sorted({j for i in indices for j in range(max(0, i - NEIGHBOURS), min(n, i + NEIGHBOURS + 1))})
        levels = self.levels(trace, {trace.member[j] for j in around})
        slow = {}
        for j in around:
            m = trace.member[j]
            level = self.reference_level(trace, trace.start[j]) if m < 0 else levels[m]
            slow[j] = trace.median_ms[j] / level if level else 1.0
        slowdown, disturbance, load, quiet = [], [], [], []
        for i in indices:
            # the chunks around it, its own left out: a model whose every chunk was disturbed looks quiet to itself
            window = [j for j in range(max(0, i - NEIGHBOURS), min(n, i + NEIGHBOURS + 1))
                      if j != i and trace.chunks_of(trace.member[j]) >= self.min_chunks] or [i]
            d = float(np.median([slow[j] for j in window]))
            loads = [trace.load[j] for j in window if not np.isnan(trace.load[j])]
            chunk_load = float(np.mean(loads)) if loads else float("nan")
            slowdown.append(slow[i])
            disturbance.append(d)
            load.append(chunk_load)
            quiet.append(slow[i] <= 1 + self.tol and d <= 1 + self.tol
                         and not (chunk_load > self.load_limit))
        return Classes(np.array(indices), np.array(slowdown), np.array(disturbance), np.array(load),
                       np.array(quiet, dtype=bool))


@dataclass
class Classes:
    """Per-chunk classification (parallel arrays over ``index``)."""

    index: np.ndarray
    slowdown: np.ndarray  # chunk median / its member's quiet level
    disturbance: np.ndarray  # median slowdown of the chunks around it
    load: np.ndarray  # other processes' CPU use around it, cores (NaN if unknown)
    quiet: np.ndarray


@dataclass(frozen=True)
class RowNoise:
    """How disturbed one row's measurement was (stored with the row).

    Attributes:
        quiet: Whether enough of its chunks were timed quiet for a quiet latency.
        chunks: Chunks timed.
        chunks_quiet: Chunks kept (quiet).
        slowdown: How much slower the machine ran during its chunks than when quiet (median; 1.0 = quiet).
        foreign_load: Other processes' CPU use during its chunks, in cores (None if unknown).
        estimate: How its latency was estimated: ``quiet`` (its quiet chunks), ``reference-corrected``
            (no quiet window: every chunk scaled by the reference network's slowdown in the same round)
            or ``fastest-chunks`` (no quiet window and no reference).
    """

    quiet: bool
    chunks: int
    chunks_quiet: int
    slowdown: float
    foreign_load: float | None
    estimate: str = "quiet"

    def columns(self) -> dict:
        """The dataset columns of a row."""
        return {"quiet": self.quiet, "chunks": self.chunks, "chunks_quiet": self.chunks_quiet,
                "slowdown": round(self.slowdown, 4),
                "foreign_load": None if self.foreign_load is None else round(self.foreign_load, 3),
                "estimate": self.estimate}


@dataclass(frozen=True)
class Verdict:
    """How noisy a measurement run was, in one line.

    Attributes:
        state: ``quiet`` | ``intermittent`` | ``never-quiet`` | ``simulated`` | ``unknown``.
        quiet_share: Share of the timed chunks' time the machine was quiet.
        slowdown_p90: 90th percentile of the machine's slowdown over the run (1.0 = quiet).
        foreign_load: Mean CPU use of other processes, cores (None if unknown).
        rows: Rows measured.
        rows_quiet: Rows timed in quiet windows.
        rows_corrected: Rows with no quiet window, scaled by the reference network timed beside them.
    """

    state: str
    quiet_share: float
    slowdown_p90: float
    foreign_load: float | None
    rows: int
    rows_quiet: int
    rows_corrected: int = 0

    @property
    def rows_noisy(self) -> int:
        return self.rows - self.rows_quiet

    def line(self) -> str:
        """The one-line verdict ``hwprof measure`` ends with."""
        load = "" if self.foreign_load is None else f"; other processes used {self.foreign_load:.2f} cores"
        if self.state == "simulated":
            return SIMULATED_LINE
        if self.state == "unknown":
            return "machine noise not tracked (contiguous protocol)"
        if self.state == "quiet":
            text = (f"machine quiet: {self.quiet_share:.0%} of the timed chunks undisturbed{load}; "
                    f"{self.rows_quiet} of {self.rows} rows timed quiet")
        elif self.state == "intermittent":
            text = (f"machine disturbed {1 - self.quiet_share:.0%} of the time (up to {self.slowdown_p90:.2f}x slower, "
                    f"90th percentile){load}; disturbed chunks were left out: "
                    f"{self.rows_quiet} of {self.rows} rows timed in quiet windows")
        else:
            text = (f"machine never quiet ({self.quiet_share:.0%} of the timed chunks undisturbed{load}): "
                    f"these latencies describe this loaded machine, not a quiet one")
        return text

    def warning(self) -> str | None:
        """A warning when rows could not be timed quiet (None when all were)."""
        if self.state in ("simulated", "unknown") or not self.rows or self.rows_noisy == 0:
            return None
        if self.rows_corrected == self.rows_noisy:
            how = "each chunk was scaled by the reference network timed beside it (column estimate)"
        elif self.rows_corrected:
            how = (f"{self.rows_corrected} were scaled by the reference network timed beside them, the others "
                   "include the disturbance (column estimate)")
        else:
            how = "their latencies include the disturbance"
        return (f"{self.rows_noisy} of {self.rows} rows ({self.rows_noisy / self.rows:.0%}) could not be timed in a "
                f"quiet window (column quiet=false): {how}")

    def as_dict(self) -> dict:
        return {"state": self.state, "quiet_share": round(self.quiet_share, 4),
                "slowdown_p90": round(self.slowdown_p90, 4),
                "foreign_load": None if self.foreign_load is None else round(self.foreign_load, 3),
                "rows": self.rows, "rows_quiet": self.rows_quiet, "rows_corrected": self.rows_corrected,
                "line": self.line()}


def merged(verdicts: list[Verdict]) -> Verdict | None:
    """One verdict for several parts of a run (an executor's batches), weighted by their rows."""
    known = [v for v in verdicts if v.state not in ("unknown", "simulated")]
    if not known:
        return verdicts[0] if verdicts else None
    weights = np.array([max(v.rows, 1) for v in known], dtype=float)
    share = float(np.average([v.quiet_share for v in known], weights=weights))
    loads = [(v.foreign_load, w) for v, w in zip(known, weights) if v.foreign_load is not None]
    load = float(np.average([x for x, _ in loads], weights=[w for _, w in loads])) if loads else None
    rows, rows_quiet = sum(v.rows for v in known), sum(v.rows_quiet for v in known)
    return Verdict(_state(share, rows, rows_quiet), share, max(v.slowdown_p90 for v in known), load, rows,
                   rows_quiet, sum(v.rows_corrected for v in known))


def _state(share: float, rows: int, rows_quiet: int) -> str:
    if share >= QUIET_SHARE:
        return "quiet"
    if share < NEVER_QUIET_SHARE or (rows and rows_quiet == 0):
        return "never-quiet"
    return "intermittent"


SIMULATED_LINE = "simulated device, no machine noise (its noise is part of the simulation)"
QUIET_SHARE = 0.9  # at least this share of quiet time: the machine was quiet
NEVER_QUIET_SHARE = 0.1  # below it: never quiet


def verdict(trace: Trace, classes: Classes, rows: int, rows_quiet: int, rows_corrected: int = 0) -> Verdict:
    """The run's :class:`Verdict` from its classified chunks (time-weighted) and its rows' flags."""
    if not len(classes.index):
        return Verdict("unknown", 0.0, 1.0, None, rows, rows_quiet, rows_corrected)
    duration = np.array([trace.end[i] - trace.start[i] for i in classes.index])
    share = float((duration * classes.quiet).sum() / max(duration.sum(), 1e-12))
    loads = classes.load[~np.isnan(classes.load)]
    load = float(loads.mean()) if len(loads) else None
    slowdown_p90 = float(np.percentile(classes.disturbance, 90))
    return Verdict(_state(share, rows, rows_quiet), share, slowdown_p90, load, rows, rows_quiet, rows_corrected)


class LoadProbe:
    """Other processes' CPU use (and time stolen by the hypervisor), in cores, between two reads.

    Reads ``/proc/stat`` and this process's own CPU time; where ``/proc/stat``
    does not exist (macOS, Windows) every reading is NaN (unknown) and the
    timing alone decides.
    """

    def __init__(self) -> None:
        self.available = os.path.exists("/proc/stat")
        self._ticks = os.sysconf("SC_CLK_TCK") if self.available else 100

    def _busy_s(self) -> float:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
        user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        return (user + nice + system + irq + softirq + steal) / self._ticks

    def read(self) -> tuple[float, float, float]:
        """A reading: (wall seconds, everybody's busy seconds, this process's CPU seconds)."""
        if not self.available:
            return time.monotonic(), 0.0, 0.0
        own = os.times()
        return time.monotonic(), self._busy_s(), own.user + own.system

    def since(self, before: tuple[float, float, float]) -> float:
        """Cores used by other processes since ``before`` (NaN where unknown or too short to tell)."""
        if not self.available:
            return float("nan")
        now = self.read()
        wall = now[0] - before[0]
        if wall <= 0.02:  # under a few clock ticks: no reading
            return float("nan")
        return max((now[1] - before[1]) - (now[2] - before[2]), 0.0) / wall
