"""Run every benchmark script in turn."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["benchmarks.bench_build_onnx", "benchmarks.bench_measure"]

for name in BENCHMARKS:
    print(f"== {name}")
    sys.argv = [name]
    importlib.import_module(name).main()
