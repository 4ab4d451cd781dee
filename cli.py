"""Command-line interface: the ``hwprof`` and ``nas`` typer apps.

Every command raises :class:`hwprof.errors.HwprofError` for bad input; the
entry points turn it into one line on stderr and exit code 2, in one place.
"""

from __future__ import annotations

import json
import sys
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
