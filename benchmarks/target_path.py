"""How far a target travels: the files a search's target passes through, traced as it runs.

Runs ``run_search_job`` (a small seeded search on a simulated chip, measured
winner included) under a profiler hook and records every call in hwprof's own
code (``cli.py``, ``hwprof/``, ``nas/``, ``devices/``) that receives the target:
its token as a string (``"kirin-npu"``), or the Device object resolved from it
(as an argument or as ``self``). From that sequence of calls it prints:

- files: distinct files that handled the target;
- moves: distinct (file, next file) pairs of consecutive calls (a loop makes the
  same move many times; a reader follows it once);
- climbs: moves from a lower layer into a higher one (layers as in pyproject's
  import-linter contract: nas > hwprof workflows > devices > hwprof core).

    python -m benchmarks.target_path --target kirin-npu          # the predictor already cached
    python -m benchmarks.target_path --target kirin-npu --cold   # a first search: measure, fit, search

Issue 41 counted, by reading the code, 38 files, 79 stops, 41 returns and 8
climbs before the target was resolved once into one Device object; run this on
that commit (``--layers-from`` this checkout's pyproject) for the same count as here.
``benchmarks.target_path_static`` reads every branch from the source instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = ("cli.py", "hwprof/", "nas/", "devices/")


LAYERS_FROM = Path(__file__).resolve().parents[1] / "pyproject.toml"  # set by --layers-from


def _layers() -> list[set[str] | str]:
    """The import-linter layers, top first: a package name, or a set of module names."""
    doc = tomllib.loads(LAYERS_FROM.read_text())
    layers = doc["tool"]["importlinter"]["contracts"][0]["layers"]
    return [{m.strip() for m in layer.replace("\n", " ").split(":") if m.strip()} if ":" in layer else layer
            for layer in layers]


def layer_of(module: str, layers: list) -> int:
    """Index of a module's layer (0 = top); the CLI is above every layer (-1)."""
    if module == "cli":
        return -1
    for i, layer in enumerate(layers):
        if isinstance(layer, str) and (module == layer or module.startswith(layer + ".")):
            return i
        if isinstance(layer, set) and (module in layer or any(module.startswith(m + ".") for m in layer)):
            return i
    return len(layers)  # a mixed package init: core


def _module(path: str) -> str:
    rel = Path(path).resolve().relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def trace(target: str, out: Path, cold: bool = False) -> list[str]:
    """Files (relative paths) of the calls that received the target, in call order.

    ``cold``: the predictor cache is empty, so the search also measures a sample and fits
    its predictor (a new user's first search); else that is done before tracing.
    """
    from devices.base import Device  # where every hwprof version has it
    from nas.search_job import run_search_job

    token = target
    calls: list[str] = []
    ours: dict[str, str | None] = {}  # file name -> path in the repository (None: not ours)

    def relative(path: str) -> str | None:
        if path not in ours:
            try:
                rel = str(Path(path).resolve().relative_to(ROOT))
                ours[path] = rel if rel.startswith(OURS) else None
            except ValueError:
                ours[path] = None
        return ours[path]

    def carries(value) -> bool:
        return isinstance(value, Device) or (isinstance(value, str) and value == token)

    def hook(frame, event, _arg):
        if event != "call":
            return
        rel = relative(frame.f_code.co_filename)
        if rel is None:
            return
        code = frame.f_code
        names = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
        if any(carries(frame.f_locals.get(n)) for n in names):
            calls.append(rel)

    if not cold:  # the predictor is cached by now: what is traced is the search, not building it
        run_search_job(target, "ofa", latency_ms=4.0, budget=20, seed=0, out=out.with_name("warm-up"), quiet=True)
    sys.setprofile(hook)
    try:
        run_search_job(target, "ofa", latency_ms=4.0, budget=20, seed=0, out=out, quiet=True)
    finally:
        sys.setprofile(None)
    return calls


def summarize(calls: list[str]) -> dict:
    """Files, and the distinct moves between them (a loop that measures 300 rows moves the same way 300
    times: distinct moves are what a reader follows), and how many of those climb a layer."""
    layers = _layers()
    moves = {(a, b) for a, b in zip(calls, calls[1:]) if a != b}
    climbs = {(a, b) for a, b in moves if layer_of(_module(b), layers) < layer_of(_module(a), layers)}
    return {"files": len(set(calls)), "moves": len(moves), "climbs": len(climbs),
            "climbing": sorted(f"{a} -> {b}" for a, b in climbs),
            "by_file": {f: calls.count(f) for f in sorted(set(calls))}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="kirin-npu")
    parser.add_argument("--cold", action="store_true", help="trace a first search, which builds its predictor too")
    parser.add_argument("--layers-from", help="pyproject.toml whose layers to use (to trace an older checkout, which "
                        "has none)")
    args = parser.parse_args(argv)
    if args.layers_from:
        global LAYERS_FROM
        LAYERS_FROM = Path(args.layers_from)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HWPROF_CACHE"] = str(Path(tmp) / "cache")  # a cache of its own: cold means cold
        result = summarize(trace(args.target, Path(tmp) / "search", args.cold))
    for f, n in result["by_file"].items():
        print(f"{n:6d} calls  {f}")
    for move in result["climbing"]:
        print(f"climbs: {move}")
    print(f"\ntarget {args.target}{' (cold cache)' if args.cold else ''}: {result['files']} files, "
          f"{result['moves']} distinct moves between them, {result['climbs']} of them climbing a layer")


if __name__ == "__main__":
    main()
