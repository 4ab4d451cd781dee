"""Command-line interface: the ``hwprof`` and ``nas`` typer apps.

Every command raises :class:`hwprof.errors.HwprofError` for bad input; the
entry points turn it into one line on stderr and exit code 2, in one place.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

import hwprof
from hwprof.errors import HwprofError

console = Console()

hwprof_app = typer.Typer(
    name="hwprof",
    help="Profile neural networks on devices, fit latency predictors, and guard against slowdowns.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
nas_app = typer.Typer(
    name="nas",
    help="Hardware-aware neural architecture search: spaces, sampling, export and search.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@hwprof_app.callback()
def _hwprof_group() -> None:
    """Profile neural networks on devices, fit latency predictors, and guard against slowdowns."""


@nas_app.callback()
def _nas_group() -> None:
    """Hardware-aware neural architecture search: spaces, sampling, export and search."""


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


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
                      "yes" if r["available"] else "no", detail)
    console.print(table)


@hwprof_app.command("measure")
def measure(
    device: Annotated[str, typer.Option("--device", "-d", help="Device name (see `hwprof devices`) or a profile .toml.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset directory (parquet parts are appended).")],
    space: Annotated[Optional[str], typer.Option("--space", "-s", help="Sample networks from this space.")] = None,
    samples: Annotated[int, typer.Option("--samples", "-n", help="How many networks to sample from --space.")] = 100,
    archs: Annotated[Optional[Path], typer.Option("--archs", help="Measure the networks in this .json/.jsonl file instead.")] = None,
    mode: Annotated[str, typer.Option(help="e2e (whole networks), blocks (each distinct block once), or both.")] = "both",
    seed: Annotated[int, typer.Option(help="Seed for sampling and for simulated noise.")] = 0,
    threads: Annotated[int, typer.Option(help="Intra-op threads (real devices).")] = 1,
    opt_level: Annotated[str, typer.Option(help="onnxruntime graph optimisation: disable|basic|extended|all.")] = "all",
    fp16: Annotated[bool, typer.Option("--fp16", help="Build float16 models (real devices).")] = False,
    target_ci: Annotated[float, typer.Option(help="Stop when the median's 95% CI is within this fraction.")] = 0.02,
    min_time: Annotated[Optional[float], typer.Option(help="Seconds of inference to record at least per model (default 0.25 real, 0 simulated).")] = None,
    time_cap: Annotated[float, typer.Option(help="Seconds of inference at most per model.")] = 5.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON.")] = False,
) -> None:
    """Measure latency of sampled or given networks (and their blocks) into a parquet dataset.

    Rerunning the same command resumes: rows already in the dataset are skipped.

    Example: hwprof measure --device kirin-npu --space ofa --samples 200 --seed 0 --out runs/npu
    """
    import numpy as np
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from hwprof.dataset import Dataset
    from hwprof.io import read_archs
    from hwprof.measure import Protocol
    from hwprof.profiling import check_output_dir, device_label, get_device, measure_into, plan
    from nas.spaces import get_space

    if samples < 1:
        raise HwprofError(f"--samples must be at least 1, got {samples}", "ask for one or more networks")
    if (space is None) == (archs is None):
        raise HwprofError("give exactly one of --space or --archs", "e.g. --space ofa --samples 100")
    dev = get_device(device, seed=seed, threads=threads, opt_level=opt_level,
                     dtype="float16" if fp16 else "float32")
    dev.require_available()
    check_output_dir(out)
    dataset = Dataset(out)
    dataset.keys()  # a corrupt dataset is reported before any work starts
    if archs is not None:
        networks = read_archs(archs)
    else:
        sp = get_space(space)
        rng = np.random.default_rng(seed)
        networks = [sp.sample(rng) for _ in range(samples)]
    plan(networks, mode)  # validates --mode before any work
    if min_time is None:
        min_time = 0.0 if dev.simulated else 0.25
    protocol = Protocol(target_ci=target_ci, min_time_s=min_time, time_cap_s=time_cap)
    label = device_label(dev)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                        console=Console(stderr=True), disable=json_out)
    state = {"skipped": 0, "start": 0.0}
    with progress:
        bar = progress.add_task(f"measuring on {label}", total=None, rate="")

        def on_start(total: int, skipped: int) -> None:
            state.update(skipped=skipped, start=time.perf_counter())
            progress.update(bar, total=total, completed=skipped)

        def on_progress(_task) -> None:
            progress.advance(bar)
            done = progress.tasks[0].completed - state["skipped"]
            rate = done / max(time.perf_counter() - state["start"], 1e-9)
            progress.update(bar, rate=f"{rate:6.1f}/s")

        summary = measure_into(dataset, dev, networks, mode, protocol, on_start=on_start,
                               on_progress=on_progress)
    result = {"device": dev.name, "simulated": dev.simulated, "out": str(out), "planned": summary.planned,
              "skipped_existing": summary.skipped, "measured": summary.measured,
              "e2e_rows": summary.e2e_rows, "block_rows": summary.block_rows,
              "unconverged": summary.unconverged, "inference_s": round(summary.inference_s, 3),
              "wall_s": round(summary.wall_s, 3)}
    if json_out:
        _print_json(result)
        return
    df = dataset.read(columns=["block_key", "median_ms", "device", "simulated"])
    df = df[df["device"] == dev.name]
    e2e = df[df["block_key"] == "e2e"]["median_ms"]
    table = Table(title=f"Measured on {label}" + (" - SIMULATED latencies" if dev.simulated else ""))
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_row("measured now", str(summary.measured))
    table.add_row("already in dataset (skipped)", str(summary.skipped))
    table.add_row("e2e / block rows added", f"{summary.e2e_rows} / {summary.block_rows}")
    table.add_row("not converged to target CI", str(summary.unconverged))
    if len(e2e):
        table.add_row("e2e median latency, ms (min / median / max)",
                      f"{e2e.min():.2f} / {e2e.median():.2f} / {e2e.max():.2f}")
    table.add_row("inference time recorded, s", f"{summary.inference_s:.2f}")
    table.add_row("wall time, s", f"{summary.wall_s:.2f}")
    table.add_row("dataset", f"{out} ({len(df)} rows for {dev.name})")
    console.print(table)


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
    space: Annotated[str, typer.Option("--space", "-s", help="Search space name (see `nas spaces`).")],
    n: Annotated[int, typer.Option("-n", "--num", help="How many networks to draw (>= 1).")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same networks.")] = 0,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the networks as JSON Lines.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the networks as JSON Lines.")] = False,
) -> None:
    """Draw random networks from a search space.

    Example: nas sample --space ofa -n 10 --seed 0 --out archs.jsonl
    """
    import numpy as np

    from hwprof.io import write_archs
    from nas.spaces import get_space

    if n < 1:
        raise HwprofError(f"-n must be at least 1, got {n}", "ask for one or more networks")
    sp = get_space(space)
    rng = np.random.default_rng(seed)
    archs = [sp.sample(rng) for _ in range(n)]
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


@nas_app.command("export")
def export(
    arch_file: Annotated[Path, typer.Argument(help="Architecture file: .json (one) or .jsonl (many).")],
    onnx_out: Annotated[Path, typer.Option("--onnx", help="Output .onnx file, or a directory for many networks.")],
    fp16: Annotated[bool, typer.Option("--fp16", help="Use float16 inputs and weights.")] = False,
) -> None:
    """Export networks to ONNX (opset 17, batch 1, valid under onnx.checker).

    Example: nas export archs.jsonl --onnx onnx/   (one file per network, named by hash)
    """
    from rich.progress import track

    from hwprof.build_onnx import build_onnx, save_onnx
    from hwprof.io import read_archs

    archs = read_archs(arch_file)
    dtype = "float16" if fp16 else "float32"
    single = len(archs) == 1 and onnx_out.suffix == ".onnx"
    if not single and onnx_out.exists() and not onnx_out.is_dir():
        raise HwprofError(f"{onnx_out} is a file but {len(archs)} networks need a directory",
                          "pass a directory to --onnx")
    if not single and onnx_out.suffix == ".onnx":
        raise HwprofError(f"{arch_file} holds {len(archs)} networks but --onnx names one file",
                          "pass a directory to --onnx")
    for arch in track(archs, description="exporting", console=console, disable=len(archs) < 5):
        path = onnx_out if single else onnx_out / f"{arch.space or 'arch'}-{arch.hash}.onnx"
        save_onnx(build_onnx(arch, dtype=dtype), path)
        if single or len(archs) < 5:
            console.print(f"{arch.hash}: {arch.macs / 1e6:.1f} MMACs, {arch.params / 1e6:.2f} M params -> {path}")
    if not single and len(archs) >= 5:
        console.print(f"exported {len(archs)} networks to {onnx_out}/")


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
