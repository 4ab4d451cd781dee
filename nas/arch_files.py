"""Architecture files in and out: draw networks from a space, import other tools' configs, export ONNX.

What ``nas sample``, ``nas import`` and ``nas export`` do, callable from Python.
Every output is checked before anything is written (:func:`hwprof.outputs.guard_output`)
and written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from hwprof.arch import Arch
from hwprof.errors import HwprofError
from hwprof.io import atomic_write_text, read_archs, write_archs
from hwprof.outputs import guard_output, is_arch_file, is_hwprof_onnx, is_json_records

FEW = 5  # fewer networks than this: one line per exported file


def sample_archs(space, n: int, seed: int = 0, out: Path | None = None, force: bool = False,
                 status: Callable[[str], None] = lambda _m: None, inputs: Iterable = ()) -> list[Arch]:
    """Draw ``n`` seeded networks from ``space`` (a space object); also written to ``out`` as JSON Lines.

    ``inputs`` are files the command read (a reduced-space .json): ``out`` may not be one of them.

    Raises:
        HwprofError: for n < 1, or an ``out`` that is not an architecture file (unless ``force``).
    """
    if n < 1:
        raise HwprofError(f"-n must be at least 1, got {n}", "ask for one or more networks")
    if out is not None:
        guard_output(out, "--out", "architecture file", is_arch_file, force, inputs)
    rng = np.random.default_rng(seed)
    archs = []
    for i in range(n):
        archs.append(space.sample(rng))
        if i % 500 == 499:
            status(f"sampling networks from {space.name}: {i + 1} of {n}")
    if out is not None:
        write_archs(out, archs)
    return archs


def sample_rows(space, archs: list[Arch]) -> list[list[str]]:
    """Table rows of sampled networks: hash, resolution, blocks, MMACs, Mparams, layer choices."""
    rows = []
    for a in archs:
        choices = space.describe(a)
        rows.append([a.hash, str(a.resolution), str(len(a.blocks)), f"{a.macs / 1e6:.1f}", f"{a.params / 1e6:.2f}",
                     " ".join(choices[v.name] for v in space.layer_choices())])
    return rows


def import_config(config_file: Path, out: Path, source: str = "ofa", width_mult: float | None = None,
                  force: bool = False) -> Arch:
    """Read another tool's subnet config (Once-for-All: ks/e/d/r) and write it as an architecture JSON.

    Raises:
        HwprofError: for an unknown format, a missing or malformed config, or a foreign ``out``.
    """
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
    return arch


def _summary(arch: Arch, path: Path) -> str:
    return f"{arch.hash}: {arch.macs / 1e6:.1f} MMACs, {arch.params / 1e6:.2f} M params -> {path}"


def export_archs(arch_file: Path, onnx_out: Path | None = None, fmt: str = "onnx", out: Path | None = None,
                 fp16: bool = False, weights: Path | None = None, force: bool = False,
                 progress: Callable[[Iterable, int], Iterable] = lambda items, _n: items) -> list[str]:
    """Export the networks of ``arch_file`` to ONNX (``onnx_out``: a file, or a directory for many) or,
    with ``fmt="ofa"``, to Once-for-All subnet configs (``out``).

    Every output path is checked before the first is written. ``progress`` wraps
    the export loop (e.g. a progress bar); it gets the items and their count.

    Returns:
        Lines saying what was written.

    Raises:
        HwprofError: for a missing option, a format mismatch, or an output that hwprof did not write.
    """
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
        return [f"wrote {len(configs)} OFA config(s) to {out}"]
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
        export_with_weights(archs[0], weights, onnx_out, dtype)
        return [f"{archs[0].hash}: trained weights from {weights} -> {onnx_out} (hwprof graph form)"]
    if not single and onnx_out.exists() and not onnx_out.is_dir():
        raise HwprofError(f"{onnx_out} is a file but {len(archs)} networks need a directory",
                          "pass a directory to --onnx")
    if not single and onnx_out.suffix == ".onnx":
        raise HwprofError(f"{arch_file} holds {len(archs)} networks but --onnx names one file",
                          "pass a directory to --onnx")
    from hwprof.build_onnx import build_onnx, save_onnx

    paths = [onnx_out if single else onnx_out / f"{arch.space or 'arch'}-{arch.hash}.onnx" for arch in archs]
    for path in paths:  # all checked before the first is written
        guard_output(path, "--onnx", "ONNX model", is_hwprof_onnx, force, inputs)
    for arch, path in progress(list(zip(archs, paths)), len(archs)):
        save_onnx(build_onnx(arch, dtype=dtype), path)
    if single or len(archs) < FEW:
        return [_summary(arch, path) for arch, path in zip(archs, paths)]
    return [f"exported {len(archs)} networks to {onnx_out}/"]
