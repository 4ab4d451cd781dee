"""Command-line interface: the ``hwprof`` and ``nas`` typer apps.

Every command raises :class:`hwprof.errors.HwprofError` for bad input; the
entry points turn it into one line on stderr and exit code 2, in one place.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from hwprof.console import (TaskProgress, console, make_console, print_json as _print_json, say as _say, show as _show,
                            show_metrics as _show_metrics, status_printer as _status_printer)
from hwprof.errors import HwprofError
from hwprof.option_values import parse_input_shapes, parse_params

# help texts are plain text: "[[models]]" and "hwprof[litert]" must not be read as rich markup
hwprof_app = typer.Typer(
    name="hwprof",
    help="Profile neural networks on devices, fit latency predictors, and guard against slowdowns.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
nas_app = typer.Typer(
    name="nas",
    help="Hardware-aware neural architecture search: spaces, sampling, export and search.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


@hwprof_app.callback()
def _hwprof_group() -> None:
    """Profile neural networks on devices, fit latency predictors, and guard against slowdowns."""


@nas_app.callback()
def _nas_group() -> None:
    """Hardware-aware neural architecture search: spaces, sampling, export and search."""


# --- hwprof ----------------------------------------------------------------------------


@hwprof_app.command("version")
def version(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Show the hwprof version and the versions of the libraries it measures with."""
    from hwprof.api import versions

    info = versions()
    if json_out:
        _print_json(info)
    else:
        for k, v in info.items():
            console.print(f"{k:12} {v}")


@hwprof_app.command("devices")
def devices(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List devices: name, kind, simulated or real, available here, and details."""
    from devices.targets import device_detail, device_rows

    rows = device_rows()
    if json_out:
        _print_json(rows)
        return
    yes = {True: "yes", False: "no"}
    _show("Devices", "name|kind|simulated|available|details",
          [[r["name"], r["kind"], yes[r["simulated"]], yes[r["available"]], device_detail(r)] for r in rows], fold=True)


_INPUT_SHAPE_HELP = ("Input shape for models with dynamic dimensions: 1,3,224,224, or NAME=SIZES per input "
                     "(repeatable) for models with several inputs, e.g. --input-shape input_ids=1,128 "
                     "--input-shape attention_mask=1,128 (integer inputs get seeded valid token ids).")


@hwprof_app.command("measure")
def measure(
    device: Annotated[str, typer.Option("--device", "-d", help="Device name (see `hwprof devices`), NAME:DTYPE (e.g. litert-cpu:int8), or a profile .toml.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset directory (parquet parts are appended).")],
    space: Annotated[Optional[str], typer.Option("--space", "-s", help="Sample networks from this space (a name, NAME:KEY=VALUE for a space argument such as vit:gelu=tanh, or a reduced-space .json from `hwprof reduce-space`).")] = None,
    samples: Annotated[int, typer.Option("--samples", "-n", help="How many networks to sample from --space.")] = 100,
    select: Annotated[Optional[str], typer.Option(help="Which networks of --space to measure: random (default), or informative (a D-optimal design over the --from predictors' predictions: the few networks that teach a transfer predictor most; default when --from is given).")] = None,
    from_predictors: Annotated[Optional[str], typer.Option("--from", help="Comma-separated predictor files of other devices, for --select informative.")] = None,
    archs: Annotated[Optional[Path], typer.Option("--archs", help="Measure the networks in this .json/.jsonl file instead.")] = None,
    model: Annotated[Optional[list[Path]], typer.Option("--model", help="Measure this ONNX model file end to end (repeatable); a .tflite file with --device litert-cpu.")] = None,
    input_shape: Annotated[Optional[list[str]], typer.Option("--input-shape", metavar="SHAPE", help=_INPUT_SHAPE_HELP)] = None,
    mode: Annotated[str, typer.Option(help="e2e (whole networks), blocks (each distinct block once), or both.")] = "both",
    seed: Annotated[int, typer.Option(help="Seed for sampling and for simulated noise.")] = 0,
    threads: Annotated[int, typer.Option(help="Intra-op threads (real devices).")] = 1,
    opt_level: Annotated[str, typer.Option(help="onnxruntime graph optimisation: disable|basic|extended|all.")] = "all",
    fp16: Annotated[bool, typer.Option("--fp16", help="Same as --dtype float16.")] = False,
    dtype: Annotated[Optional[str], typer.Option(help="float32 (default), float16 (cpu, gpu) or int8 (cpu, openvino-cpu: static QDQ model; litert-cpu: full-integer model; both calibrated on 8 seeded inputs, recorded with every row). Also written as --device cpu:int8.")] = None,
    graph_style: Annotated[str, typer.Option(help="How networks are spelled as ONNX: hwprof (our fused-op form), torch (our torch module exported by torch.onnx.export), torch-manual (activations and pooling written out, as in the OFA code base, exported by torch), torch-timm (SE pooling as timm writes it, x.mean((2, 3)), exported by torch). Recorded with every row.")] = "hwprof",
    target_ci: Annotated[float, typer.Option(help="Stop when the median's 95% CI is within this fraction.")] = 0.02,
    min_time: Annotated[Optional[float], typer.Option(help="Seconds of inference to record at least per model (default 0.25 real, 0 simulated).")] = None,
    time_cap: Annotated[float, typer.Option(help="Seconds of inference at most per model.")] = 5.0,
    protocol_name: Annotated[Optional[str], typer.Option("--protocol", help="chunked (default on real devices: short interleaved chunks, disturbed ones left out; see --rounds) or contiguous (each model in one stretch, as earlier hwprof versions did; the default for simulated devices, and for models too large to keep --pool of them loaded).")] = None,
    rounds: Annotated[Optional[int], typer.Option( help="Time each model in this many short chunks, interleaved at random with other models and the reference network and spread over the run; chunks taken while the machine was disturbed are left out, and a model with too few quiet chunks gets more (up to 3x). Default 8 on real devices; simulated devices time each model in one stretch unless given.")] = None,
    chunk_ms: Annotated[Optional[float], typer.Option( help="Milliseconds of inference per chunk (default --min-time / --rounds, about 31 ms).")] = None,
    quiet_tol: Annotated[float, typer.Option( help="A chunk within this fraction of the quiet speed counts as quiet.")] = 0.06,
    pool: Annotated[int, typer.Option(help="Models loaded and interleaved at once (chunked protocol).")] = 12,
    drift_every: Annotated[Optional[float], typer.Option( help="Time a fixed reference network every this many seconds so predictors can correct for drift in machine speed (default 2 on real devices; 0 turns it off; simulated devices do not drift).")] = None,
    per_op: Annotated[bool, typer.Option("--per-op", help="Also break each network's and block's latency down per layer (onnxruntime's profiler on cpu/gpu, OpenVINO's performance counters on openvino-cpu, the simulator's model on simulated devices); see `hwprof report`. On cpu, kernel-rf then shares each block's latency among its kernels as the profiler saw it.")] = False,
    executor: Annotated[str, typer.Option(help="Where to measure: local (this process) or ray (the cluster's nodes that host the device; see `hwprof worker`).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster address HOST:PORT for --executor ray (default: a Ray instance on this machine).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Tasks per batch sent to a worker with --executor ray (default 16).")] = None,
    prepare_workers: Annotated[Optional[int], typer.Option(help="Processes that build, quantize, calibrate and compile the upcoming models on the cores not timing, while this one times (the timing core is pinned, times with the workers stopped and prepares beside them while they run; at most twice as many models as workers wait in their queue, and as many again that the timing core prepared). Default: one per free core, at most 4; none on a simulated chip, a single core or for fewer than 8 models. 0 prepares each model just before timing it.")] = None,
    trace: Annotated[Optional[Path], typer.Option(help="Also write every chunk the chunked protocol timed (model, round, start, median, other processes' load, whether it counted as quiet, samples) to this JSON Lines file when the run ends: how the noise verdict was reached.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON.")] = False,
) -> None:
    """Measure latency of sampled or given networks (and their blocks) into a parquet dataset.

    Rerunning the same command resumes: rows already in the dataset are skipped.
    On real devices each model is timed in short chunks, interleaved with other
    models and a reference network (--protocol chunked); chunks timed while the
    machine was disturbed are left out, each row records how disturbed it was
    (columns quiet, chunks_quiet, slowdown) and the reference's quiet latency (ref_ms, which predictors
    use to remove drift), and the run ends with a verdict on how noisy the
    machine was. `hwprof doctor --device D` checks a machine before a long run.

    With --executor ray the tasks run in batches on the Ray nodes that host the
    device (started with `hwprof worker`) and stream back into the dataset.

    Example: hwprof measure --device kirin-npu --space ofa --samples 200 --seed 0 --out runs/npu
    """
    from hwprof.measure_job import prepare_measure_job, run_measure_job
    from hwprof.profiling import MeasurementInterrupted
    from nas.spaces import get_space

    if fp16 and dtype not in (None, "float16"):
        raise HwprofError(f"--fp16 and --dtype {dtype} disagree", "give one of them")
    job = prepare_measure_job(
        device, out, space=get_space(space) if space else None, samples=samples, seed=seed, select=select,
        from_predictors=from_predictors, archs=archs, models=model or (), input_shape=parse_input_shapes(input_shape),
        mode=mode, device_options={"seed": seed, "threads": threads, "opt_level": opt_level,
                                   "dtype": "float16" if fp16 else dtype, "graph_style": graph_style},
        protocol_name=protocol_name, rounds=rounds, chunk_ms=chunk_ms, min_time_s=min_time, time_cap_s=time_cap,
        target_ci=target_ci, quiet_tol=quiet_tol, pool=pool, drift_every_s=drift_every, per_op=per_op,
        executor=executor, ray_address=ray_address, batch_size=batch_size, prepare_workers=prepare_workers,
        trace=trace, status=make_console(stderr=True).status)
    dev = job.device
    with TaskProgress(f"measuring on {dev.label}", disable=json_out) as progress:
        try:
            report, stop = run_measure_job(job, progress.start, progress.advance), None
        except MeasurementInterrupted as interrupted:
            report, stop = None, interrupted
    if stop is not None:
        sys.stderr.write(f"interrupted: {stop.saved} rows saved to {out}"
                         + (f" ({stop.skipped} were there already)" if stop.skipped else "")
                         + "; rerun the same command to resume\n")
        raise typer.Exit(130)
    if json_out:
        _print_json(report.as_dict())
        _exit_if_incomplete(report.summary)
        return
    _show(f"Measured on {dev.label}" + (" - SIMULATED latencies" if dev.simulated else "")
          + (f", graph style {dev.graph_style}" if not model else ""), "item|>value", report.table_rows())
    _print_verdict(report.summary.noise, dev.simulated)
    _exit_if_incomplete(report.summary)


def _print_verdict(noise, simulated: bool) -> None:
    """The run's one-line noise verdict, and a warning when rows could not be timed quiet."""
    from hwprof.quiet import SIMULATED_LINE

    if simulated or noise is not None:
        _say(f"noise: {SIMULATED_LINE if simulated else noise.line()}")
    if not simulated and noise is not None and noise.warning():
        sys.stderr.write(f"warning: {noise.warning()}\n")


def _exit_if_incomplete(summary) -> None:
    """Exit 1 when tasks were left unmeasured (what was measured is saved; a rerun resumes)."""
    if summary.failed:
        for line in summary.failures[:5]:
            sys.stderr.write(f"not measured: {line}\n")
        sys.stderr.write(f"{summary.failed} task(s) were not measured; rerun the same command to measure them "
                         "(rows already written are kept)\n")
        raise typer.Exit(1)


@hwprof_app.command("doctor")
def doctor(
    device: Annotated[str, typer.Option("--device", "-d", help="Device to probe (as for `hwprof measure`, e.g. cpu or litert-cpu:int8).")] = "cpu",
    seconds: Annotated[float, typer.Option(help="How long to probe (at least 5 s; 20-30 s sees swings of a few seconds).")] = 20.0,
    threads: Annotated[int, typer.Option(help="Intra-op threads (as you will measure with).")] = 1,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check whether this machine is quiet enough to measure on, before a long run.

    Times the reference network in short chunks, back to back, and reports its
    quiet latency, how often and by how much it ran slower, and over what time
    scale; other processes' CPU use, time stolen by the hypervisor, the CPU
    frequency governor, core affinity and threads; then a verdict, what
    test-retest to expect, and advice (pin, threads, what to stop).

    Example: taskset -c 0 hwprof doctor --device cpu --seconds 30
    """
    from devices import resolve
    from hwprof.doctor import probe

    dev = resolve(device, threads=threads)
    if dev.simulated:
        _say(f"{dev.label} is simulated: its noise is drawn by the simulation, not caused by this machine; "
             "nothing to probe")
        return
    with make_console(stderr=True).status(f"probing {dev.label} for {seconds:g} s") as status:
        report = probe(dev, seconds, on_progress=lambda t: status.update(f"probing {dev.label}: {t:4.1f} s"))
    if json_out:
        _print_json(report.as_dict())
        return
    _show(f"hwprof doctor: {dev.label}, {report.seconds:.0f} s probe", "item|value", report.rows())
    console.print(f"verdict: {report.verdict}", markup=False, highlight=False)
    for line in report.advice:
        console.print(f"  - {line}", markup=False, highlight=False)


@hwprof_app.command("worker")
def worker(
    devices: Annotated[str, typer.Option("--devices", help="Comma-separated devices this host measures on, e.g. cpu,kirin-npu.")],
    address: Annotated[str, typer.Option("--address", help="Ray cluster address HOST:PORT (of `ray start --head`).")],
    slots: Annotated[Optional[int], typer.Option(help="Concurrent batches per simulated device (default: CPU count); real devices always take one at a time.")] = None,
    num_cpus: Annotated[Optional[int], typer.Option(help="CPUs this node offers the cluster for other work, e.g. search scoring (default: Ray's count).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the `ray start` command instead of running it.")] = False,
) -> None:
    """Join a Ray cluster as a measurement host for the devices it has.

    The node advertises each device as the Ray custom resource
    `hwprof-device:NAME` (one unit for a physical device, so one measurement
    runs at a time on it), and `hwprof measure --executor ray` sends that
    device's work only here. Runs until stopped (Ctrl-C or `ray stop`).

    Example: ray start --head --port 6379            (on the head host)
             hwprof worker --devices cpu,kirin-npu --address HEAD:6379   (on each device host)
    """
    from hwprof.executors.ray_executor import worker_command

    command, hosted = worker_command(devices, address, slots, num_cpus)
    for line in hosted:
        make_console(stderr=True).print(line, style="dim", markup=False)
    if dry_run:
        console.print(" ".join(command), markup=False)
        return
    os.execv(command[0], command)  # this process becomes the Ray node: stopping it stops the node


@hwprof_app.command("predictors")
def predictors(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List the latency predictors that fit-predictor can train."""
    from hwprof.registry import PREDICTORS

    rows = [{"name": r["name"], "needs_blocks": bool(getattr(PREDICTORS.factory(r["name"]), "needs_blocks", False)),
             "cost_table_exact": bool(getattr(PREDICTORS.factory(r["name"]), "layer_additive", False)),
             "description": r["description"]} for r in PREDICTORS.summaries()]
    if json_out:
        _print_json(rows)
        return
    _show("Latency predictors", "name|needs block rows|exact cost table|description",
          [[r["name"], "yes" if r["needs_blocks"] else "no", "yes" if r["cost_table_exact"] else "approx.",
            r["description"]] for r in rows])


@hwprof_app.command("fit-predictor")
def fit_predictor(
    data: Annotated[list[Path], typer.Option("--data", help="Dataset directory written by `hwprof measure` (repeatable: kernel-rf learns several graph styles at once).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Predictor file to write (e.g. npu.pred).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Predictor (see `hwprof predictors`); auto: lut with a kernel-rf fallback when block rows exist, else additive; best: the lowest 5-fold cross-validated MAPE on the training networks among additive, flops-linear, gbm, kernel-rf and lut (slower: 25 fits).")] = "auto",
    test_fraction: Annotated[float, typer.Option(help="Share of networks held out to report test metrics (0: none).")] = 0.2,
    refit: Annotated[bool, typer.Option(help="After testing, refit on all networks for the saved predictor.")] = True,
    device: Annotated[Optional[str], typer.Option("--device", "-d", help="Device to use when the dataset holds several.")] = None,
    space: Annotated[Optional[str], typer.Option("--space", "-s", help="Space to use when the dataset holds several.")] = None,
    graph_style: Annotated[Optional[str], typer.Option(help="Graph style to use when the data hold several (default: all of them, for kernel-rf).")] = None,
    param: Annotated[Optional[list[str]], typer.Option("--param", help="Predictor parameter KEY=VALUE (repeatable), e.g. fallback=none for a strict lookup table.")] = None,
    transfer_from: Annotated[Optional[str], typer.Option("--transfer-from", help="Few-shot: comma-separated predictor files of other devices (same space); fits the transfer predictor from them and the few networks in --data (--param method=auto|blockwise|mixture|nearest; auto: the mixture, nearest or, where every source prices single blocks, e.g. lut, blockwise, whichever has the lowest leave-one-out error on --data. Blockwise corrections by --param levels=auto|kind+count|effect+count|effect+kind+subkind+count...: relative ones per kind, per block attribute (effect), per kind and expansion (subkind), and a fixed ms per block with an activation or SE (count); auto chooses kind+count or effect+count by leave-one-out error).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the hold-out split and the fit.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out that is not an hwprof predictor.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Fit a latency predictor to measured latencies and save it (JSON + npz / skops, no pickle).

    A new device from a handful of networks: measure 10-20 of them (`hwprof
    measure --samples 20 --from a.pred,b.pred` chooses informative ones), then
    fit with --transfer-from a.pred,b.pred.

    kernel-rf reads each network's kernels from the graph the device's runtime
    executes (onnxruntime's optimized graph on cpu), so it can learn several
    graph styles at once: give --data once per style, or one dataset holding them.

    Example: hwprof fit-predictor --data runs/npu --model kernel-rf --out npu.pred
    """
    from rich.status import Status

    from hwprof.predictors.training import fit_predictor_job

    status = Status("fitting", console=make_console(stderr=True))
    if not json_out:
        status.start()
    try:
        job = fit_predictor_job(data, out, model, test_fraction=test_fraction, refit=refit, device=device,
                                space=space, graph_style=graph_style, params=parse_params(param or []),
                                transfer_from=transfer_from, seed=seed, force=force, status=status.update)
    finally:
        status.stop()
    if json_out:
        _print_json(job.result)
        return
    for part in job.report(test_fraction, refit, out):
        if isinstance(part, tuple):
            _show_metrics(*part)
        else:
            _say(part)


@hwprof_app.command("evaluate")
def evaluate_cmd(
    predictor_path: Annotated[Path, typer.Option("--predictor", "-p", help="Predictor file from `hwprof fit-predictor`.")],
    data: Annotated[Path, typer.Option("--data", help="Dataset directory with end-to-end measurements to test on.")],
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write predicted-vs-measured scatter (PNG) here.")] = None,
    graph_style: Annotated[Optional[str], typer.Option(help="Graph style to score when the dataset holds several.")] = None,
    force: Annotated[bool, typer.Option("--force", help=FORCE_PLOT_HELP)] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Score a predictor on measured networks: RMSE, MAPE, within ±5/10%, Kendall τ, Spearman ρ.

    Example: hwprof evaluate --predictor npu.pred --data runs/npu-test --plot npu.png
    """
    from hwprof.predictors.training import evaluate_dataset, evaluation_notes

    result, predictor, measured, raw_measured = evaluate_dataset(predictor_path, data, graph_style, plot, force)
    if json_out:
        _print_json(result)
        return
    sim = " - SIMULATED device" if measured.simulated else ""
    _show_metrics(f"{predictor_path.name} on {data} ({measured.label}, {measured.space}, graph style "
                  f"{measured.graph_style}){sim}", {predictor.name: result["metrics"]})
    for line in evaluation_notes(result, predictor, measured, raw_measured):
        _say(line)


FORCE_PLOT_HELP = "Overwrite an existing --plot that hwprof did not write."


@hwprof_app.command("advise")
def advise_cmd(
    model: Annotated[Path, typer.Argument(help="ONNX model file (e.g. exported by torch.onnx.export).")],
    device: Annotated[str, typer.Option("--device", "-d", help="Device to profile on (see `hwprof devices`).")] = "cpu",
    predictor_path: Annotated[Optional[Path], typer.Option("--predictor", "-p", help="kernel-rf predictor of the device, for predicted savings.")] = None,
    fix_out: Annotated[Optional[Path], typer.Option("--fix", help="Write the model with the safe rewrites applied here, checked against the original and measured before and after.")] = None,
    tolerance: Annotated[float, typer.Option(help="Largest output difference (max abs, seeded inputs) a rewrite may make.")] = 1e-4,
    input_shape: Annotated[Optional[list[str]], typer.Option("--input-shape", metavar="SHAPE", help=_INPUT_SHAPE_HELP)] = None,
    rounds: Annotated[int, typer.Option(help="Round-robin rounds when measuring before and after --fix.")] = 3,
    force: Annotated[bool, typer.Option("--force", help="Let --fix overwrite an existing file that advise did not write (never the model itself).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Where a model loses time to how its graph is spelled, and the rewrite that removes it.

    Finds decomposed h-swish/h-sigmoid chains (Add->Clip->Mul->Div), ReduceMean
    pooling over H and W, and BatchNorm left apart from its Conv; profiles the
    model per node on the device and gives each the time of its nodes plus the
    layout conversions the runtime inserts around them. --fix applies the safe
    rewrites (one HardSwish / HardSigmoid / GlobalAveragePool op, folded BN),
    refuses any that changes the outputs by more than --tolerance, and measures
    the model before and after.

    Example: hwprof advise exported.onnx --device cpu --fix fixed.onnx
    """
    from hwprof.advise import advise_model, advise_notes

    result = advise_model(model, device, predictor_path, fix_out, tolerance, rounds, parse_input_shapes(input_shape),
                          force)
    if json_out:
        _print_json(result)
        return
    label = f"{result['device']} (simulated)" if result["simulated"] else result["device"]
    predicted = result["predicted_ms"] is not None
    _show(f"{model.name} on {label}: per-node profile {result['total_ms']:.2f} ms, layout conversions "
          f"{result['layout_ms']:.2f} ms", "what|>chains|>time in its nodes, ms|>share|rewrite"
          + ("|>predicted saving, ms" if predicted else ""),
          [[f["kind"], str(f["count"]), f"{f['nodes_ms']:.3f}", f"{f['nodes_ms'] / max(result['total_ms'], 1e-9):.0%}",
            f["rewrite"], *([f"{f['predicted_saving_ms']:.3f}"] if predicted else [])] for f in result["findings"]])
    for line in advise_notes(result, fix_out, rounds):
        _say(line)


@hwprof_app.command("predict")
def predict(
    predictor_path: Annotated[Path, typer.Option("--predictor", "-p", help="Predictor file from `hwprof fit-predictor`.")],
    model: Annotated[Optional[list[Path]], typer.Option("--model", help="ONNX model file (repeatable); kernel-rf and flops-linear only.")] = None,
    arch: Annotated[Optional[Path], typer.Option("--arch", help="Architecture JSON (one network).")] = None,
    archs: Annotated[Optional[Path], typer.Option("--archs", help="Architectures, JSON Lines.")] = None,
    input_shape: Annotated[Optional[list[str]], typer.Option("--input-shape", metavar="SHAPE", help=_INPUT_SHAPE_HELP)] = None,
    graph_style: Annotated[Optional[str], typer.Option(help="For --arch/--archs: the graph style the networks will be exported in (one the predictor was fitted on; default its first).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print predictions as JSON.")] = False,
) -> None:
    """Predict latency (ms) of networks or ONNX models on the predictor's device, without running them.

    kernel-rf reads an ONNX model's kernels from the graph the device's runtime
    executes (onnxruntime's optimized graph on cpu), so unfused activation
    chains, ReduceMean pooling and layout conversions are priced as they run.

    Example: hwprof predict --predictor npu.pred --archs archs.jsonl
    """
    from hwprof.api import predict_files

    doc = predict_files(predictor_path, model or (), arch, archs, parse_input_shapes(input_shape), graph_style)
    if json_out:
        _print_json(doc)
        return
    _show(f"{doc['predictor']} predictions for {doc['device']}" + (" (SIMULATED device)" if doc["simulated"] else "")
          + (f", graph style {doc['graph_style']}" if doc["graph_style"] else ""), "network|>predicted ms",
          [[r["name"], f"{r['predicted_ms']:.3f}"] for r in doc["predictions"]])
    for r in doc["predictions"]:
        if r.get("extrapolates"):
            _say(f"note: {r['name']} extrapolates: {'; '.join(r['extrapolates'])}. Its prediction is a "
                 "guess beyond the training data; measure networks like it and refit to price it.")


_PROFILE_OPTIONS_HELP = {
    "data": "Dataset from `hwprof measure` (default: measure a sample now, into OUT/data).",
    "samples": "Networks to measure when --data is not given (default: 1000 on simulated devices, 300 on real ones).",
}


@hwprof_app.command("profile-space")
def profile_space_cmd(
    space: Annotated[str, typer.Option("--space", "-s", help="Search space (see `nas spaces`; NAME:KEY=VALUE sets an argument, e.g. vit:gelu=tanh), or a reduced-space .json.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report directory.")],
    device: Annotated[Optional[str], typer.Option("--device", "-d", help="Device (see `hwprof devices`); NAME:DTYPE for int8, e.g. litert-cpu:int8.")] = None,
    compare: Annotated[Optional[str], typer.Option("--compare", help="Profile on several targets (comma-separated devices) and print their block-choice rankings side by side with the Kendall tau between every pair; each target's sample goes to OUT/<target>/data (resumable).")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help=_PROFILE_OPTIONS_HELP["data"])] = None,
    samples: Annotated[Optional[int], typer.Option(help=_PROFILE_OPTIONS_HELP["samples"])] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap refits for the 95% intervals.")] = 30,
    top: Annotated[int, typer.Option(help="Choices shown at each end of the ranking.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the sample and the bootstrap.")] = 0,
    executor: Annotated[str, typer.Option(help="Where to measure the sample: local or ray (see `hwprof measure --help`).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster address HOST:PORT for --executor ray.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Rank a space's block choices by what they cost on a device, from end-to-end latencies (Mills et al.).

    Fits per-(position, choice) contributions to whole-network latencies, with
    bootstrap intervals, and compares them with directly measured block
    latencies where the data has them (Kendall tau over all positions and
    choices, within each position, and of the choice ranking). Writes
    blocks.csv, heatmap.png, report.md and profile.json to --out.

    Example: hwprof profile-space --space ofa --device kirin-npu --out report/
    """
    from hwprof.space_profile import profile_space_job
    from nas.spaces import get_space

    job = profile_space_job(get_space(space), out, device, compare, data, samples, bootstrap, top, seed, executor,
                            ray_address, status=_status_printer(json_out))
    if json_out:
        _print_json(job.doc)
        return
    for part in job.parts:
        if isinstance(part, str):
            _say(part)
        else:
            console.print(part)


@hwprof_app.command("reduce-space")
def reduce_space_cmd(
    space: Annotated[str, typer.Option("--space", "-s", help="Search space to reduce (see `nas spaces`; NAME:KEY=VALUE sets an argument, e.g. vit:gelu=tanh).")],
    device: Annotated[str, typer.Option("--device", "-d", help="Device to reduce it for (see `hwprof devices`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Reduced-space JSON file to write (e.g. reduced.json).")],
    data: Annotated[Optional[Path], typer.Option("--data", help="Dataset from `hwprof measure` (default: measure a sample now, into OUT's name without .json + '-data').")] = None,
    samples: Annotated[Optional[int], typer.Option(help=_PROFILE_OPTIONS_HELP["samples"])] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap refits for the profile's intervals.")] = 30,
    seed: Annotated[int, typer.Option(help="Seed of the sample and the bootstrap.")] = 0,
    by: Annotated[str, typer.Option(help="What a choice gives: score (its additive contribution to --estimator's score over the profiled networks) or capacity (the MACs and parameters it adds).")] = "score",
    estimator: Annotated[str, typer.Option(help="Estimator for --by score: the one your search will use (see `nas estimators`).")] = "synflow",
    executor: Annotated[str, typer.Option(help="Where to measure the sample: local or ray (see `hwprof measure --help`).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster address HOST:PORT for --executor ray.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out that is not a reduced space.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Drop the block choices that are dominated on a device: slow for what they give.

    Profiles the space from end-to-end latencies (as `hwprof profile-space`),
    then at each position drops every choice that another choice beats: no more
    latency added on this device, and no less given — to the score of the
    estimator your search will use (--by score, fitted over the profiled
    networks the same way as their latency), or in MACs and parameters
    (--by capacity). Depth (skip) and input resolution stay searchable. The
    result is a JSON file that `--space` accepts wherever a space name is
    accepted.

    Example: hwprof reduce-space --space ofa --device kirin-npu --out reduced.json
             nas search --space reduced.json --target kirin-npu --predictor npu.pred
    """
    from nas.space_reduction import reduce_space_job

    job = reduce_space_job(space, device, out, data=data, samples=samples, bootstrap=bootstrap, seed=seed, by=by,
                           estimator=estimator, executor=executor, ray_address=ray_address, force=force,
                           status=_status_printer(json_out))
    doc, dev, sp, profile, reduced, why = job.doc, job.device, job.space, job.profile, job.reduced, job.dropped
    judged_by = doc["judged_by"]
    if json_out:
        _print_json(doc | {"file": str(out)})
        return
    sim = " - SIMULATED device" if dev.simulated else ""
    _show(f"{sp.name} reduced for {dev.label}{sim} ({profile.networks} networks profiled; "
          f"gain judged by {judged_by.split(':')[0]})", "position|kept|dropped (dominated by)",
          [[v.name, ", ".join(v.labels[j] for j in m),
            ", ".join(f"{d['dropped']} ({d['by']})" for d in why.get(v.name, [])) or "-"]
           for v, m in zip(reduced.variables, reduced.mask) if v.kind == "layer"])
    console.print(f"space size 10^{doc['base_size_log10']} -> 10^{doc['size_log10']}; written to {out}")
    console.print(f"search it: nas search --space {out} --target {dev.name} ...")


@hwprof_app.command("report")
def report(
    run: Annotated[Path, typer.Argument(help="Dataset directory measured with `hwprof measure --per-op`.")],
    arch: Annotated[Optional[str], typer.Option("--arch", help="Only networks whose arch hash starts with this, or whose ONNX file name contains it.")] = None,
    top: Annotated[int, typer.Option(help="How many of the most expensive layers to list per network.")] = 10,
    max_models: Annotated[int, typer.Option(help="Report at most this many networks.")] = 5,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write a bar chart (PNG) of the top layers here.")] = None,
    force: Annotated[bool, typer.Option("--force", help=FORCE_PLOT_HELP)] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Where the time goes: the most expensive layers (fused kernels) of measured networks.

    Layers are the kernels the kernel-rf predictor uses (Conv+BN+activation is
    one). Time the runtime spends in nodes it inserted (e.g. onnxruntime's
    layout conversions) is listed as such; layers the runtime fused into a
    neighbour (e.g. a residual Add) show 0 ms.

    Example: hwprof measure --device cpu --model net.onnx --per-op --out runs/net && hwprof report runs/net --plot net.png
    """
    from hwprof.report import report_job

    models, shown = report_job(run, arch, top, max_models, plot, force)
    if json_out:
        _print_json({"run": str(run), "networks": len(models), "shown": [m.as_dict(top) for m in shown],
                     "plot": str(plot) if plot else None})
        return
    for m in shown:
        sim = " - SIMULATED device" if m.simulated else ""
        _show(f"{m.name} on {m.device}{sim}: {m.e2e_ms:.3f} ms end to end (median)",
              ">#|layer|kind|>ms|>share|>cumulative", m.table_rows(top), caption=m.caption())
        console.print("by kernel type: " + ", ".join(f"{t} {ms:.3f} ms ({ms / m.e2e_ms:.0%})"
                                                       for t, ms in m.by_type().items() if ms > 0))
    if len(models) > len(shown):
        console.print(f"{len(models) - len(shown)} more network(s) in {run}: select with --arch or raise --max-models")
    if plot is not None:
        console.print(f"bar chart written to {plot}")


@hwprof_app.command("bench")
def bench(
    suite: Annotated[Path, typer.Argument(help="Benchmark suite TOML: [[models]] (arch or onnx) and [[devices]].")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Results JSON to write (raw samples, statistics, host).")],
    baseline: Annotated[Optional[Path], typer.Option("--baseline", help="Baseline suite (e.g. from the base branch) to measure interleaved with SUITE.")] = None,
    baseline_out: Annotated[Optional[Path], typer.Option("--baseline-out", help="Results JSON for --baseline.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of simulated devices' noise.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out/--baseline-out that is not an hwprof results file.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the results summary as JSON.")] = False,
) -> None:
    """Measure a benchmark suite and write a results file for `hwprof compare`.

    With --baseline, both suites are measured interleaved, round by round, so
    machine drift hits both alike (recommended on shared CI runners).

    Example: hwprof bench bench.toml --out current.json --baseline ../base/bench.toml --baseline-out base.json
    """
    from hwprof.benchsuite import bench_job

    with make_console(stderr=True).status("measuring") as status:
        doc = bench_job(suite, out, baseline, baseline_out, seed, force,
                        on_item=lambda m, d: status.update(f"measuring {m} on {d}"))
    rows = [{k: r[k] for k in ("model", "device", "simulated", "median_ms", "p10_ms", "p90_ms", "n")}
            for r in doc["results"]]
    if json_out:
        _print_json({"out": str(out), "results": rows})
        return
    _show(f"hwprof bench {doc['suite']}", "model|device|>median ms|>p10-p90 ms|>samples",
          [[r["model"], r["device"] + (" (simulated)" if r["simulated"] else ""), f"{r['median_ms']:.3f}",
            f"{r['p10_ms']:.3f}-{r['p90_ms']:.3f}", str(r["n"])] for r in rows])
    console.print(f"results written to {out}")


@hwprof_app.command("compare")
def compare(
    baseline: Annotated[Path, typer.Argument(help="Baseline results JSON (from `hwprof bench`).")],
    current: Annotated[Path, typer.Argument(help="Current results JSON.")],
    threshold: Annotated[float, typer.Option(help="Smallest relative change of the median that counts.")] = 0.05,
    alpha: Annotated[float, typer.Option(help="Significance level of the test (Wilcoxon signed-rank for interleaved runs, else Mann-Whitney U).")] = 0.01,
    json_out: Annotated[bool, typer.Option("--json", help="Print verdicts as JSON.")] = False,
) -> None:
    """Tell real slowdowns from noise: exit 3 if any (model, device) regressed, else 0.

    A change counts when it is significant (runs measured interleaved with
    `hwprof bench --baseline`: a Wilcoxon signed-rank test on the ratios of
    the two runs' medians round by round, so a neighbour that came and went
    cancels; runs measured apart: a Mann-Whitney U test on the rounds'
    medians), the bootstrap 95% CI of the ratio excludes 1, and the ratio is
    beyond 1 ± threshold.

    Example: hwprof compare base.json current.json --threshold 0.05
    """
    from hwprof.benchsuite import load_results
    from hwprof.regression import REGRESSION, compare_results

    rows = compare_results(load_results(baseline), load_results(current), threshold, alpha,
                           (str(baseline), str(current)))
    regressions = sum(r["verdict"] == REGRESSION for r in rows)
    if json_out:
        _print_json({"threshold": threshold, "alpha": alpha, "regressions": regressions, "pairs": rows})
    else:
        colours = {"regression": "red", "improvement": "green", "no change": "dim"}
        _show(f"hwprof compare (threshold {threshold:.0%}, alpha {alpha})",
              "model|device|>baseline ms|>current ms|>ratio|>95% CI|>p|judged on|verdict",
              [[escape(r["model"]), r["device"] + (" (simulated)" if r["simulated"] else ""),
                f"{r['baseline_median_ms']:.3f}", f"{r['current_median_ms']:.3f}", f"{r['ratio']:.3f}",
                f"{r['ci_low']:.3f}-{r['ci_high']:.3f}", f"{r['p_value']:.2g}", r["judged_on"],
                f"[{colours[r['verdict']]}]{r['verdict']}[/]"] for r in rows], escape_cells=False)
        console.print(f"{regressions} regression(s) in {len(rows)} pair(s)")
    if regressions:
        raise typer.Exit(3)


# --- nas -------------------------------------------------------------------------------


@nas_app.command("spaces")
def spaces(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List the search spaces: name, number of architectures, layers, description."""
    from nas.spaces import get_space, space_names

    infos = [get_space(name).info() for name in space_names()]
    if json_out:
        _print_json(infos)
        return
    _show("Search spaces", "name|architectures|layers|description",
          [[i["name"], f"{i['size']:.2e}", str(i["layers"]), i["description"]] for i in infos])


@nas_app.command("sample")
def sample(
    space: Annotated[str, typer.Option("--space", "-s", help="Search space name (see `nas spaces`; NAME:KEY=VALUE sets an argument, e.g. vit:gelu=tanh), or a reduced-space .json.")],
    n: Annotated[int, typer.Option("-n", "--num", help="How many networks to draw (>= 1).")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same networks.")] = 0,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the networks as JSON Lines.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out that is not an architecture file.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the networks as JSON Lines.")] = False,
) -> None:
    """Draw random networks from a search space.

    Example: nas sample --space ofa -n 10 --seed 0 --out archs.jsonl
    """
    from nas.arch_files import sample_archs, sample_rows
    from nas.spaces import get_space

    sp = get_space(space)
    with make_console(stderr=True).status(f"sampling {n} networks from {space}") as status:
        archs = sample_archs(sp, n, seed, out, force, status.update, inputs=[space])
    if json_out:
        sys.stdout.write("".join(a.to_json() + "\n" for a in archs))
        return
    _show(f"{n} networks from '{space}' (seed {seed})", "hash|resolution|blocks|MMACs|Mparams|choices",
          sample_rows(sp, archs), fold=True)
    if out is not None:
        console.print(f"wrote {n} networks to {out}")


@nas_app.command("import")
def import_(
    config_file: Annotated[Path, typer.Argument(help="Subnet config from another tool (JSON).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Architecture JSON to write.")],
    source: Annotated[str, typer.Option("--from", help="Format of the config: ofa (Once-for-All ks/e/d/r).")] = "ofa",
    width_mult: Annotated[Optional[float], typer.Option(help="OFA width multiplier (default: the config's w, else 1.0).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out that is not an architecture file.")] = False,
) -> None:
    """Import a network from another tool's config (Once-for-All subnet configs).

    Example: nas import --from ofa subnet.json --out arch.json
    """
    from nas.arch_files import import_config

    arch = import_config(config_file, out, source, width_mult, force)
    console.print(f"{arch.hash}: {arch.macs / 1e6:.1f} MMACs, {arch.params / 1e6:.2f} M params, "
                  f"{arch.resolution}px -> {out}")


@nas_app.command("export")
def export(
    arch_file: Annotated[Path, typer.Argument(help="Architecture file: .json (one) or .jsonl (many).")],
    onnx_out: Annotated[Optional[Path], typer.Option("--onnx", help="Output .onnx file, or a directory for many networks.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="onnx, or ofa (Once-for-All subnet configs, to --out).")] = "onnx",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="With --format ofa: output .json (one) or .jsonl (many).")] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="Use float16 inputs and weights.")] = False,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Trained weights (.safetensors state dict of the torch module hwprof builds for this arch) to write into hwprof's graph form; one network only.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing output files that hwprof did not export.")] = False,
) -> None:
    """Export networks to ONNX (opset 17, batch 1, valid under onnx.checker) or to OFA subnet configs.

    With --weights the trained torch weights go into hwprof's fused-op graph form,
    the form hwprof measured, instead of the seeded placeholder weights.

    Example: nas export archs.jsonl --onnx onnx/   (one file per network, named by hash)
    Example: nas export best.json --onnx best.onnx --weights trained.safetensors
    Example: nas export best.json --format ofa --out best-ofa.json
    """
    from rich.progress import track

    from nas.arch_files import FEW, export_archs

    for line in export_archs(arch_file, onnx_out, fmt, out, fp16, weights, force, progress=lambda items, n: track(
            items, description="exporting", console=console, disable=n < FEW)):
        console.print(line)


def _plugin_table(title: str, registry, json_out: bool) -> None:
    rows = registry.summaries()
    if json_out:
        _print_json(rows)
        return
    _show(title, "name|description", [[r["name"], r["description"]] for r in rows])


@nas_app.command("searchers")
def searchers(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List the searchers `nas search --searcher` accepts."""
    from hwprof.registry import SEARCHERS

    _plugin_table("Searchers", SEARCHERS, json_out)


@nas_app.command("estimators")
def estimators(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List the accuracy estimators `nas search --estimator` accepts (proxies are labelled proxies)."""
    from hwprof.registry import ESTIMATORS

    _plugin_table("Accuracy estimators", ESTIMATORS, json_out)


@nas_app.command("cross-eval")
def cross_eval_cmd(
    targets: Annotated[str, typer.Option("--targets", help="Comma-separated device tokens, NAME or NAME:DTYPE, e.g. cpu,litert-cpu:int8,openvino-cpu.")],
    space: Annotated[str, typer.Option("--space", "-s", help="Search space (see `nas spaces`; NAME:KEY=VALUE sets an argument, e.g. vit:gelu=tanh).")] = "ofa",
    budget_quantile: Annotated[float, typer.Option(help="Each target's latency budget: this quantile of 2000 random networks' predicted latency on it.")] = 0.3,
    latency_ms: Annotated[Optional[list[str]], typer.Option("--latency-ms", help="A target's budget in ms instead, TARGET=MS (repeatable).")] = None,
    predictor: Annotated[Optional[list[str]], typer.Option("--predictor", help="A target's predictor file instead of the cached default, TARGET=FILE (repeatable; checked to be fitted for that device, its dtype and the space).")] = None,
    searcher: Annotated[str, typer.Option(help="Searcher (see `nas searchers`).")] = "evolutionary",
    estimator: Annotated[str, typer.Option(help="Accuracy estimator (see `nas estimators`); synflow is a proxy.")] = "synflow",
    budget: Annotated[int, typer.Option(help="Networks each search scores.")] = 400,
    seeds: Annotated[int, typer.Option(help="Searches per target (seeds --seed, --seed+1, ...).")] = 1,
    seed: Annotated[int, typer.Option(help="First seed.")] = 0,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory; rerunning the same command resumes.")] = Path("runs/xeval"),
    executor: Annotated[str, typer.Option(help="Where measurements run: local, or ray (on the hosts that have each device; see `hwprof worker`).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster address HOST:PORT for --executor ray.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Search for each target, measure every winner on every target: is each network best where it was searched for?

    Writes matrix.csv (one row per seed, searched-for and measured-on target),
    matrix.png (heatmap of measured latency over each column's budget) and
    summary.json (budgets, and per target how often its own winner meets its
    budget and wins or ties its column). Predictors come from the cache (built
    on first use, as `nas search` does) unless --predictor gives a target's
    file (e.g. one fitted with `hwprof fit-predictor` on more measurements).

    Example: nas cross-eval --space ofa --targets cpu,litert-cpu:int8,openvino-cpu --budget-quantile 0.3 --out runs/xeval
    """
    from nas.cross_eval import cross_eval_job, summary_table

    summary = cross_eval_job(space, targets, out, budget_quantile, latency_ms or (), predictor or (), searcher,
                             estimator, budget, seeds, seed, executor, ray_address, status=_status_printer(json_out))
    if json_out:
        _print_json(summary)
    else:
        console.print(summary_table(summary))
        console.print(f"wrote {summary['files']['matrix_csv']}, {summary['files']['matrix_png']}, {out / 'summary.json'}")


@nas_app.command("search")
def search(
    target: Annotated[str, typer.Option("--target", "-t", help="Device to search for (see `hwprof devices`).")],
    space: Annotated[str, typer.Option("--space", "-s", help="Search space (see `nas spaces`; NAME:KEY=VALUE sets an argument, e.g. vit:gelu=tanh), or a reduced-space .json from `hwprof reduce-space`.")] = "ofa",
    latency_ms: Annotated[Optional[float], typer.Option("--latency-ms", help="Latency constraint in ms; omit for the whole Pareto front (single-path needs it).")] = None,
    searcher: Annotated[str, typer.Option(help="random | evolutionary | hurricane | single-path (see `nas searchers`).")] = "evolutionary",
    estimator: Annotated[str, typer.Option(help="synflow | naswot (zero-cost proxies), predictor, train (see `nas estimators`); single-path scores with its supernet instead.")] = "synflow",
    predictor_path: Annotated[Optional[Path], typer.Option("--predictor", help="Latency predictor file; omit to use (or build and cache) one for this target and space.")] = None,
    accuracy_data: Annotated[Optional[Path], typer.Option(help="CSV/JSONL of (arch, accuracy) pairs for --estimator predictor.")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="Image folder DIR/<class>/<image> for --estimator train and single-path; single-path without it trains on scikit-learn's digits.")] = None,
    budget: Annotated[int, typer.Option(help="Distinct networks to score (not single-path: see --epochs).")] = 400,
    epochs: Annotated[Optional[int], typer.Option(help="single-path: supernet training epochs (default 8).")] = None,
    scale: Annotated[Optional[bool], typer.Option("--scale/--no-scale", help="Compound-scale the found network up to the constraint (default: on for single-path).")] = None,
    postprocess: Annotated[Optional[bool], typer.Option("--postprocess/--no-postprocess", help="Add SE / h-swish where they fit and help (default: on for single-path).")] = None,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same result.")] = 0,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output directory (default runs/search-SPACE-TARGET).")] = None,
    param: Annotated[Optional[list[str]], typer.Option("--param", help="Searcher setting KEY=VALUE (repeatable), e.g. population=50.")] = None,
    executor: Annotated[str, typer.Option(help="Where candidates are scored: local, or ray (fanned out over the cluster's workers; same result for the same seed).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster address HOST:PORT for --executor ray (default: a Ray instance on this machine).")] = None,
    shrink: Annotated[bool, typer.Option("--shrink", help="evolutionary: progressive space shrinking (GoldenNAS): drop choices whose networks stay dominated; summary.json lists what was removed.")] = False,
    measure_best: Annotated[bool, typer.Option("--measure/--no-measure", help="Measure the best network on the target at the end.")] = True,
    graph_style: Annotated[str, typer.Option(help="The graph form you will ship: hwprof (our fused-op ONNX), torch (our torch module exported by torch), torch-manual (activations written out, as in the OFA code), torch-timm (SE pooling as timm writes it). Latency is predicted and verified in this form.")] = "hwprof",
    fix: Annotated[Optional[list[str]], typer.Option("--fix", help="Hold a space variable at one value, NAME=VALUE (repeatable), e.g. resolution=224. Variables the estimator cannot judge are held anyway (resolution for the zero-cost proxies and train: at 224 on ImageNet spaces); the summary lists what was held and why.")] = None,
    few_shot: Annotated[Optional[int], typer.Option("--few-shot", help="Bring up a new target from N measured networks: measure N informative networks on it, fit a transfer predictor from --transfer-from, search, measure the winner.")] = None,
    transfer_from: Annotated[Optional[str], typer.Option("--transfer-from", help="Comma-separated predictor files of other devices (same space), for --few-shot.")] = None,
    recalibrate: Annotated[Optional[int], typer.Option("--recalibrate", help="With --few-shot and --latency-ms: after the search, measure this many of the best-scoring networks predicted within 15% of the target, refit the predictor with them and choose the winner again (a few-shot predictor's error near the target is shared by the networks there). Default 5; 0: off.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Search a space for accurate networks that are fast on a target device.

    Writes best.json, best.onnx, pareto.csv, history.parquet, pareto.png and
    summary.json to --out, then measures the best network on the target.
    Single-path search (S3NAS) trains a supernet instead of scoring samples,
    adds training.csv/training.png, then scales the network up to the
    constraint and adds SE / h-swish where they pay on the target (the network
    before those steps is kept as searched.json/searched.onnx).

    Examples:
      nas search --space ofa --target kirin-npu --latency-ms 4
      nas search --space ofa --target kirin-npu --shrink
      nas search --space reduced.json --target kirin-npu   (from `hwprof reduce-space`)
      nas search --target NEW --few-shot 20 --transfer-from a.pred,b.pred --latency-ms 40   (a new device)
      nas search --searcher single-path --space s3nas --target kirin-npu --latency-ms 4 --epochs 8

    Exit status: 0 when the search ran, also when the winner, measured on the
    target, is over --latency-ms (a warning line on stderr says by how much, and
    summary.json has best.meets_constraint_measured false); 2 for bad input.
    """
    from nas.search_job import run_search_job

    job = run_search_job(target, space, latency_ms=latency_ms, searcher=searcher, estimator=estimator,
                         predictor_path=predictor_path, accuracy_data=accuracy_data, data=data, budget=budget,
                         epochs=epochs, scale=scale, postprocess=postprocess, seed=seed, out=out,
                         params=parse_params(param or []), executor=executor, ray_address=ray_address,
                         shrink=shrink, measure_best=measure_best, graph_style=graph_style, fix=fix,
                         few_shot=few_shot, transfer_from=transfer_from, recalibrate=recalibrate,
                         console=make_console(stderr=True), quiet=json_out)
    if json_out:
        _print_json({**job.summary, "extra": {k: v for k, v in job.summary["extra"].items() if k != "training_curve"}})
    else:
        console.print(job.table())
    if job.warning():
        sys.stderr.write(job.warning() + "\n")


# --- entry points ----------------------------------------------------------------------


def _run(app: typer.Typer) -> None:
    # Standalone mode handles --help, usage errors (exit 2) and typer.Exit;
    # our own exception is the one thing left to turn into a clean exit.
    try:
        app()
    except HwprofError as exc:
        sys.stderr.write(f"error: {exc.one_line()}\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


def hwprof_main() -> None:
    """Console entry point of ``hwprof``."""
    _run(hwprof_app)


def nas_main() -> None:
    """Console entry point of ``nas``."""
    _run(nas_app)
