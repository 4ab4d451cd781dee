"""Measuring many networks and blocks on one device into a dataset, resumably."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import onnx

import hwprof
from devices.targets import resolve
from hwprof.device import Device, host_info
from hwprof.arch import Arch, Block
from hwprof.dataset import Dataset
from hwprof.drift import DriftReference
from hwprof.per_op import breakdown
from hwprof.errors import HwprofError
from hwprof.protocol import Measurement, Protocol, measure_session
from hwprof.quiet import Verdict, merged

MODES = ("e2e", "blocks", "both")


@dataclass(frozen=True, eq=False)
class ExternalModel:
    """A model brought by the user (not built from hwprof's IR): ONNX, or a ``.tflite`` for ``litert-cpu``.

    Its rows use the SHA-256 of the file's content as arch hash and ``onnx``
    (or ``tflite``) as space.
    """

    path: str
    proto: Any = field(repr=False)  # onnx.ModelProto, or hwprof.build_tflite.TfliteModel
    blocks: tuple = ()

    @property
    def space(self) -> str:
        return "onnx" if isinstance(self.proto, onnx.ModelProto) else "tflite"

    @cached_property
    def hash(self) -> str:
        return hashlib.sha256(self.proto.SerializeToString()).hexdigest()[:16]

    @cached_property
    def macs(self) -> int:
        if self.space == "tflite":
            return self.proto.stats["macs"]
        from hwprof.onnx_stats import count_macs

        return count_macs(self.proto)

    @cached_property
    def params(self) -> int:
        if self.space == "tflite":
            return self.proto.stats["params"]
        from hwprof.onnx_stats import count_params

        return count_params(self.proto)

    @property
    def resolution(self) -> int:
        if self.space == "tflite":  # NHWC
            shape = self.proto.stats["input_shape"]
            return int(shape[1]) if len(shape) == 4 else 1
        from hwprof.onnx_inputs import model_inputs

        shape = model_inputs(self.proto)[0][1]
        return int(shape[-1]) if len(shape) >= 3 else 1

    def to_json(self) -> str:
        return json.dumps({"schema": f"hwprof.{self.space}/1", f"{self.space}_file": self.path, "sha256": self.hash})


@dataclass(frozen=True)
class Task:
    """One thing to measure: a whole network (e2e) or one block configuration."""

    target: Arch | Block | ExternalModel
    arch: Arch | ExternalModel | None  # for e2e: the network; for a block: the first network using it

    @property
    def is_e2e(self) -> bool:
        return isinstance(self.target, (Arch, ExternalModel))

    @property
    def arch_hash(self) -> str:
        return self.target.hash if self.is_e2e else ""

    @property
    def block_key(self) -> str:
        return "e2e" if self.is_e2e else self.target.key()


def plan(archs: Iterable[Arch], mode: str) -> list[Task]:
    """Tasks for ``archs``: each network once (e2e), then each distinct block once (blocks).

    Whole networks come first, so that in ``both`` mode they are timed one
    after another, in the same conditions as an ``e2e`` run of other networks
    (a test set) rather than between small single-block models.
    """
    if mode not in MODES:
        raise HwprofError(f"unknown mode '{mode}'", f"use one of: {', '.join(MODES)}")
    networks: list[Task] = []
    blocks: list[Task] = []
    seen: set[str] = set()
    for arch in archs:
        if mode in ("e2e", "both") and arch.hash not in seen:
            seen.add(arch.hash)
            networks.append(Task(arch, arch))
        if mode in ("blocks", "both"):
            for block in arch.blocks:
                key = "b:" + block.key()
                if key not in seen:
                    seen.add(key)
                    blocks.append(Task(block, arch))
    return networks + blocks


def _row(task: Task, m: Measurement, device: Device, protocol: Protocol, host: str, now: datetime,
         reference: DriftReference | None = None) -> dict:
    target = task.target
    protocol_info = {**protocol.as_dict(), **(reference.describe() if reference else {})}
    return {
        "arch_hash": task.arch_hash, "space": task.arch.space if task.arch else "",
        "block_key": task.block_key, "block_op": "e2e" if task.is_e2e else target.op,
        "arch_json": target.to_json() if task.is_e2e else "",
        "block_json": "" if task.is_e2e else json.dumps(target.to_dict(), sort_keys=True),
        "macs": target.macs, "params": target.params, "resolution": target.resolution,
        "device": device.name, "device_kind": device.kind, "simulated": device.simulated,
        "profile_hash": device.profile_hash(), "settings": json.dumps(device.recorded_settings(), sort_keys=True),
        "settings_hash": device.settings_hash(), "protocol": json.dumps(protocol_info, sort_keys=True),
        "median_ms": m.median_ms, "mean_ms": m.mean_ms, "std_ms": m.std_ms, "p10_ms": m.p10_ms,
        "p90_ms": m.p90_ms, "iqr_ms": m.iqr_ms, "ci_low_ms": m.ci_low_ms, "ci_high_ms": m.ci_high_ms,
        "n": m.n, "n_rejected": m.n_rejected, "warmup": len(m.warmup_ms), "converged": m.converged,
        "samples_ms": m.samples_ms.tolist(), "warmup_ms": m.warmup_ms.tolist(), "host": host,
        "hwprof_version": hwprof.__version__, "timestamp": now, "ref_ms": None, "ops_json": None,
        "quiet": None, "chunks": None, "chunks_quiet": None, "slowdown": None, "foreign_load": None,
        "estimate": None,
    }


@dataclass
class RunSummary:
    """What a measurement run did."""

    planned: int
    skipped: int
    measured: int
    e2e_rows: int
    block_rows: int
    inference_s: float
    wall_s: float
    unconverged: int
    reference_ms: tuple[float, float, float] | None = None  # (min, median, max) when drift was tracked
    build_s: float = 0.0  # building models (IR -> ONNX / TFLite, int8 calibration)
    load_s: float = 0.0  # the runtime loading them (sessions, delegates, OpenVINO's compile)
    reference_s: float = 0.0  # the drift reference: its session and timings
    failed: int = 0  # tasks not measured: a batch an executor lost, a model that could not be prepared (rerun)
    failures: list[str] = field(default_factory=list)  # why, one line per failed batch or task
    executor: str = "local"
    noise: Verdict | None = None  # how noisy the machine was (chunked protocol; see hwprof.quiet)
    prepare_wait_s: float = 0.0  # the timing loop waiting for a model the workers had not finished
    prepare_worker_s: float = 0.0  # the workers' preparing, overlapped with timing
    prepared_here: int = 0  # models the timing process prepared itself rather than wait for the workers
    prepared_ahead: int = 0  # models it prepared beside running workers, in place of disturbed chunks
    prepare_workers: int = 0  # worker processes that prepared models (0: prepared in the timing process)
    prepare_queue: int = 0  # most models being prepared or waiting to be loaded at once
    timed_cores: list[int] = field(default_factory=list)  # cores the timing thread was pinned to (empty: not)
    worker_cores: list[int] = field(default_factory=list)
    prepare_note: str | None = None  # why no workers were started although asked for
    paused_rounds: tuple[int, int] = (0, 0)  # rounds timed with the workers stopped, of rounds timed with workers
    chunks: list[dict] = field(default_factory=list, repr=False)  # every chunk timed (`hwprof measure --trace`)

    def as_dict(self) -> dict:
        """What ``hwprof measure --json`` prints of the run (seconds rounded to ms)."""
        out = {"executor": self.executor, "failed": self.failed, "failures": self.failures,
               "planned": self.planned, "skipped_existing": self.skipped, "measured": self.measured,
               "e2e_rows": self.e2e_rows, "block_rows": self.block_rows, "unconverged": self.unconverged,
               **{k: round(getattr(self, k), 3) for k in ("inference_s", "wall_s", "build_s", "load_s",
                                                           "reference_s", "other_s")}}
        out["preparation"] = {"workers": self.prepare_workers, "queue_bound": self.prepare_queue,
                              "timed_cores": self.timed_cores, "worker_cores": self.worker_cores,
                              "wait_s": round(self.prepare_wait_s, 3), "worker_s": round(self.prepare_worker_s, 3),
                              "prepared_here": self.prepared_here, "prepared_ahead": self.prepared_ahead,
                              "note": self.prepare_note, "rounds_with_workers_stopped": self.paused_rounds[0],
                              "rounds_with_workers": self.paused_rounds[1]}
        if self.reference_ms:
            out["reference_ms"] = {k: round(v, 4) for k, v in zip(("min", "median", "max"), self.reference_ms)}
        if self.noise is not None:
            out["noise"] = self.noise.as_dict()
        return out

    @property
    def other_s(self) -> float:
        """Wall time not spent timing, building, loading, waiting for prepared models or on the drift reference
        (bookkeeping, writes)."""
        return max(self.wall_s - self.inference_s - self.build_s - self.load_s - self.reference_s
                   - self.prepare_wait_s, 0.0)


@dataclass
class TaskStats:
    """Counts of one :func:`measure_tasks` call."""

    measured: int = 0
    e2e_rows: int = 0
    block_rows: int = 0
    unconverged: int = 0
    inference_s: float = 0.0
    reference_ms: tuple[float, float, float] | None = None
    build_s: float = 0.0
    load_s: float = 0.0
    reference_s: float = 0.0
    prepare_wait_s: float = 0.0
    noise: Verdict | None = None
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    preparation: Any = None  # hwprof.prepare.PrepareStats
    chunks: list[dict] = field(default_factory=list)  # every chunk timed (chunked protocol; Interleaver.chunk_records)

    def take_preparation(self, prep) -> None:
        """Count a :class:`~hwprof.prepare.Preparer`'s work: time prepared here is building; failures are failures."""
        self.preparation = prep
        self.build_s += prep.inline_s
        self.prepare_wait_s = prep.wait_s
        self.failed += prep.failed
        self.failures.extend(prep.failures)

    def count(self, task: "Task", m: Measurement) -> None:
        """Count one measured task."""
        self.measured += 1
        self.e2e_rows += task.is_e2e
        self.block_rows += not task.is_e2e
        self.unconverged += not m.converged


def host_json(device: Device) -> str:
    """The ``host`` column: the measuring machine and the device's description."""
    return json.dumps({**host_info(), **{k: v for k, v in device.info().items() if k != "sources"}},
                      sort_keys=True, default=str)


def measure_tasks(device: Device, tasks: list[Task], protocol: Protocol, on_row: Callable[[dict], None],
                  on_task: Callable[[Task], None] | None = None, reference_every_s: float | None = None,
                  per_op_runs: int = 0, prepare_workers: int | None = 0) -> TaskStats:
    """Measure ``tasks`` on ``device`` one after another; hand each finished row to ``on_row``.

    The core every executor runs where the device is (in-process for
    ``local``, on a worker node for ``ray``). With ``reference_every_s`` a
    reference network is timed that often and each row gets the reference
    latency at its moment (``ref_ms``): such a row is handed over after the
    next reference timing. ``per_op_runs`` > 0 adds the per-kernel breakdown
    of each network and block (``ops_json``). ``prepare_workers`` > 0 builds,
    quantizes and compiles the upcoming models in that many processes off the
    timed core (:mod:`hwprof.prepare`; None: :func:`~hwprof.prepare.default_workers`
    for these tasks and this machine). A task whose model cannot be prepared
    is counted in ``failed`` (one line in ``failures``) and left for a rerun.
    """
    from hwprof.prepare import Preparer, default_workers

    if prepare_workers is None:
        prepare_workers = default_workers(device, len(tasks))
    stats = TaskStats()
    with Preparer(device, prepare_workers, describe=describe_task) as preparer:
        try:
            if protocol.chunked:
                _measure_chunked(device, preparer.stream(tasks, _target), protocol, on_row, on_task,
                                 reference_every_s, per_op_runs, stats, bool(tasks))
            else:
                _measure_contiguous(device, preparer.stream(tasks, _target), protocol, on_row, on_task,
                                    reference_every_s, per_op_runs, stats, bool(tasks))
        finally:
            stats.take_preparation(preparer.stats)
    return stats


def _target(task: Task):
    return task.target


def describe_task(task: Task) -> str:
    """A task as a failure line names it: the model file, the network's hash, or the block's key."""
    if isinstance(task.target, ExternalModel):
        return task.target.path
    return f"network {task.arch_hash}" if task.is_e2e else f"block {task.block_key}"


def _measure_contiguous(device: Device, prepared: Iterable[tuple[Task, Any]], protocol: Protocol,
                        on_row: Callable[[dict], None], on_task: Callable[[Task], None] | None,
                        reference_every_s: float | None, per_op_runs: int, stats: TaskStats, any_task: bool) -> None:
    """:func:`measure_tasks` with the contiguous protocol: each model in one stretch."""
    host = host_json(device)
    awaiting: list[tuple[dict, float]] = []  # rows waiting for the next reference timing, with their moment
    clock = time.perf_counter()
    reference = DriftReference(device, reference_every_s) if reference_every_s is not None and any_task else None
    stats.reference_s += time.perf_counter() - clock

    def time_reference() -> None:
        began = time.perf_counter()
        reference.measure()
        stats.reference_s += time.perf_counter() - began
        refs = reference.at([moment for _, moment in awaiting])
        for (row, _), ref in zip(awaiting, refs):
            row["ref_ms"] = float(ref)
            on_row(row)
        awaiting.clear()

    try:
        _measure_each(device, prepared, protocol, on_row, on_task, per_op_runs, host, stats, reference, awaiting,
                      time_reference)
    except KeyboardInterrupt:
        if reference is not None and awaiting and reference.history:  # hand over what was measured
            for (row, _), ref in zip(awaiting, reference.at([moment for _, moment in awaiting])):
                row["ref_ms"] = float(ref)
                on_row(row)
            awaiting.clear()
        raise
    if reference is not None:
        time_reference()
        stats.reference_ms = reference.spread()
        reference.close()


def _load(device: Device, model, stats: TaskStats):
    """Load a prepared ``model`` on ``device``, adding the time to ``stats``."""
    began = time.perf_counter()
    session = device.load(model)
    stats.load_s += time.perf_counter() - began
    return session


def _measure_each(device, prepared, protocol, on_row, on_task, per_op_runs, host, stats, reference, awaiting,
                  time_reference) -> None:
    """The contiguous protocol's loop over prepared tasks (see :func:`measure_tasks`)."""
    preparer = getattr(prepared, "preparer", None)
    for task, model in prepared:
        session = _load(device, model, stats)
        try:
            if reference is not None and reference.due():
                time_reference()
            began = time.monotonic()
            if preparer is not None:
                preparer.pause()  # no protocol here to leave disturbed samples out: time without our workers
            try:
                m = measure_session(session, protocol)
            finally:
                if preparer is not None:
                    preparer.resume()
            moment = (began + time.monotonic()) / 2
        finally:
            session.close()
        stats.inference_s += (m.samples_ms.sum() + m.warmup_ms.sum()) / 1e3
        row = _row(task, m, device, protocol, host, datetime.now(timezone.utc), reference)
        if per_op_runs:
            row["ops_json"] = json.dumps(breakdown(device, model, per_op_runs))
        if reference is None:
            on_row(row)
        else:
            awaiting.append((row, moment))
        stats.count(task, m)
        if on_task:
            on_task(task)


def _measure_chunked(device: Device, prepared: Iterable[tuple[Task, Any]], protocol: Protocol,
                     on_row: Callable[[dict], None], on_task: Callable[[Task], None] | None,
                     reference_every_s: float | None, per_op_runs: int, stats: TaskStats, any_task: bool) -> None:
    """:func:`measure_tasks` with the chunked protocol (:mod:`hwprof.interleave`).

    The reference network (unless ``reference_every_s`` is None) is timed in
    every round; each row's ``ref_ms`` is the reference's quiet latency
    around it.
    """
    from hwprof.interleave import Interleaver

    if not any_task:
        return
    host = host_json(device)
    clock = time.perf_counter()
    reference = DriftReference(device, reference_every_s or 0.0) if reference_every_s is not None else None
    stats.reference_s += time.perf_counter() - clock

    def open_item(item: list):
        session = _load(device, item[1], stats)
        if not per_op_runs:
            item[1] = None  # loaded: the pool keeps the session, not the model too
        return session

    preparer = getattr(prepared, "preparer", None)
    runner = Interleaver(protocol, open_item, reference.session if reference else None,
                         seed=getattr(device, "seed", 0) or 0,
                         before_round=prepared.before_round if preparer is not None and preparer.workers else None,
                         beside_own_work=(lambda: preparer.running_stretch and prepared.workers_busy())
                         if preparer is not None and preparer.workers else None)
    owners: dict[int, dict] = {}
    try:
        for done in runner.run(prepared):
            (task, model), m = done.item, done.measurement
            owners.update({i: {"model": task.arch_hash, "block_key": task.block_key} for i in done.chunk_index})
            row = _row(task, m, device, protocol, host, datetime.now(timezone.utc), reference)
            row.update(done.noise.columns(), ref_ms=done.ref_ms)
            if per_op_runs:
                row["ops_json"] = json.dumps(breakdown(device, model, per_op_runs))
            on_row(row)
            stats.count(task, m)
            if on_task:
                on_task(task)
    finally:
        if reference is not None:
            reference.close()
        stats.inference_s = runner.inference_s
        stats.reference_ms = runner.reference_spread()
        stats.noise = runner.verdict()
        stats.chunks = runner.chunk_records(owners)
        if preparer is not None and preparer.workers:  # which chunks had the workers beside them
            for chunk in stats.chunks:
                chunk["workers"] = "stopped" if chunk["round"] in preparer.stats.stopped_rounds else "running"


def measure_into(dataset: Dataset, device: Device, archs: list[Arch], mode: str = "both",
                 protocol: Protocol = Protocol(), flush_rows: int = 50, flush_seconds: float = 5.0,
                 on_start: Callable[[int, int], None] | None = None,
                 on_progress: Callable[[Task], None] | None = None,
                 reference_every_s: float | None = None, per_op_runs: int = 0,
                 executor=None, device_options: dict | None = None, batch_size: int | None = None,
                 prepare_workers: int | None = 0) -> RunSummary:
    """Measure what ``dataset`` lacks for ``archs`` on ``device`` and append it.

    Rows already present for (arch hash, block key, device, settings) are skipped,
    so rerunning after an interruption resumes. Rows are flushed in atomic parts
    every ``flush_rows`` rows or ``flush_seconds`` seconds.

    With ``reference_every_s`` (a number of seconds), a fixed reference network
    is timed that often between tasks and each row records the reference
    latency at its moment (``ref_ms``), so predictors can correct for drift in
    machine speed (see :mod:`hwprof.drift`). A row waits for the next reference
    timing before it is written.

    With ``per_op_runs`` > 0, each network and block is also profiled per node
    (after its timed runs, in a separate profiling session) and the
    per-kernel breakdown is stored in ``ops_json`` (see :mod:`hwprof.per_op`).

    With ``prepare_workers`` > 0, that many processes build, quantize and
    compile the upcoming models off the timed core (:mod:`hwprof.prepare`),
    where the device is (None: the default there for the tasks to measure; a
    script that starts workers must guard its entry point with ``if __name__ ==
    "__main__":``, as the spawned workers import it). A model that cannot be prepared is counted in
    ``failed`` and left for a rerun; the other rows are written.

    With an ``executor`` other than local (see :mod:`hwprof.executors`), the
    tasks go out in batches of ``batch_size`` to where the device is
    (``device_options``, by default :attr:`Device.options <hwprof.device.Device.options>`, recreate the
    device there, as :func:`devices.resolve` takes them) and the rows stream back into ``dataset`` as batches finish;
    the driver alone writes. A batch that cannot be measured is counted in
    ``failed`` and left for a rerun.
    """
    start = time.perf_counter()
    executor_name = getattr(executor, "name", "local")
    if executor_name == "local":
        device.require_available()
    with dataset.writer():
        dataset.clean_temp_files()
        tasks = plan(archs, mode)
        settings_hash = device.settings_hash()
        done = dataset.keys()
        todo = [t for t in tasks if (t.arch_hash, t.block_key, device.name, settings_hash) not in done]
        if on_start:
            on_start(len(tasks), len(tasks) - len(todo))
        pending: list[dict] = []
        saved = [0]
        last_flush = [time.monotonic()]

        def flush() -> None:
            rows = list(pending)
            pending.clear()
            try:
                dataset.append(rows)
            except BaseException:  # not written (append removes its temp file): keep them for the next try
                pending[:0] = rows
                raise
            saved[0] += len(rows)
            last_flush[0] = time.monotonic()

        def collect(row: dict) -> None:
            pending.append(row)
            if len(pending) >= flush_rows or time.monotonic() - last_flush[0] >= flush_seconds:
                flush()

        summary = RunSummary(len(tasks), len(tasks) - len(todo), 0, 0, 0, 0.0, 0.0, 0, executor=executor_name)
        try:
            parts = _run_tasks(device, todo, protocol, collect, on_progress, reference_every_s, per_op_runs,
                               executor, device_options, batch_size, summary, prepare_workers)
        except KeyboardInterrupt:
            flush()  # every finished row is kept; a rerun resumes after them
            raise MeasurementInterrupted(saved[0], len(tasks) - len(todo)) from None
        flush()
    for stats in parts:
        summary.measured += stats.measured
        summary.e2e_rows += stats.e2e_rows
        summary.block_rows += stats.block_rows
        summary.unconverged += stats.unconverged
        summary.inference_s += stats.inference_s
        summary.build_s += stats.build_s
        summary.load_s += stats.load_s
        summary.reference_s += stats.reference_s
        summary.prepare_wait_s += stats.prepare_wait_s
        summary.failed += stats.failed
        summary.failures.extend(stats.failures)
        summary.chunks.extend(stats.chunks)
        prep = stats.preparation
        if prep is not None:
            summary.prepare_worker_s += prep.worker_s
            summary.prepared_here += prep.prepared_here
            summary.prepared_ahead += prep.prepared_ahead
            summary.prepare_workers = max(summary.prepare_workers, prep.workers)
            summary.prepare_queue = max(summary.prepare_queue, prep.queue)
            summary.timed_cores, summary.worker_cores = prep.timed_cores, prep.worker_cores
            summary.paused_rounds = (summary.paused_rounds[0] + prep.paused_rounds,
                                     summary.paused_rounds[1] + prep.rounds)
            if prep.unpicklable:
                summary.prepare_note = f"the device cannot be sent to worker processes ({prep.unpicklable})"
    summary.noise = merged([s.noise for s in parts if s.noise is not None])
    spreads = [s.reference_ms for s in parts if s.reference_ms]
    if spreads:
        summary.reference_ms = (min(s[0] for s in spreads), float(sorted(s[1] for s in spreads)[len(spreads) // 2]),
                                max(s[2] for s in spreads))
    summary.wall_s = time.perf_counter() - start
    return summary


def _run_tasks(device: Device, todo: list[Task], protocol: Protocol, collect: Callable[[dict], None],
               on_progress, reference_every_s, per_op_runs, executor, device_options, batch_size,
               summary: RunSummary, prepare_workers: int | None = 0) -> list[TaskStats]:
    """Measure ``todo`` here or through ``executor``; rows go to ``collect``; failed batches into ``summary``."""
    if getattr(executor, "name", "local") == "local":
        return [measure_tasks(device, todo, protocol, collect, on_progress, reference_every_s, per_op_runs,
                              prepare_workers)]
    parts = []
    options = device.options if device_options is None else device_options
    for batch, outcome in executor.measure(device.name, options, todo, protocol, reference_every_s, per_op_runs,
                                           batch_size, prepare_workers=prepare_workers):
        if isinstance(outcome, BaseException):
            summary.failed += len(batch)
            summary.failures.append(f"{len(batch)} task(s): {outcome}")
            continue
        rows, stats = outcome
        for row in rows:
            collect(row)
        parts.append(stats)
        if on_progress:
            for task in batch:
                on_progress(task)
    return parts


class MeasurementInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`measure_into`, after every finished row was saved.

    Attributes:
        saved: Rows written by this run.
        skipped: Rows that were already in the dataset.
    """

    def __init__(self, saved: int, skipped: int) -> None:
        super().__init__(f"interrupted: {saved} rows saved")
        self.saved = saved
        self.skipped = skipped


def measure_batch(device_name: str, device_options: dict, tasks: list[Task], protocol: Protocol,
                  reference_every_s: float | None = None, per_op_runs: int = 0,
                  prepare_workers: int | None = 0) -> tuple[list[dict], TaskStats]:
    """Measure a batch where it runs (an executor's worker): recreate the device, return the rows and counts.

    ``prepare_workers`` None: the default for this machine's cores (:func:`hwprof.prepare.default_workers`).
    """
    device = resolve(device_name, **device_options)
    device.require_available()
    rows: list[dict] = []
    stats = measure_tasks(device, tasks, protocol, rows.append, None, reference_every_s, per_op_runs,
                          prepare_workers)
    return rows, stats


def try_run(device: Device, model, name: str) -> None:
    """Load ``model`` on ``device`` and run it once, so a model that fails at run time fails before any work.

    Raises:
        HwprofError: naming the model and the runtime's first line of complaint.
    """
    session = device.load(model)
    try:
        session.run(1)
    except HwprofError:
        raise
    except Exception as exc:  # runtimes raise their own exception types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HwprofError(f"{name} fails when run on {device.label}: {first[:300]}",
                          "check --input-shape against the model's inputs, or run it in its runtime directly") \
            from None
    finally:
        session.close()


def check_output_dir(path: Path) -> None:
    """Fail early and clearly if ``path`` cannot hold a dataset: create it and write a probe file.

    Called before any measurement, so that minutes of measuring are never thrown
    away for an output directory that cannot be written.
    """
    from hwprof.io import probe_writable

    if path.exists() and not path.is_dir():
        raise HwprofError(f"output path {path} is a file", "give a directory for --out")
    try:
        probe_writable(path)
    except OSError as exc:
        raise HwprofError(f"output path {path} cannot be written ({exc.strerror or exc})",
                          "choose a writable --out directory") from None
