"""The chunked protocol: models timed in short chunks, interleaved, spread over the run.

A pool of up to ``protocol.pool`` loaded models (plus the reference network)
is timed round after round; each round times one chunk of every member, in a
seeded random order. A chunk is one untimed warm-up run (the first run after
another model is cache-cold) and enough timed runs to last about
``protocol.chunk_s``. A disturbance of the machine therefore hits several
models and the reference alike, and each model's chunks are spread over
several seconds, so some of them land in quiet windows.

After ``protocol.rounds`` chunks a model is finished once
:class:`hwprof.quiet.Classifier` finds enough of its chunks quiet
(``protocol.min_quiet``) and their samples pin the median down
(``protocol.target_ci``). A model without enough quiet chunks stays in the
pool for more rounds, up to ``protocol.max_rounds`` chunks, while the run still
sees quiet windows.

A model's latency is the median of its quiet chunks' samples (the disturbed
chunks are left out, never averaged in), each chunk *paired* with the
reference network's chunk of the same round: scaled by the reference's quiet
level around the model (``ref_ms``) over that chunk. The two were timed within
a fraction of a second, so what slowed or sped up one did the same to the
other; a machine whose quiet speed itself shifts (another VM on the host)
then moves every row and its ``ref_ms`` together, which is what drift
correction (:mod:`hwprof.drift`) needs.

A model found a quiet window when its quiet chunks are at least a third of
the chunks it took (and at least ``protocol.min_quiet``). One that did not is
flagged ``quiet=False`` and estimated the same way from every chunk
(``estimate``: ``reference-corrected``); without a reference, from its
fastest chunks (``fastest-chunks``). A few quiet chunks out of many are not
used alone: paired with the reference, the chunks picked for running fast
sit beside reference chunks that were not picked, so their ratios run low
(on a noisy 2-core host, 60 networks timed twice agreed within ±10% for
91.7% that way and 100% from every chunk, and from every chunk they agreed
with the quiet machine's for 100% under a switching memory-streaming
neighbour, against 88.3%).

Chunks timed beside our own preparation workers (:mod:`hwprof.prepare`) are
left out of every estimate, a reference-corrected one included: a worker on
the other core slowed LiteRT int8 networks 15-30% more than the reference,
so rows estimated from every chunk disagreed with a run without workers
(litert-cpu:int8, 60 networks: 85% within ±10% against a test-retest of
100%).

Simulated devices keep the contiguous protocol (:func:`hwprof.protocol.measure_session`):
their noise is drawn, not caused by a neighbour.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Generic, Iterable, Iterator, TypeVar

import numpy as np

from hwprof.arch import Arch
from hwprof.device import Session
from hwprof.protocol import Measurement, Protocol, summarize
from hwprof.quiet import Classifier, LoadProbe, RowNoise, Trace, Verdict, verdict

T = TypeVar("T")
PATIENCE_S = 30.0  # no quiet chunk for this long: stop giving models extra rounds (the machine is loaded)
MIN_POOL = 4  # models in the pool before timing goes on without waiting for more to be ready


@dataclass
class _Member(Generic[T]):
    item: T
    session: Session
    runs: int  # timed runs per chunk
    warmup_s: list[float]
    chunks: list[int] = field(default_factory=list)  # indices into the trace
    rounds: list[int] = field(default_factory=list)  # the round each chunk was timed in
    samples: list[np.ndarray] = field(default_factory=list)  # seconds, per chunk
    spent_s: float = 0.0


@dataclass
class Finished(Generic[T]):
    """A model the pool is done with.

    Attributes:
        item: What was measured (as given).
        measurement: Statistics of its quiet chunks' samples.
        noise: How disturbed its measurement was.
        ref_ms: The reference network's quiet latency around it (None without a reference).
        inference_s: Seconds of inference it took (every run, warm-ups included).
        chunk_medians_ms: Median of each kept chunk, in the order timed.
        chunk_log: Every chunk timed, kept or not: (round, median ms, quiet). Models in one pool share
            round numbers, so two of them can be compared round by round (:mod:`hwprof.regression`).
        chunk_index: Where its chunks are in the run's trace (:meth:`Interleaver.chunk_records`).
    """

    item: T
    measurement: Measurement
    noise: RowNoise
    ref_ms: float | None
    inference_s: float
    chunk_medians_ms: list[float] = field(default_factory=list)
    chunk_log: list[tuple[int, float, bool]] = field(default_factory=list)
    chunk_index: list[int] = field(default_factory=list)


def runs_per_chunk(warmup_s: np.ndarray, protocol: Protocol) -> int:
    """Timed runs in one chunk: about ``chunk_s`` of inference, at least 1, at most a share of ``max_samples``."""
    per_run = float(np.median(warmup_s[1:] if len(warmup_s) > 1 else warmup_s)) if len(warmup_s) else 1e-3
    cap = max(protocol.max_samples // protocol.max_rounds, 1)
    return int(np.clip(round(protocol.chunk_s / max(per_run, 1e-9)), 1, cap))


class Interleaver(Generic[T]):
    """Runs the chunked protocol over items (models to load), yielding each as it finishes.

    Args:
        protocol: The protocol (``rounds`` > 0).
        open_item: Loads an item; returns its session (the caller times building and loading).
        reference: The reference network's session, timed in every round (None: no reference).
        seed: Seed of the order within rounds.
        classifier: Quiet/disturbed classification (default from ``protocol.quiet_tol``).
        clock: Seconds clock (monotonic); tests pass a fake one.
        probe: Other processes' CPU use; tests pass a fake one.
        before_round: Called with each round's number and chunk count just before its chunks are timed (the
            preparation workers stop for some rounds: :meth:`hwprof.prepare.PreparedStream.before_round`). When
            it returns False it used the time otherwise (prepared a model): the round is not timed, the pool is
            topped up and it is called again.
        beside_own_work: Whether work of our own (preparation workers) runs beside the round about to be
            timed (asked after ``before_round``). Its chunks are never quiet and are left out of every
            estimate, a reference-corrected one included: pairing with the reference does not cancel a
            neighbour that slows the models more than the reference.
    """

    def __init__(self, protocol: Protocol, open_item: Callable[[T], Session], reference: Session | None = None,
                 seed: int = 0, classifier: Classifier | None = None, clock: Callable[[], float] = time.monotonic,
                 probe: LoadProbe | None = None,
                 before_round: Callable[[int, int], bool | None] | None = None,
                 beside_own_work: Callable[[], bool] | None = None) -> None:
        self.protocol = protocol
        self.open_item = open_item
        self.reference = reference
        self.rng = np.random.default_rng(seed)
        self.classifier = classifier or Classifier(tol=protocol.quiet_tol)
        self.clock = clock
        self.probe = probe or LoadProbe()
        self.before_round = before_round
        self.beside_own_work = beside_own_work
        self._own_rounds: set[int] = set()  # rounds timed beside our own workers
        self.trace = Trace()
        self.final_quiet: dict[int, bool] = {}  # chunk index -> quiet, as classified when its member finished
        self.rows = 0
        self.rows_quiet = 0
        self.rows_corrected = 0
        self.inference_s = 0.0
        self._next_id = 0
        self._round = 0
        self._reference_chunk: dict[int, int] = {}  # round -> the reference's chunk (trace index) in it
        self._chunk_round: list[int] = []  # trace index -> its round
        self._chunk_samples: list[np.ndarray] = []  # trace index -> its timed samples, seconds
        self._started = self.clock()
        self._last_quiet = self._started

    def _time_chunk(self, member_id: int, session: Session, runs: int, load: float) -> tuple[int, np.ndarray]:
        start = self.clock()
        times = session.run(runs + 1)
        end = self.clock()
        self.inference_s += float(times.sum())
        timed = times[1:]
        index = self.trace.add(member_id, start, end, float(np.median(timed)) * 1e3, load)
        self._chunk_round.append(self._round)
        self._chunk_samples.append(timed)
        return index, timed

    def _open(self, item: T) -> _Member[T]:
        session = self.open_item(item)
        warm = session.run(self.protocol.warmup) if self.protocol.warmup else np.empty(0)
        self.inference_s += float(warm.sum())
        return _Member(item, session, runs_per_chunk(warm, self.protocol), list(warm))

    def run(self, items: Iterable[T]) -> Iterator[Finished[T]]:
        """Measure every item; yields each as it finishes (not in the order given).

        Items that come with a ``ready()`` (models prepared by workers, :mod:`hwprof.prepare`) join the
        pool when ready: timing goes on with what is ready rather than wait to fill the pool, once the pool
        holds ``MIN_POOL`` models. Below that the next item is taken as it comes (prepared here if no worker
        has it ready): rounds of one or two models and the reference spent half their time on the reference,
        and a chunk's neighbours were its own model's chunks, so nothing looked quiet (cpu:int8, 60 networks,
        one worker on a 2-core VM: 1000 rounds instead of 89, and 80 s of inference instead of 38 s).
        """
        pending = iter(items)
        ready = getattr(pending, "ready", None)
        active: dict[int, _Member[T]] = {}
        reference_runs = 0
        if self.reference is not None:
            warm = self.reference.run(max(self.protocol.warmup, 2))
            reference_runs = runs_per_chunk(warm, self.protocol)
        exhausted = False
        try:
            while True:
                while not exhausted and len(active) < self.protocol.pool:
                    if len(active) >= min(MIN_POOL, self.protocol.pool) and ready is not None and not ready():
                        break
                    item = next(pending, None)
                    if item is None:
                        exhausted = True
                        break
                    active[self._next_id] = self._open(item)
                    self._next_id += 1
                if not active:
                    break
                order = list(active) + ([-1] if self.reference is not None else [])
                if self.before_round is not None and self.before_round(self._round, len(order)) is False:
                    continue  # its time went to preparing a model
                if self.beside_own_work is not None and self.beside_own_work():
                    self._own_rounds.add(self._round)
                before = self.probe.read()
                timed: list[tuple[int, int, np.ndarray]] = []
                for member_id in self.rng.permutation(order):
                    member_id = int(member_id)
                    if member_id < 0:
                        timed.append((-1, *self._time_chunk(-1, self.reference, reference_runs, float("nan"))))
                        self._reference_chunk[self._round] = timed[-1][1]
                    else:
                        member = active[member_id]
                        timed.append((member_id, *self._time_chunk(member_id, member.session, member.runs,
                                                                   float("nan"))))
                load = self.probe.since(before)
                for member_id, index, samples in timed:
                    self.trace.load[index] = load
                    if member_id >= 0:
                        member = active[member_id]
                        member.chunks.append(index)
                        member.rounds.append(self._round)
                        member.samples.append(samples)
                        member.spent_s += float(samples.sum())
                self._round += 1
                for member_id in [m for m in active if len(active[m].chunks) >= self.protocol.rounds]:
                    finished = self._finish_if_done(member_id, active[member_id])
                    if finished is not None:
                        del active[member_id]
                        yield finished
        finally:
            for member in active.values():
                member.session.close()

    def _finish_if_done(self, member_id: int, member: _Member[T]) -> Finished[T] | None:
        p = self.protocol
        classes = self.classifier.classify(self.trace, member.chunks)
        usable = np.array([r not in self._own_rounds for r in member.rounds], dtype=bool)
        if not usable.any():  # cannot happen with stretches of stopped workers; keep every chunk rather than none
            usable[:] = True
        quiet = classes.quiet & usable
        if quiet.any():
            self._last_quiet = max(self._last_quiet, self.trace.end[member.chunks[int(np.flatnonzero(quiet)[-1])]])
        enough = int(quiet.sum()) >= p.min_quiet
        out_of_rounds = len(member.chunks) >= p.max_rounds or member.spent_s >= p.time_cap_s
        loaded = self.clock() - self._last_quiet > PATIENCE_S
        if not (enough or out_of_rounds or loaded):
            return None
        middle = (self.trace.start[member.chunks[0]] + self.trace.end[member.chunks[-1]]) / 2
        ref_ms = self.classifier.reference_level(self.trace, middle) if self.reference is not None else None
        # Paired with the reference, a few quiet chunks picked out of many are the ones that happened to run
        # fast beside reference chunks that were not picked: their ratios run low. A quiet window is at least a
        # third of the chunks taken; with fewer, every chunk paired with its round's reference is the estimate.
        window = enough and (not ref_ms or 3 * int(quiet.sum()) >= int(usable.sum()))
        if window:
            keep, estimate = quiet, "quiet"
        elif ref_ms:  # no quiet window for it: every usable chunk, flagged (each paired with the reference below)
            keep, estimate = usable, "reference-corrected"
        else:
            fastest = (classes.slowdown <= 1 + self.classifier.tol) & usable
            keep, estimate = (fastest if fastest.any() else usable), "fastest-chunks"
        stats = summarize(np.concatenate(self._kept_samples(member, keep, ref_ms)), np.asarray(member.warmup_s), p,
                          converged=False)
        if enough and stats.ci_rel > p.target_ci and not out_of_rounds:
            return None
        stats.converged = stats.ci_rel <= p.target_ci
        for index, q in zip(member.chunks, quiet):
            self.final_quiet[index] = bool(q)
        loads = classes.load[~np.isnan(classes.load)]
        noise = RowNoise(quiet=window, chunks=len(member.chunks), chunks_quiet=int(quiet.sum()),
                         slowdown=float(np.median(classes.disturbance)),
                         foreign_load=float(loads.mean()) if len(loads) else None,
                         estimate=estimate)
        member.session.close()
        self.rows += 1
        self.rows_quiet += window
        self.rows_corrected += estimate == "reference-corrected"
        inference = float(sum(member.warmup_s)) + member.spent_s
        kept_medians = [self.trace.median_ms[i] for i, k in zip(member.chunks, keep) if k]
        log = [(r, float(self.trace.median_ms[i]), bool(q)) for r, i, q in zip(member.rounds, member.chunks, quiet)]
        return Finished(member.item, stats, noise, ref_ms, inference, kept_medians, log, list(member.chunks))

    def _kept_samples(self, member: _Member[T], keep: np.ndarray, ref_ms: float | None) -> list[np.ndarray]:
        """The samples of the kept chunks, each paired with the reference chunk of its round.

        With a reference, a chunk's samples are scaled by ``ref_ms`` (the reference's
        quiet level around the row) over the reference's chunk in the same round:
        the two were timed within a fraction of a second, so whatever slowed or sped
        up one did the same to the other, and the row's latency over ``ref_ms`` is
        its latency over the reference's, chunk by chunk.
        """
        kept = [(r, s) for r, s, k in zip(member.rounds, member.samples, keep) if k]
        if not ref_ms:
            return [s for _, s in kept]
        return [s * (ref_ms / self.trace.median_ms[self._reference_chunk[r]]) for r, s in kept]

    def reference_spread(self) -> tuple[float, float, float] | None:
        """(min, median, max) of the reference's chunk medians, ms (None without a reference)."""
        ms = self.trace.by_member.get(-1)
        if not ms:
            return None
        return float(np.min(ms)), float(np.median(ms)), float(np.max(ms))

    def chunk_records(self, owners: dict[int, dict]) -> list[dict]:
        """Every chunk timed, in order, as JSON-ready records (what ``hwprof measure --trace`` writes).

        Args:
            owners: Trace index -> what identifies the row it belongs to (e.g. its arch hash and block
                key); the reference's chunks are ``{"model": "reference"}``, and a chunk of a model
                that never finished (the run was stopped) ``{"model": null}``.

        Each record: ``chunk`` (its index), ``round``, the owner's fields, ``start_s`` and
        ``end_s`` (seconds since the run began), ``clock_s`` (its start on the run's clock, by
        default ``time.monotonic``, to line it up with other processes' logs), ``median_ms``,
        ``load_cores`` (other processes' CPU use in its round, null if unknown), ``quiet``
        (whether it was classified quiet when its model finished; null for the reference and
        unfinished models) and ``samples_ms``. A run with preparation workers adds ``workers``
        (``running`` or ``stopped`` in the chunk's round; see :mod:`hwprof.profiling`).
        """
        records = []
        for i in range(len(self.trace)):
            owner = {"model": "reference"} if self.trace.member[i] < 0 else owners.get(i, {"model": None})
            load = self.trace.load[i]
            records.append({"chunk": i, "round": self._chunk_round[i], **owner,
                            "start_s": round(self.trace.start[i] - self._started, 6),
                            "end_s": round(self.trace.end[i] - self._started, 6),
                            "clock_s": round(self.trace.start[i], 6),
                            "median_ms": round(self.trace.median_ms[i], 6),
                            "load_cores": None if np.isnan(load) else round(float(load), 4),
                            "quiet": self.final_quiet.get(i),
                            "samples_ms": [round(float(x) * 1e3, 6) for x in self._chunk_samples[i]]})
        return records

    def verdict(self) -> Verdict:
        """How noisy the run was: every model chunk as classified when its model finished, plus the reference's."""
        reference = [i for i, m in enumerate(self.trace.member) if m < 0]
        classes = self.classifier.classify(self.trace, sorted(set(self.final_quiet) | set(reference)))
        for k, index in enumerate(classes.index):
            if int(index) in self.final_quiet:
                classes.quiet[k] = self.final_quiet[int(index)]
        return verdict(self.trace, classes, self.rows, self.rows_quiet, self.rows_corrected)


@dataclass
class OneModel:
    """One model timed by :func:`measure_one`."""

    measurement: Measurement
    ref_ms: float | None = None
    noise: RowNoise | None = None
    verdict: Verdict | None = None


def measure_one(device, model, min_time_s: float | None = None, seed: int = 0) -> OneModel:
    """Time one loaded-on-demand ``model`` (ONNX, or what ``device.load`` takes) with the device's default protocol.

    Real devices: the chunked protocol with the reference network in every
    round (its quiet latency is ``ref_ms``); simulated devices: the contiguous
    protocol. What ``hwprof.measure`` and a search's measured winner use.
    """
    from hwprof.protocol import measure_session, measurement_protocol

    protocol = measurement_protocol(device.simulated, min_time_s=min_time_s)
    if not protocol.chunked:
        session = device.load(model)
        try:
            return OneModel(measure_session(session, protocol))
        finally:
            session.close()
    (done,), verdict = measure_models_chunked(device, [model], protocol, seed)
    return OneModel(done.measurement, done.ref_ms, done.noise, verdict)


def network_timer(device, min_time_s: float | None = None) -> Callable[[Arch], float]:
    """A function timing networks on ``device`` in its graph style (median ms, cached by network hash).

    Each network is timed by :func:`measure_one`: on a real device its quiet latency.
    """
    cache: dict[str, float] = {}

    def latency_ms(arch: Arch) -> float:
        if arch.hash not in cache:
            cache[arch.hash] = measure_one(device, device.build(arch), min_time_s).measurement.median_ms
        return cache[arch.hash]

    return latency_ms


def measure_models_chunked(device, models: list, protocol: Protocol,
                           seed: int = 0) -> tuple[list[Finished], Verdict]:
    """Time ``models`` (ONNX, or what ``device.load`` takes) together in one pool with the reference network.

    Returns each model's :class:`Finished`, in the order given, and the run's verdict.
    """
    from hwprof.affinity import pinned_timing
    from hwprof.drift import DriftReference

    with pinned_timing(device):
        reference = DriftReference(device, 0.0)
        try:
            runner = Interleaver(protocol, lambda i: device.load(models[i]), reference.session, seed=seed)
            done = {f.item: f for f in runner.run(range(len(models)))}
        finally:
            reference.close()
    return [done[i] for i in range(len(models))], runner.verdict()
