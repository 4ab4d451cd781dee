"""Command-line interface: the ``hwprof`` and ``nas`` typer apps.

Every command raises :class:`hwprof.errors.HwprofError` for bad input; the
entry points turn it into one line on stderr and exit code 2, in one place.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

import hwprof
from hwprof.errors import HwprofError

PIPED_WIDTH = 240  # a table written to a pipe or file (a CI log) keeps its columns whole


def make_console(stderr: bool = False) -> Console:
    """A rich console; when the output is not a terminal, as wide as a table needs (up to PIPED_WIDTH)."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty() or os.environ.get("COLUMNS"):
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=PIPED_WIDTH)


console = make_console()

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


def _print_json(obj) -> None:
    from hwprof.io import dumps

    sys.stdout.write(dumps(obj, indent=2) + "\n")


# --- hwprof ----------------------------------------------------------------------------


@hwprof_app.command("version")
def version(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Show the hwprof version and the versions of the libraries it measures with."""
    import onnx
    import onnxruntime
    import torch

    info = {"hwprof": hwprof.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
            "python": sys.version.split()[0]}
    if json_out:
        _print_json(info)
    else:
        for k, v in info.items():
            console.print(f"{k:12} {v}")


@hwprof_app.command("devices")
def devices(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List devices: name, kind, simulated or real, available here, and details."""
    from rich.markup import escape

    from hwprof.profiling import get_device
    from hwprof.registry import DEVICES

    rows = []
    for name in DEVICES.names():
        dev = get_device(name)
        available = dev.is_available()
        info = dev.info()
        rows.append({"name": name, "kind": dev.kind, "simulated": dev.simulated, "available": available,
                     "details": info if available or dev.simulated else {**info, "reason": dev.unavailable_reason()}})
    if json_out:
        _print_json(rows)
        return
    table = Table(title="Devices")
    for col in ("name", "kind", "simulated", "available", "details"):
        table.add_column(col, overflow="fold")
    for r in rows:
        d = r["details"]
        if r["simulated"]:
            detail = f"{d['imitates']} [profile {d['profile_hash']}]"
        elif r["available"]:
            detail = ", ".join(f"{k}={d[k]}" for k in ("cpu_model", "cores", "onnxruntime", "backend", "gpu_name")
                               if k in d)
        else:
            detail = d.get("reason", "")
        table.add_row(r["name"], r["kind"], "yes" if r["simulated"] else "no",
                      "yes" if r["available"] else "no", escape(detail))
    console.print(table)


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
    protocol_name: Annotated[Optional[str], typer.Option("--protocol",
        help="chunked (default on real devices: short interleaved chunks, disturbed ones left out; see --rounds) or "
             "contiguous (each model in one stretch, as earlier hwprof versions did; the default for simulated devices, and "
             "for models too large to keep --pool of them loaded).")] = None,
    rounds: Annotated[Optional[int], typer.Option(
        help="Time each model in this many short chunks, interleaved at random with other models and the reference "
             "network and spread over the run; chunks taken while the machine was disturbed are left out, and a model "
             "with too few quiet chunks gets more (up to 3x). Default 8 on real devices; simulated devices time each "
             "model in one stretch unless given.")] = None,
    chunk_ms: Annotated[Optional[float], typer.Option(
        help="Milliseconds of inference per chunk (default --min-time / --rounds, about 31 ms).")] = None,
    quiet_tol: Annotated[float, typer.Option(
        help="A chunk within this fraction of the quiet speed counts as quiet.")] = 0.06,
    pool: Annotated[int, typer.Option(help="Models loaded and interleaved at once (chunked protocol).")] = 12,
    drift_every: Annotated[Optional[float], typer.Option(
        help="Time a fixed reference network every this many seconds so predictors can correct for drift in "
             "machine speed (default 2 on real devices; 0 turns it off; simulated devices do not drift).")] = None,
    per_op: Annotated[bool, typer.Option("--per-op", help="Also break each network's and block's latency down per layer "
                                         "(onnxruntime's profiler on cpu/gpu, OpenVINO's performance counters on openvino-cpu, the simulator's model on simulated devices); "
                                         "see `hwprof report`. On cpu, kernel-rf then shares each block's latency among its kernels as the profiler saw it.")] = False,
    executor: Annotated[str, typer.Option(help="Where to measure: local (this process) or ray (the cluster's nodes that host the device; see `hwprof worker`).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster address HOST:PORT for --executor ray (default: a Ray instance on this machine).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Tasks per batch sent to a worker with --executor ray (default 16).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON.")] = False,
) -> None:
    """Measure latency of sampled or given networks (and their blocks) into a parquet dataset.

    Rerunning the same command resumes: rows already in the dataset are skipped.
    On real devices a reference network is timed between tasks (--drift-every)
    and each row records its latency (column ref_ms); predictors use it to
    remove drift in machine speed. Keep other work off the machine while it measures.

    With --executor ray the tasks run in batches on the Ray nodes that host the
    device (started with `hwprof worker`) and stream back into the dataset.

    Example: hwprof measure --device kirin-npu --space ofa --samples 200 --seed 0 --out runs/npu
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from hwprof.measure_job import prepare_measure_job, run_measure_job
    from hwprof.profiling import MeasurementInterrupted
    from nas.spaces import get_space

    if fp16 and dtype not in (None, "float16"):
        raise HwprofError(f"--fp16 and --dtype {dtype} disagree", "give one of them")
    job = prepare_measure_job(
        device, out, space=get_space(space) if space else None, samples=samples, seed=seed, select=select,
        from_predictors=from_predictors, archs=archs, models=model or (), input_shape=_parse_shape(input_shape),
        mode=mode, device_options={"seed": seed, "threads": threads, "opt_level": opt_level,
                                   "dtype": "float16" if fp16 else dtype, "graph_style": graph_style},
        protocol_name=protocol_name, rounds=rounds, chunk_ms=chunk_ms, min_time_s=min_time, time_cap_s=time_cap,
        target_ci=target_ci, quiet_tol=quiet_tol, pool=pool, drift_every_s=drift_every, per_op=per_op,
        executor=executor, ray_address=ray_address, batch_size=batch_size,
        status=make_console(stderr=True).status)
    dev = job.device
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                        console=make_console(stderr=True), disable=json_out)
    state = {"skipped": 0, "start": 0.0}
    with progress:
        bar = progress.add_task(f"measuring on {dev.label}", total=None, rate="")

        def on_start(total: int, skipped: int) -> None:
            state.update(skipped=skipped, start=time.perf_counter())
            progress.update(bar, total=total, completed=skipped)

        def on_progress(_task) -> None:
            progress.advance(bar)
            done = progress.tasks[0].completed - state["skipped"]
            rate = done / max(time.perf_counter() - state["start"], 1e-9)
            progress.update(bar, rate=f"{rate:6.1f}/s")

        try:
            report, stop = run_measure_job(job, on_start, on_progress), None
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
    table = Table(title=f"Measured on {dev.label}" + (" - SIMULATED latencies" if dev.simulated else "")
                  + (f", graph style {dev.graph_style}" if not model else ""))
    table.add_column("item")
    table.add_column("value", justify="right")
    for item, value in report.table_rows():
        table.add_row(item, value)
    console.print(table)
    _print_verdict(report.summary.noise, dev.simulated)
    _exit_if_incomplete(report.summary)


def _print_verdict(noise, simulated: bool) -> None:
    """The run's one-line noise verdict, and a warning when rows could not be timed quiet."""
    from hwprof.quiet import SIMULATED_LINE

    if simulated:
        console.print(f"noise: {SIMULATED_LINE}", markup=False, highlight=False)
        return
    if noise is None:
        return
    console.print(f"noise: {noise.line()}", markup=False, highlight=False)
    if noise.warning():
        make_console(stderr=True).print(f"warning: {noise.warning()}", markup=False, highlight=False)


def _exit_if_incomplete(summary) -> None:
    """Exit 1 when an executor left tasks unmeasured (what was measured is saved; a rerun resumes)."""
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
    from hwprof.doctor import probe
    from hwprof.profiling import device_label, get_device

    dev = get_device(device, threads=threads)
    if dev.simulated:
        console.print(f"{device_label(dev)} is simulated: its noise is drawn by the simulation, not caused by this "
                      "machine; nothing to probe", markup=False, highlight=False)
        return
    with make_console(stderr=True).status(f"probing {device_label(dev)} for {seconds:g} s") as status:
        report = probe(dev, seconds, on_progress=lambda t: status.update(f"probing {device_label(dev)}: {t:4.1f} s"))
    if json_out:
        _print_json(report.as_dict())
        return
    table = Table(title=f"hwprof doctor: {device_label(dev)}, {report.seconds:.0f} s probe")
    table.add_column("item")
    table.add_column("value")
    for name, value in report.rows():
        table.add_row(name, value)
    console.print(table)
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
    import os
    import shutil

    from hwprof.executors import device_resource
    from hwprof.executors.ray_executor import require_ray
    from hwprof.profiling import device_label, get_device

    require_ray()
    names = [d.strip() for d in devices.split(",") if d.strip()]
    if not names:
        raise HwprofError("--devices is empty", "e.g. --devices cpu,kirin-npu")
    if slots is not None and slots < 1:
        raise HwprofError(f"--slots must be at least 1, got {slots}")
    resources = {}
    for name in names:
        dev = get_device(name)
        dev.require_available()
        resources[device_resource(dev.name)] = float(slots or os.cpu_count() or 1) if dev.simulated else 1.0
        make_console(stderr=True).print(f"[dim]hosting {device_label(dev)}: {resources[device_resource(dev.name)]:g} "
                                   f"slot(s)[/]")
    ray_cli = Path(sys.executable).parent / "ray"
    command = [str(ray_cli) if ray_cli.exists() else (shutil.which("ray") or "ray"), "start", "--address", address,
               "--resources", json.dumps(resources), "--block"]
    if num_cpus is not None:
        command += ["--num-cpus", str(num_cpus)]
    if dry_run:
        console.print(" ".join(command))
        return
    os.execv(command[0], command)  # this process becomes the Ray node: stopping it stops the node


def _parse_params(pairs: list[str]) -> dict:
    """``KEY=VALUE`` strings -> dict, values parsed as JSON where they can be."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise HwprofError(f"--param '{pair}' is not KEY=VALUE", "e.g. --param n_estimators=100")
        try:
            params[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            params[key.replace("-", "_")] = value
    return params


def _metrics_table(title: str, rows: dict[str, dict]) -> Table:
    table = Table(title=title)
    for col, justify in (("model", "left"), ("n", "right"), ("RMSE ms", "right"), ("MAPE", "right"),
                         ("within ±5%", "right"), ("within ±10%", "right"), ("Kendall τ", "right"),
                         ("Spearman ρ", "right")):
        table.add_column(col, justify=justify)
    for name, m in rows.items():
        table.add_row(name, str(m["n"]), f"{m['rmse_ms']:.3f}", f"{m['mape']:.2%}", f"{m['within_5pct']:.1%}",
                      f"{m['within_10pct']:.1%}", f"{m['kendall_tau']:.3f}", f"{m['spearman_rho']:.3f}")
    return table


@hwprof_app.command("predictors")
def predictors(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List the latency predictors that fit-predictor can train."""
    from hwprof.registry import PREDICTORS

    rows = []
    for name in PREDICTORS.names():
        cls = PREDICTORS.factory(name)
        rows.append({"name": name, "needs_blocks": bool(getattr(cls, "needs_blocks", False)),
                     "cost_table_exact": bool(getattr(cls, "layer_additive", False)),
                     "description": (cls.__doc__ or "").strip().splitlines()[0].replace("``", "")})
    if json_out:
        _print_json(rows)
        return
    table = Table(title="Latency predictors")
    for col in ("name", "needs block rows", "exact cost table", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], "yes" if r["needs_blocks"] else "no", "yes" if r["cost_table_exact"] else "approx.",
                      r["description"])
    console.print(table)


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
                                space=space, graph_style=graph_style, params=_parse_params(param or []),
                                transfer_from=transfer_from, seed=seed, force=force, status=status.update)
    finally:
        status.stop()
    predictor, result, measured = job.predictor, job.result, job.measured
    model, selection, metrics, styles = result["predictor"], result["selection"], result["test_metrics"], \
        result["graph_styles"]
    n_archs, n_blocks = result["networks"], result["blocks"]
    if json_out:
        _print_json(result)
        return
    if selection:
        sim = " - SIMULATED device" if measured.simulated else ""
        console.print(_metrics_table(f"Choosing the predictor: {selection['folds']}-fold cross-validation on the "
                                     f"training networks{sim}", selection["scores"]))
        console.print(f"chose [bold]{model}[/] (lowest out-of-fold MAPE)"
                      + "".join(f"; {name} not tried: {why}" for name, why in selection["skipped"].items()))
    console.print(f"fitted [bold]{model}[/] on {n_archs} networks and {n_blocks} blocks measured on "
                  f"{measured.label} (space {measured.space or '-'}, graph style {', '.join(styles)})")
    if result.get("transfer", {}).get("leave_one_out_mape"):
        loo = result["transfer"]["leave_one_out_mape"]
        from hwprof.predictors.transfer import MAX_HELD_OUT_FOLDS

        levels = f", corrections by {predictor.levels_}" if predictor.levels_ else ""
        held = "leave-one-out" if n_archs <= MAX_HELD_OUT_FOLDS else f"{MAX_HELD_OUT_FOLDS}-fold"
        console.print(f"transfer method: [bold]{predictor.method_}[/]{levels} ({held} MAPE over the measured networks: "
                      + ", ".join(f"{m} {v:.2%}" for m, v in loo.items()) + ")")
    if result["kernel_source"] and (model == "kernel-rf" or predictor.get_params().get("fallback") == "kernel-rf"):
        console.print(f"kernels from: {result['kernel_source']}")
    if metrics is not None:
        sim = " - SIMULATED device" if measured.simulated else ""
        rows = {model: metrics} if "by_style" not in metrics else {
            **{f"{model} [{s}]": m for s, m in metrics["by_style"].items()}, f"{model} [all]": metrics}
        console.print(_metrics_table(f"Held-out test: {metrics['n']} networks ({test_fraction:.0%}){sim}", rows))
        if metrics.get("fallback_blocks"):
            missing, total = metrics["fallback_blocks"]
            console.print(f"{missing} of the {total} distinct blocks of the held-out networks were not in the lookup "
                          f"table and were predicted by the {predictor.get_params().get('fallback')} fallback")
        if refit:
            console.print("the saved predictor was then refitted on all networks")
    console.print(f"saved {out}")


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
    from hwprof.predictors.training import evaluate_dataset

    result, predictor, measured, raw_measured = evaluate_dataset(predictor_path, data, graph_style, plot, force)
    metrics, prov = result["metrics"], predictor.provenance_
    if json_out:
        _print_json(result)
        return
    sim = " - SIMULATED device" if measured.simulated else ""
    console.print(_metrics_table(f"{predictor_path.name} on {data} ({measured.label}, {measured.space}, "
                                 f"graph style {measured.graph_style}){sim}", {predictor.name: metrics}))
    if metrics.get("fallback_blocks"):
        missing, total = metrics["fallback_blocks"]
        fallback = predictor.get_params().get("fallback")
        console.print(f"{missing} of the {total} distinct blocks were not in the lookup table"
                      + (f" and were predicted by the {fallback} fallback" if missing and fallback else ""))
    if metrics["drift_corrected"]:
        ref = raw_measured.ref_ms
        console.print(f"measured latencies corrected for machine-speed drift: reference network "
                      f"{ref.min():.2f}-{ref.max():.2f} ms in this run, {prov['reference_ms']:.2f} ms when the "
                      f"predictor's data were measured. Uncorrected: MAPE {metrics['raw_mape']:.2%}, "
                      f"within ±10% {metrics['raw_within_10pct']:.1%}")
    elif prov.get("reference_ms") and not measured.simulated:
        console.print("[yellow]note:[/] this dataset has no reference timings, so drift in machine speed "
                      "between the two runs is not corrected (remeasure with a current hwprof)")
    if plot is not None:
        console.print(f"plot written to {plot}")


FORCE_PLOT_HELP = "Overwrite an existing --plot that hwprof did not write."


def _parse_shape(items: Optional[list[str]]):
    """--input-shape: ``1,3,224,224`` for a single-input model, or ``NAME=1,128`` per input (repeatable)."""
    if not items:
        return None
    shapes = {}
    for text in items:
        name, _, sizes = text.rpartition("=")
        try:
            shape = tuple(int(x) for x in sizes.replace("x", ",").split(","))
        except ValueError:
            raise HwprofError(f"--input-shape '{text}' is not a list of integers",
                              "e.g. --input-shape 1,3,224,224, or --input-shape input_ids=1,128") from None
        if len(shape) < 1 or any(d < 1 for d in shape):
            raise HwprofError(f"--input-shape '{text}' needs positive sizes", "e.g. --input-shape 1,3,224,224")
        shapes[name] = shape
    if "" in shapes and len(items) > 1:
        raise HwprofError("several --input-shape values need input names", "write NAME=SIZES, e.g. input_ids=1,128")
    return shapes[""] if "" in shapes else shapes


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
    from hwprof.advise import advise_model

    result = advise_model(model, device, predictor_path, fix_out, tolerance, rounds, _parse_shape(input_shape),
                          force)
    if json_out:
        _print_json(result)
        return
    label = f"{result['device']} (simulated)" if result["simulated"] else result["device"]
    table = Table(title=f"{model.name} on {label}: per-node profile {result['total_ms']:.2f} ms, "
                        f"layout conversions {result['layout_ms']:.2f} ms")
    for column in ("what", "chains", "time in its nodes, ms", "share", "rewrite"):
        table.add_column(column, justify="right" if column in ("chains", "share") or "ms" in column else "left")
    predicted = result["predicted_ms"] is not None
    if predicted:
        table.add_column("predicted saving, ms", justify="right")
    for f in result["findings"]:
        row = [f["kind"], str(f["count"]), f"{f['nodes_ms']:.3f}", f"{f['nodes_ms'] / max(result['total_ms'], 1e-9):.0%}",
               f["rewrite"]]
        table.add_row(*row, *([f"{f['predicted_saving_ms']:.3f}"] if predicted else []))
    console.print(table)
    if not result["findings"]:
        console.print("nothing to rewrite: the graph uses the forms the runtime fuses")
    else:
        console.print("[dim]time in its nodes: the chains' own nodes plus the layout conversions next to them; "
                      "a rewrite saves up to that much[/]")
    fix_info = result.get("fix")
    if fix_info is not None:
        for kind, why in fix_info["refused"].items():
            console.print(f"[yellow]refused[/] {kind}: {why}")
        if fix_info["applied"]:
            console.print(f"wrote {fix_out}: applied {', '.join(f'{n} {k}' for k, n in fix_info['applied'].items())}; "
                          f"outputs within {fix_info['max_abs_diff']:.1e} of the original; measured "
                          f"{fix_info['before_ms']:.3f} ms -> {fix_info['after_ms']:.3f} ms "
                          f"({fix_info['speedup']:.2f}x, {rounds} round-robin rounds, drift-corrected)"
                          + (" - SIMULATED" if result["simulated"] else ""))
        else:
            console.print(f"wrote {fix_out} unchanged: no rewrite applied")


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
    from hwprof.api import to_onnx
    from hwprof.io import read_archs
    from hwprof.predictors import store

    given = [x for x in (model, arch, archs) if x]
    if len(given) != 1:
        raise HwprofError("give exactly one of --model, --arch or --archs")
    predictor = store.load(predictor_path)
    if graph_style is not None:
        from hwprof.graph_styles import check_style

        predictor.use_style(check_style(graph_style))
    prov = predictor.provenance_
    rows = []
    if model:
        shape = _parse_shape(input_shape)
        protos = [to_onnx(m, shape) for m in model]
        for m, ms in zip(model, predictor.predict_onnx(protos)):
            rows.append({"name": str(m), "predicted_ms": float(ms)})
    else:
        networks = read_archs(arch or archs)
        space = prov.get("space")
        if predictor.name in ("lut", "additive", "gbm") and space:
            outside = [a for a in networks if a.space != space]
            if outside:
                raise HwprofError(f"network {outside[0].hash} is from space '{outside[0].space or 'none'}', outside "
                                  f"the {predictor.name} predictor's space '{space}'",
                                  "use a kernel-rf or flops-linear predictor for networks outside its space")
        for a, ms in zip(networks, predictor.predict(networks)):
            rows.append({"name": a.hash, "predicted_ms": float(ms), "macs": a.macs, "params": a.params})
    device = prov.get("device", "?")
    simulated = bool(prov.get("simulated", False))
    if json_out:
        _print_json({"predictor": predictor.name, "device": device, "simulated": simulated,
                     "graph_style": None if model else predictor.graph_style, "predictions": rows})
        return
    table = Table(title=f"{predictor.name} predictions for {device}" + (" (SIMULATED device)" if simulated else "")
                  + ("" if model else f", graph style {predictor.graph_style}"))
    table.add_column("network")
    table.add_column("predicted ms", justify="right")
    for r in rows:
        table.add_row(r["name"], f"{r['predicted_ms']:.3f}")
    console.print(table)


def _space_profile(sp, device: str, measure_into_dir: Path, data: Optional[Path], samples: Optional[int],
                   bootstrap: int, seed: int, quiet: bool, executor: str = "local", ray_address: Optional[str] = None):
    """Profile ``sp`` on ``device`` (:func:`hwprof.space_profile.profile_with_executor`) with CLI progress."""
    from hwprof.space_profile import profile_with_executor

    return profile_with_executor(sp, device, measure_into_dir, data, samples, bootstrap, seed, executor, ray_address,
                                 status=_status_printer(quiet))


def _status_printer(quiet: bool):
    """Status lines for long work, dimmed on stderr (none with --json)."""
    return (lambda _m: None) if quiet else (lambda m: make_console(stderr=True).print(f"[dim]{m}[/]"))


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
    from hwprof.profiling import device_label
    from hwprof.space_profile import sweep_tables, write_report, write_sweeps
    from nas.spaces import get_space

    if (device is None) == (compare is None):
        raise HwprofError("give exactly one of --device or --compare", "e.g. --device kirin-npu, or "
                          "--compare cpu,litert-cpu:int8,kirin-npu")
    sp = get_space(space)
    if compare is not None:
        return _compare_profiles(sp, compare, out, data, samples, bootstrap, top, seed, executor, ray_address,
                                 json_out)
    dev, profile, _, _ = _space_profile(sp, device, out / "data", data, samples, bootstrap, seed, json_out,
                                        executor, ray_address)
    files = write_report(profile, out, top)
    sweeps = write_sweeps(sp, device, out, seed, files)
    if json_out:
        _print_json(profile.to_dict() | {"files": files, "sweeps": sweeps})
        return
    ranking = profile.ranking()
    sim = " - SIMULATED device" if profile.simulated else ""
    table = Table(title=f"{sp.name} on {device_label(dev)}{sim}: block choices by latency added "
                        f"({profile.networks} networks)")
    for col in ("rank", "choice", "mean added ms", "spread over positions", "positions"):
        table.add_column(col, justify="right" if col != "choice" else "left")
    shown = list(ranking.head(top).itertuples()) + (list(ranking.tail(top).itertuples())
                                                    if len(ranking) > 2 * top else list(ranking.iloc[top:].itertuples()))
    for r in shown:
        table.add_row(str(r.Index + 1), r.choice, f"{r.mean_contribution_ms:.4f}",
                      f"{r.spread_over_positions_ms:.4f}", str(r.positions))
    console.print(table)
    console.print(f"Kendall tau, contributions vs measured blocks: {profile.agreement_text()}")
    for sweep_table in sweep_tables({device: sweeps} if sweeps else {}):
        console.print(sweep_table)
    console.print(f"report: {files['report']}")


def _compare_profiles(sp, compare: str, out: Path, data, samples, bootstrap: int, top: int, seed: int,
                      executor: str, ray_address, json_out: bool) -> None:
    """profile-space --compare: one profile per target, rankings side by side, pairwise Kendall tau."""
    from hwprof.space_profile import compare_devices, compare_tables, sweep_tables

    if data is not None:
        raise HwprofError("--compare measures each target's sample itself", "drop --data")
    result = compare_devices(sp, [t.strip() for t in compare.split(",") if t.strip()], out, samples, bootstrap, top,
                             seed, executor, ray_address, status=_status_printer(json_out))
    if json_out:
        _print_json(result)
        return
    for table in compare_tables(result, top) + sweep_tables(result.get("sweeps", {})):
        console.print(table)
    console.print(f"wrote {out / 'compare.json'}")


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
    table = Table(title=f"{sp.name} reduced for {dev.label}{sim} ({profile.networks} networks profiled; "
                        f"gain judged by {judged_by.split(':')[0]})")
    for col in ("position", "kept", "dropped (dominated by)"):
        table.add_column(col)
    for v, m in zip(reduced.variables, reduced.mask):
        if v.kind != "layer":
            continue
        dropped = ", ".join(f"{d['dropped']} ({d['by']})" for d in why.get(v.name, [])) or "-"
        table.add_row(v.name, ", ".join(v.labels[j] for j in m), dropped)
    console.print(table)
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
    from hwprof.io import atomic_write_via
    from hwprof.outputs import guard_output, is_hwprof_png
    from hwprof.report import load_breakdowns, plot_breakdowns

    if top < 1 or max_models < 1:
        raise HwprofError("--top and --max-models must be at least 1")
    if plot is not None:
        guard_output(plot, "--plot", "PNG plot", is_hwprof_png, force)
    models = load_breakdowns(run, arch)
    shown = models[:max_models]
    if plot is not None:
        atomic_write_via(plot, lambda png: plot_breakdowns(shown, top, png), ".png")
    if json_out:
        _print_json({"run": str(run), "networks": len(models), "shown": [m.as_dict(top) for m in shown],
                     "plot": str(plot) if plot else None})
        return
    for m in shown:
        sim = " - SIMULATED device" if m.simulated else ""
        table = Table(title=f"{m.name} on {m.device}{sim}: {m.e2e_ms:.3f} ms end to end (median)",
                      caption=f"per-layer times from the {m.source}; layers sum to {m.sum_ms:.3f} ms "
                              f"({m.sum_ms / m.e2e_ms:.0%} of end to end"
                              + ("; profiling adds a little time per layer)" if "profiler" in m.source else ")"))
        for col, justify in (("#", "right"), ("layer", "left"), ("kind", "left"), ("ms", "right"),
                             ("share", "right"), ("cumulative", "right")):
            table.add_column(col, justify=justify)
        total = 0.0
        for i, k in enumerate(m.top(top), 1):
            total += k.ms
            table.add_row(str(i), k.name, k.description, f"{k.ms:.3f}", f"{k.ms / m.e2e_ms:.1%}",
                          f"{total / m.e2e_ms:.1%}")
        console.print(table)
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
    from hwprof.benchsuite import load_suite, run_suites
    from hwprof.io import write_json
    from hwprof.outputs import guard_output, is_bench_results

    if (baseline is None) != (baseline_out is None):
        raise HwprofError("--baseline and --baseline-out go together")
    if baseline_out is not None and out.absolute() == baseline_out.absolute():
        raise HwprofError("--out and --baseline-out name the same file", "give each suite its own results file")
    for option, path in (("--out", out), ("--baseline-out", baseline_out)):
        if path is not None:
            guard_output(path, option, "results file", is_bench_results, force, [suite, baseline])
    suites = [load_suite(suite)] + ([load_suite(baseline)] if baseline else [])
    loaded = suites[0]
    with make_console(stderr=True).status("measuring") as status:
        docs = run_suites(suites, seed=seed, on_item=lambda m, d: status.update(f"measuring {m} on {d}"))
    doc = docs[0]
    write_json(out, doc, indent=1)
    if baseline_out is not None:
        write_json(baseline_out, docs[1], indent=1)
    rows = [{k: r[k] for k in ("model", "device", "simulated", "median_ms", "p10_ms", "p90_ms", "n")}
            for r in doc["results"]]
    if json_out:
        _print_json({"out": str(out), "results": rows})
        return
    table = Table(title=f"hwprof bench {loaded['name']}")
    for col in ("model", "device", "median ms", "p10-p90 ms", "samples"):
        table.add_column(col, justify="left" if col in ("model", "device") else "right")
    for r in rows:
        table.add_row(r["model"], r["device"] + (" (simulated)" if r["simulated"] else ""), f"{r['median_ms']:.3f}",
                      f"{r['p10_ms']:.3f}-{r['p90_ms']:.3f}", str(r["n"]))
    console.print(table)
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
        table = Table(title=f"hwprof compare (threshold {threshold:.0%}, alpha {alpha})")
        for col in ("model", "device", "baseline ms", "current ms", "ratio", "95% CI", "p", "judged on", "verdict"):
            table.add_column(col, justify="left" if col in ("model", "device", "judged on", "verdict") else "right")
        colours = {"regression": "red", "improvement": "green", "no change": "dim"}
        for r in rows:
            table.add_row(r["model"], r["device"] + (" (simulated)" if r["simulated"] else ""),
                          f"{r['baseline_median_ms']:.3f}", f"{r['current_median_ms']:.3f}", f"{r['ratio']:.3f}",
                          f"{r['ci_low']:.3f}-{r['ci_high']:.3f}", f"{r['p_value']:.2g}", r["judged_on"],
                          f"[{colours[r['verdict']]}]{r['verdict']}[/]")
        console.print(table)
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
    table = Table(title="Search spaces")
    for col in ("name", "architectures", "layers", "description"):
        table.add_column(col)
    for info in infos:
        table.add_row(info["name"], f"{info['size']:.2e}", str(info["layers"]), info["description"])
    console.print(table)


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
    import numpy as np

    from hwprof.io import write_archs
    from hwprof.outputs import guard_output, is_arch_file
    from nas.spaces import get_space

    if n < 1:
        raise HwprofError(f"-n must be at least 1, got {n}", "ask for one or more networks")
    sp = get_space(space)
    if out is not None:
        guard_output(out, "--out", "architecture file", is_arch_file, force, [space])
    rng = np.random.default_rng(seed)
    with make_console(stderr=True).status(f"sampling {n} networks from {space}") as status:
        archs = []
        for i in range(n):
            archs.append(sp.sample(rng))
            if i % 500 == 499:
                status.update(f"sampling networks from {space}: {i + 1} of {n}")
    if out is not None:
        write_archs(out, archs)
    if json_out:
        for a in archs:
            sys.stdout.write(a.to_json() + "\n")
        return
    table = Table(title=f"{n} networks from '{space}' (seed {seed})")
    for col in ("hash", "resolution", "blocks", "MMACs", "Mparams", "choices"):
        table.add_column(col, overflow="fold")
    for a in archs:
        choices = sp.describe(a)
        layer_labels = [choices[v.name] for v in sp.layer_choices()]
        table.add_row(a.hash, str(a.resolution), str(len(a.blocks)), f"{a.macs / 1e6:.1f}",
                      f"{a.params / 1e6:.2f}", " ".join(layer_labels))
    console.print(table)
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
    from hwprof.io import atomic_write_text
    from hwprof.outputs import guard_output, is_arch_file
    from nas.interop_ofa import from_ofa_config

    if source != "ofa":
        raise HwprofError(f"unknown import format '{source}'", "use --from ofa")
    try:
        config = json.loads(config_file.read_text())
    except FileNotFoundError:
        raise HwprofError(f"config file {config_file} does not exist") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise HwprofError(f"config file {config_file} is not valid JSON: {exc}") from None
    arch = from_ofa_config(config, width_mult)
    guard_output(out, "--out", "architecture file", is_arch_file, force, [config_file])
    atomic_write_text(out, arch.to_json(indent=2) + "\n")
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

    from hwprof.build_onnx import build_onnx, save_onnx
    from hwprof.io import atomic_write_text, read_archs
    from hwprof.outputs import guard_output, is_hwprof_onnx, is_json_records

    archs = read_archs(arch_file)
    inputs = [arch_file, weights]
    if fmt == "ofa":
        from nas.interop_ofa import to_ofa_config

        if out is None:
            raise HwprofError("--format ofa needs --out FILE.json (or .jsonl for many networks)")
        guard_output(out, "--out", "OFA config file", lambda p: is_json_records(p, {"ks", "e", "d"}), force, inputs)
        configs = [to_ofa_config(a) for a in archs]
        text = json.dumps(configs[0], indent=2) + "\n" if len(configs) == 1 and out.suffix == ".json" else \
            "".join(json.dumps(c) + "\n" for c in configs)
        atomic_write_text(out, text)
        console.print(f"wrote {len(configs)} OFA config(s) to {out}")
        return
    if fmt != "onnx":
        raise HwprofError(f"unknown export format '{fmt}'", "use --format onnx or --format ofa")
    if onnx_out is None:
        raise HwprofError("--format onnx needs --onnx FILE.onnx (or a directory for many networks)")
    dtype = "float16" if fp16 else "float32"
    single = len(archs) == 1 and onnx_out.suffix == ".onnx"
    if weights is not None:
        from hwprof.weights import export_with_weights

        if not single:
            raise HwprofError("--weights exports one network", "give a .json with one arch and --onnx FILE.onnx")
        guard_output(onnx_out, "--onnx", "ONNX model", is_hwprof_onnx, force, inputs)
        arch = archs[0]
        export_with_weights(arch, weights, onnx_out, dtype)
        console.print(f"{arch.hash}: trained weights from {weights} -> {onnx_out} (hwprof graph form)")
        return
    if not single and onnx_out.exists() and not onnx_out.is_dir():
        raise HwprofError(f"{onnx_out} is a file but {len(archs)} networks need a directory",
                          "pass a directory to --onnx")
    if not single and onnx_out.suffix == ".onnx":
        raise HwprofError(f"{arch_file} holds {len(archs)} networks but --onnx names one file",
                          "pass a directory to --onnx")
    paths = [onnx_out if single else onnx_out / f"{arch.space or 'arch'}-{arch.hash}.onnx" for arch in archs]
    for path in paths:  # all checked before the first is written
        guard_output(path, "--onnx", "ONNX model", is_hwprof_onnx, force, inputs)
    for arch, path in track(list(zip(archs, paths)), description="exporting", console=console,
                            disable=len(archs) < 5):
        save_onnx(build_onnx(arch, dtype=dtype), path)
        if single or len(archs) < 5:
            console.print(f"{arch.hash}: {arch.macs / 1e6:.1f} MMACs, {arch.params / 1e6:.2f} M params -> {path}")
    if not single and len(archs) >= 5:
        console.print(f"exported {len(archs)} networks to {onnx_out}/")


def _plugin_table(title: str, registry, json_out: bool) -> None:
    rows = [{"name": n, "description": (registry.factory(n).__doc__ or "").strip().splitlines()[0].replace("``", "")}
            for n in registry.names()]
    if json_out:
        _print_json(rows)
        return
    table = Table(title=title)
    table.add_column("name")
    table.add_column("description")
    for r in rows:
        table.add_row(r["name"], r["description"])
    console.print(table)


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
    from nas.cross_eval import cross_eval, parse_latency_overrides, parse_predictor_files, summary_table

    tokens = [t.strip() for t in targets.split(",") if t.strip()]
    err = make_console(stderr=True)
    budgets, files = parse_latency_overrides(latency_ms or [], tokens), parse_predictor_files(predictor or [], tokens)
    from hwprof.executors import executor_from_options

    runner = executor_from_options(executor, ray_address)
    try:
        summary = cross_eval(space, tokens, out, budget_quantile, budgets, searcher, estimator, budget, seeds, seed,
                             runner if runner.name != "local" else None,
                             status=(lambda _m: None) if json_out else (lambda m: err.print(f"[dim]{m}[/]")),
                             predictor_files=files)
    finally:
        runner.close()
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
                         params=_parse_params(param or []), executor=executor, ray_address=ray_address,
                         shrink=shrink, measure_best=measure_best, graph_style=graph_style, fix=fix,
                         few_shot=few_shot, transfer_from=transfer_from, recalibrate=recalibrate,
                         console=make_console(stderr=True), quiet=json_out)
    summary = job.summary
    if json_out:
        _print_json({**summary, "extra": {k: v for k, v in summary["extra"].items() if k != "training_curve"}})
    else:
        from nas.search_report import search_table

        console.print(search_table(summary, job.result, job.space_name, job.label, job.simulated,
                                   job.predictor_name, job.predictor_source, job.out))
    from nas.search_report import over_target_warning

    warning = over_target_warning(summary, job.label)
    if warning:
        sys.stderr.write(warning + "\n")


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
