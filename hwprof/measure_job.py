"""``hwprof measure`` as two calls of the Python API: prepare (every input checked, nothing measured yet), run.

:func:`prepare_measure_job` resolves the target once into its
:class:`~hwprof.device.Device`, chooses the networks, builds the protocol from
the device's defaults and the options, and checks everything a run needs —
a model the device cannot run, a mode, a per-op breakdown the device cannot
give, the output directory, a corrupt dataset, a second writer — so bad input
fails before any work and leaves nothing behind. :func:`run_measure_job`
measures (resumably) and returns a :class:`MeasureReport` the command prints.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from hwprof.dataset import Dataset
from hwprof.device import Device
from hwprof.errors import HwprofError
from hwprof.protocol import Protocol


@dataclass
class MeasureJob:
    """A checked ``hwprof measure`` run, ready to start (see :func:`prepare_measure_job`).

    Attributes:
        device: The resolved target.
        dataset: Where rows go (its writer lock is held).
        networks: Architectures or external models to measure.
        mode: ``e2e``, ``blocks`` or ``both``.
        protocol: The measurement protocol.
        reference_every_s: Drift reference period (None: off).
        per_op_runs: Profiled runs per model for the per-layer breakdown (0: none).
        runner: The executor (local or ray).
        device_options: How workers re-create the device.
        batch_size: Tasks per batch for a remote executor.
        chosen: How the networks were chosen from a space, for the summary (None: given).
        prepare_workers: Processes preparing upcoming models off the timed core (None: the default where the
            device is, for the models left to measure; see :func:`hwprof.prepare.default_workers`).
        trace_path: Where to write every timed chunk as JSON Lines when the run ends (None: not written).
    """

    device: Device
    dataset: Dataset
    networks: list
    mode: str
    protocol: Protocol
    reference_every_s: float | None
    per_op_runs: int
    runner: Any
    device_options: dict[str, Any]
    batch_size: int | None = None
    chosen: str | None = None
    prepare_workers: int | None = None
    trace_path: Path | None = None


TRACE_KEYS = {"chunk", "round", "model", "median_ms"}  # what every record of a --trace file has


@dataclass
class MeasureReport:
    """What a measure run did: its summary and this target's rows in the dataset.

    Attributes:
        job: The job that ran.
        summary: The run's :class:`~hwprof.profiling.RunSummary`.
        dataset_rows: Rows the dataset holds for this device and settings.
        e2e_ms: Their end-to-end medians, ms.
    """

    job: MeasureJob
    summary: Any
    dataset_rows: int = 0
    e2e_ms: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the target, the dataset and the run summary (with its noise verdict)."""
        dev = self.job.device
        return {"device": dev.name, "simulated": dev.simulated, "out": str(self.job.dataset.path),
                **self.summary.as_dict()}

    def table_rows(self) -> list[tuple[str, str]]:
        """(item, value) rows of the summary table ``hwprof measure`` prints."""
        s, dev = self.summary, self.job.device
        rows = [("networks chosen", self.job.chosen)] if self.job.chosen else []
        rows += [("measured now", str(s.measured)), ("already in dataset (skipped)", str(s.skipped)),
                 ("e2e / block rows added", f"{s.e2e_rows} / {s.block_rows}"),
                 ("not converged to target CI", str(s.unconverged))]
        if self.e2e_ms:
            e2e = self.e2e_ms
            rows.append(("e2e median latency, ms (min / median / max)",
                         f"{min(e2e):.2f} / {statistics.median(e2e):.2f} / {max(e2e):.2f}"))
        if s.reference_ms:
            low, mid, high = s.reference_ms
            rows.append(("reference network, ms (min / median / max)",
                         f"{low:.2f} / {mid:.2f} / {high:.2f} (speed varied {(high - low) / mid:.0%})"))
        rows += [("inference time recorded, s", f"{s.inference_s:.2f}"), ("wall time, s", f"{s.wall_s:.2f}")]
        if not dev.simulated and s.wall_s > 0:
            if s.prepare_workers:
                rows.append(("  of which waiting for prepared models / preparing here / loading them, s",
                             f"{s.prepare_wait_s:.2f} / {s.build_s:.2f} / {s.load_s:.2f}"))
            else:
                rows.append(("  of which building / loading models, s", f"{s.build_s:.2f} / {s.load_s:.2f}"))
            if s.reference_s:
                rows.append(("  of which drift reference, s", f"{s.reference_s:.2f}"))
            rows.append(("  of which everything else, s", f"{s.other_s:.2f}"))
        rows.append(("dataset", f"{self.job.dataset.path} ({self.dataset_rows} rows for {dev.label})"))
        if self.job.trace_path is not None:
            rows.append(("chunk trace", f"{self.job.trace_path} ({len(s.chunks)} chunks)"))
        if s.prepare_workers:
            where = ("sharing the timed core (no free core; timing not pinned)" if not s.worker_cores
                     else f"on core(s) {_cores(s.worker_cores)}, timing "
                     + (f"pinned to {_cores(s.timed_cores)}" if s.timed_cores else "not pinned"))
            rows.append(("models prepared ahead", f"{s.prepare_workers} worker(s) {where}, at most "
                                                  f"{s.prepare_queue} in the queue; {s.prepare_worker_s:.2f} s of "
                                                  "preparing overlapped with timing"
                                                  + (f"; {s.prepared_here} prepared here rather than wait for a "
                                                     "worker" if s.prepared_here else "")
                                                  + (f"; {s.prepared_ahead} prepared here beside the running "
                                                     "workers rather than time disturbed chunks"
                                                     if s.prepared_ahead else "")))
            stopped, rounds = s.paused_rounds
            if rounds:
                rows.append(("  workers stopped for quiet rounds", f"{stopped} of {rounds} rounds (the chunks timed "
                                                                   "beside running workers count as disturbed)"))
        elif s.prepare_note:
            rows.append(("models prepared ahead", f"none: {s.prepare_note}; prepared before timing each"))
        if s.timed_cores and not s.prepare_workers:
            rows.append(("timing pinned to core(s)", _cores(s.timed_cores)))
        if s.executor != "local":
            rows.append(("executor", s.executor))
        return rows


def _cores(cores: list[int]) -> str:
    return ",".join(str(c) for c in cores)


def prepare_measure_job(device: str, out: str | Path, *, space=None, samples: int = 100, seed: int = 0,
                        select: str | None = None, from_predictors: str | None = None,
                        archs: str | Path | None = None, models: Sequence[str | Path] = (), input_shape=None,
                        mode: str = "both", device_options: dict[str, Any] | None = None,
                        protocol_name: str | None = None, rounds: int | None = None, chunk_ms: float | None = None,
                        min_time_s: float | None = None, time_cap_s: float = 5.0, target_ci: float = 0.02,
                        quiet_tol: float = 0.06, pool: int = 12, drift_every_s: float | None = None,
                        per_op: bool = False, executor: str = "local", ray_address: str | None = None,
                        batch_size: int | None = None, prepare_workers: int | None = None,
                        trace: str | Path | None = None, status: Callable[[str], Any] | None = None) -> MeasureJob:
    """Check every input of a measure run and get it ready; nothing is measured and, on bad input, nothing written.

    Args:
        device: Target token (``cpu``, ``cpu:int8``, ``kirin-npu``, a profile ``.toml``).
        out: Dataset directory.
        space: A search-space object to sample ``samples`` networks from (exactly one of space, archs, models).
        samples: Networks to sample from ``space``.
        seed: Seed of the sampling (and of simulated noise, via ``device_options``).
        select: ``random`` or ``informative`` (see :func:`hwprof.predictors.transfer.sample_networks`).
        from_predictors: Comma-separated predictor files for ``informative``.
        archs: An architecture file to measure instead.
        models: ONNX (or ``.tflite``) files to measure end to end instead.
        input_shape: Static input shapes for models with dynamic dimensions.
        mode: ``e2e``, ``blocks`` or ``both``.
        device_options: Device settings (``seed``, ``threads``, ``opt_level``, ``dtype``, ``graph_style``).
        protocol_name, rounds, chunk_ms, min_time_s, time_cap_s, target_ci, quiet_tol, pool: The protocol
            (None: the device's default; see :func:`hwprof.protocol.measurement_protocol`).
        drift_every_s: Drift reference period (None: the device's default; 0: off).
        per_op: Also break latency down per layer.
        executor, ray_address, batch_size: Where to measure.
        prepare_workers: Processes that build, quantize and compile upcoming models off the timed core
            (:mod:`hwprof.prepare`; None: one per free core, at most 4, none on a simulated chip or for
            fewer than 8 models; with ray, each node's own default).
        trace: Also write every chunk the chunked protocol timed (model, round, times, median, other
            processes' load, whether it was classified quiet, samples) to this JSON Lines file when the run
            ends: how the run's noise verdict was reached, readable with ``pandas.read_json(lines=True)``.
        status: Shows a line while networks are chosen (a context manager factory, e.g. a spinner).

    Raises:
        HwprofError: naming the bad input and what to do.
    """
    import contextlib

    from devices import resolve
    from hwprof.executors import executor_from_options
    from hwprof.io import read_archs
    from hwprof.prepare import check_workers
    from hwprof.profiling import check_output_dir, plan
    from hwprof.protocol import measurement_protocol

    if samples < 1:
        raise HwprofError(f"--samples must be at least 1, got {samples}", "ask for one or more networks")
    if sum(x is not None and x not in ([], ()) for x in (space, archs, models or None)) != 1:
        raise HwprofError("give exactly one of --space, --archs or --model", "e.g. --space ofa --samples 100")
    options = dict(device_options or {})
    dev = resolve(device, **dict(options))
    if batch_size is not None and batch_size < 1:
        raise HwprofError(f"--batch-size must be at least 1, got {batch_size}", "e.g. --batch-size 16")
    check_workers(prepare_workers)
    runner = executor_from_options(executor, ray_address)
    if runner.name == "local":
        dev.require_available()  # with ray the device is on the workers, not necessarily here
    chosen = None
    if models:
        from hwprof.api import to_model
        from hwprof.profiling import ExternalModel, try_run

        networks = []
        for path in models:
            proto = to_model(path, input_shape, dev)
            try_run(dev, proto, str(path))  # a model the device cannot load or run fails here, before any work
            networks.append(ExternalModel(str(path), proto))
        mode = "e2e"
    elif archs is not None:
        networks = read_archs(archs)
    else:
        from hwprof.predictors.transfer import sample_networks

        kind = select or ("informative" if from_predictors else "random")
        name = getattr(space, "spec", space.name)
        with (status or (lambda _m: contextlib.nullcontext()))(
                f"choosing {samples} networks from {name}"
                + (" (informative design over --from)" if kind == "informative" else "")):
            networks = sample_networks(space, samples, seed, select, from_predictors)
        chosen = f"{samples} from {name}, " + ("informative: a D-optimal design over the --from predictors"
                                               if kind == "informative" else f"at random (seed {seed})")
    plan(networks, mode)  # validates mode before any work
    if per_op:  # a device that cannot break latency down fails here, before any work
        from hwprof.per_op import breakdown

        first = networks[0]
        breakdown(dev, first.proto if hasattr(first, "proto") else dev.build(first), runs=1)
    protocol = measurement_protocol(dev.simulated, protocol_name, rounds, chunk_ms, min_time_s, time_cap_s,
                                    target_ci, quiet_tol, pool)
    if drift_every_s is None:
        drift_every_s = dev.reference_every_s or 0.0
    if drift_every_s < 0:
        raise HwprofError(f"--drift-every must be 0 (off) or a number of seconds, got {drift_every_s}",
                          "e.g. --drift-every 2")
    if trace is not None:
        from hwprof.outputs import guard_output, is_json_records

        if not protocol.chunked:
            raise HwprofError("--trace records the chunks of the chunked protocol, and this run times each model "
                              "in one stretch", "leave out --trace, or use --protocol chunked on a real device")
        guard_output(trace, "--trace", "chunk trace",
                     lambda p: p.stat().st_size == 0 or is_json_records(p, TRACE_KEYS))  # empty: nothing timed
    out = Path(out)
    check_output_dir(out)  # after the inputs are known good: bad input leaves nothing behind
    dataset = Dataset(out)
    dataset.keys()  # a corrupt dataset is reported before any work starts
    dataset.hold_writer()  # one writer at a time: a second run is refused here, before any work
    return MeasureJob(dev, dataset, networks, mode, protocol, drift_every_s or None, 20 if per_op else 0, runner,
                      options, batch_size, chosen, prepare_workers, Path(trace) if trace is not None else None)


def run_measure_job(job: MeasureJob, on_start: Callable[[int, int], None] | None = None,
                    on_progress: Callable[[Any], None] | None = None) -> MeasureReport:
    """Measure a prepared job into its dataset (rows already there are skipped) and report.

    Raises:
        MeasurementInterrupted: on Ctrl-C, after every finished row is saved (see :mod:`hwprof.profiling`).
    """
    from hwprof.profiling import measure_into

    try:
        summary = measure_into(job.dataset, job.device, job.networks, job.mode, job.protocol, on_start=on_start,
                               on_progress=on_progress, reference_every_s=job.reference_every_s,
                               per_op_runs=job.per_op_runs, executor=job.runner, device_options=job.device_options,
                               batch_size=job.batch_size, prepare_workers=job.prepare_workers)
    finally:
        job.runner.close()
    if job.trace_path is not None:
        write_trace(job.trace_path, summary.chunks)
    df = job.dataset.read(columns=["block_key", "median_ms", "device", "settings_hash"])
    df = df[(df["device"] == job.device.name) & (df["settings_hash"] == job.device.settings_hash())]
    return MeasureReport(job, summary, len(df), [float(x) for x in df[df["block_key"] == "e2e"]["median_ms"]])


def write_trace(path: str | Path, chunks: list[dict]) -> None:
    """Write chunk records (:meth:`hwprof.interleave.Interleaver.chunk_records`) as JSON Lines, atomically."""
    import json

    from hwprof.io import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(c) + "\n" for c in chunks))
