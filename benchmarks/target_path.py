"""How far a target travels: the files a search's target passes through, traced as it runs.

Runs ``run_search_job`` (a small seeded search on a simulated chip, measured
winner included) under a profiler hook and records every call in hwprof's own
code (``cli.py``, ``hwprof/``, ``nas/``, ``devices/``) that receives the target:
its token as a string (``"kirin-npu"``), or the Device object resolved from it
(as an argument or as ``self``). From that sequence of calls it prints:

- files: distinct files that handled the target;
- stops: calls that moved the target into another file than the previous call's;
- returns: stops into a file the target had already left once;
- climbs: stops from a lower layer into a higher one (layers as in pyproject's
  import-linter contract: nas > hwprof workflows > devices > hwprof core).

    python -m benchmarks.target_path --target kirin-npu

Issue 41 counted 38 files, 79 stops, 41 returns and 8 climbs before the
target was resolved once into one Device object.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = ("cli.py", "hwprof/", "nas/", "devices/")


def _layers() -> list[set[str] | str]:
    """The import-linter layers, top first: a package name, or a set of module names."""
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
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


def trace(target: str, out: Path) -> list[str]:
    """Files (relative paths) of the calls that received the target, in call order."""
    from hwprof.device import Device
    from nas.search_job import run_search_job

    token = target
    calls: list[str] = []

    def carries(value) -> bool:
        if isinstance(value, Device):
            return True
        return isinstance(value, str) and value == token

    def hook(frame, event, _arg):
        if event != "call":
            return
        path = frame.f_code.co_filename
        try:
            rel = str(Path(path).resolve().relative_to(ROOT))
        except ValueError:
            return
        if not rel.startswith(OURS):
            return
        code = frame.f_code
        names = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
        if any(carries(frame.f_locals.get(n)) for n in names):
            calls.append(rel)

    sys.setprofile(hook)
    try:
        run_search_job(target, "ofa", latency_ms=4.0, budget=20, seed=0, out=out, quiet=True)
    finally:
        sys.setprofile(None)
    return calls


def summarize(calls: list[str]) -> dict:
    layers = _layers()
    stops, returns, climbs, left = 0, 0, 0, set()
    previous = None
    for rel in calls:
        if rel == previous:
            continue
        if previous is not None:
            stops += 1
            left.add(previous)
            returns += rel in left
            climbs += layer_of(_module(rel), layers) < layer_of(_module(previous), layers)
        previous = rel
    return {"files": len(set(calls)), "stops": stops, "returns": returns, "climbs": climbs,
            "by_file": {f: calls.count(f) for f in sorted(set(calls))}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="kirin-npu")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = summarize(trace(args.target, Path(tmp) / "search"))
    for f, n in result["by_file"].items():
        print(f"{n:5d}  {f}")
    print(f"\ntarget {args.target}: {result['files']} files, {result['stops']} stops, {result['returns']} returns, "
          f"{result['climbs']} climbs")


if __name__ == "__main__":
    main()
