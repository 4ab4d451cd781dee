"""A noisy neighbour to inject: a seeded, reproducible load on the cores hwprof is not timing on.

Users measure on laptops, CI runners and cloud VMs, where other work comes and
goes. This module plays that other work so benchmarks and tests can check the
measurement protocol against it instead of against a quiet machine only::

    with Neighbour("stream", pattern="switching", cores=[1], seed=0) as neighbour:
        ...  # measure on core 0
    neighbour.timeline()  # [(start, end), ...] monotonic seconds when it was on

Kinds of neighbour (each single-threaded, one process per core):

- ``stream``: copies a 256 MiB array again and again (memory bandwidth, the
  last-level cache filled with data nobody else uses);
- ``compute``: multiplies small matrices that stay in its core's own caches
  (shares only the package's power and clock budget);
- ``cache``: gathers at random over an array twice the size of the last-level
  cache (evicts everything the timed model keeps there).

Patterns: ``always`` (on for the whole block), ``switching`` (on and off at
seeded random intervals drawn log-uniformly between ``on_s`` and ``off_s``
bounds, sub-second to several seconds), ``off`` (nothing; the quiet control).

The schedule is drawn from ``seed`` (the same seed gives the same sequence of
on/off durations); when it is on is written by the child process to a file, so
a benchmark can compare what the protocol detected with what really happened.

Run it alone to disturb another command by hand::

    python -m benchmarks.neighbour --kind stream --pattern switching --cores 1 --seconds 120
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

KINDS = ("stream", "compute", "cache")
PATTERNS = ("off", "always", "switching")


def schedule(seed: int, total_s: float, on_s: tuple[float, float] = (0.3, 5.0),
             off_s: tuple[float, float] = (0.3, 5.0)) -> list[tuple[float, float]]:
    """Seeded on-windows ``[(start, end), ...]`` (seconds from the start) covering ``total_s``.

    Durations are log-uniform within the bounds, so sub-second flickers and
    several-second stretches both occur. The first window starts after an off
    stretch drawn the same way.
    """
    rng = np.random.default_rng(seed)
    windows, t, on = [], 0.0, False
    while t < total_s:
        low, high = on_s if on else off_s
        length = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        if on:
            windows.append((t, min(t + length, total_s)))
        t += length
        on = not on
    return windows


def _work(kind: str):
    """One short unit of the neighbour's work (a few milliseconds), as a callable."""
    if kind == "stream":
        src = np.ones(32 * 1024 * 1024)  # 256 MiB of float64
        dst = np.empty_like(src)
        chunk = 2 * 1024 * 1024  # 16 MiB per call: a few ms

        state = {"at": 0}

        def step() -> None:
            at = state["at"]
            np.copyto(dst[at:at + chunk], src[at:at + chunk])
            state["at"] = (at + chunk) % len(src)
        return step
    if kind == "compute":
        a = np.random.default_rng(0).standard_normal((96, 96))

        def step() -> None:
            for _ in range(40):
                a @ a
        return step
    if kind == "cache":
        data = np.ones(8 * 1024 * 1024)  # 64 MiB: twice a 32 MiB last-level cache
        index = np.random.default_rng(0).integers(0, len(data), 200_000)

        def step() -> None:
            data[index].sum()
        return step
    raise ValueError(f"unknown neighbour kind {kind!r}; one of {KINDS}")


def _child(kind: str, windows: list[tuple[float, float]], total_s: float, log_path: str) -> None:
    """The neighbour process: work during each window, sleep between them; log real on-times."""
    step = _work(kind)
    start = time.monotonic()
    real = []
    for begin, end in windows:
        while time.monotonic() - start < begin:
            time.sleep(min(0.01, max(begin - (time.monotonic() - start), 0.0)))
        on = time.monotonic()
        real.append([on, on])
        last_log = 0.0
        while time.monotonic() - start < end:
            step()
            now = time.monotonic()
            real[-1][1] = now
            if now - last_log > 0.5:  # the log follows a long window too (it may be killed in one)
                Path(log_path).write_text(json.dumps(real))
                last_log = now
        real[-1][1] = time.monotonic()
        Path(log_path).write_text(json.dumps(real))
    while time.monotonic() - start < total_s:
        time.sleep(0.05)


class Neighbour:
    """A load on ``cores`` while the ``with`` block runs (one process per core).

    Args:
        kind: stream | compute | cache (see the module docstring).
        pattern: off | always | switching.
        cores: Cores to load (default: every core but the one this process runs on first).
        seed: Seed of the on/off schedule (each core's process gets ``seed + i``).
        total_s: Longest the neighbour lives; it stops at the end of the block anyway.
        on_s: Bounds of an on stretch, seconds (switching).
        off_s: Bounds of an off stretch, seconds (switching).
    """

    def __init__(self, kind: str = "stream", pattern: str = "switching", cores: list[int] | None = None,
                 seed: int = 0, total_s: float = 3600.0, on_s: tuple[float, float] = (0.3, 5.0),
                 off_s: tuple[float, float] = (0.3, 5.0)) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown neighbour kind {kind!r}; one of {KINDS}")
        if pattern not in PATTERNS:
            raise ValueError(f"unknown pattern {pattern!r}; one of {PATTERNS}")
        if cores is None:
            mine = sorted(os.sched_getaffinity(0))
            cores = [c for c in range(os.cpu_count() or 1) if c != mine[0]] or [mine[0]]
        self.kind, self.pattern, self.cores, self.seed = kind, pattern, list(cores), seed
        self.total_s, self.on_s, self.off_s = total_s, on_s, off_s
        self._procs: list[subprocess.Popen] = []
        self._logs: list[str] = []
        self._dir: tempfile.TemporaryDirectory | None = None

    def windows(self, index: int = 0) -> list[tuple[float, float]]:
        """The planned on-windows of the ``index``-th core's process (seconds from its start)."""
        if self.pattern == "off":
            return []
        if self.pattern == "always":
            return [(0.0, self.total_s)]
        return schedule(self.seed + index, self.total_s, self.on_s, self.off_s)

    def __enter__(self) -> "Neighbour":
        if self.pattern == "off":
            return self
        self._dir = tempfile.TemporaryDirectory(prefix="hwprof-neighbour-")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        for i, core in enumerate(self.cores):
            log = os.path.join(self._dir.name, f"core{core}.json")
            self._logs.append(log)
            args = json.dumps({"kind": self.kind, "windows": self.windows(i), "total_s": self.total_s,
                               "log": log, "core": core})
            self._procs.append(subprocess.Popen([sys.executable, "-m", "benchmarks.neighbour", "--child", args],
                                                env=env, cwd=Path(__file__).resolve().parents[1]))
        time.sleep(0.3)  # let the children allocate before the timed work starts
        return self

    def __exit__(self, *exc) -> None:
        for proc in self._procs:
            proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._timeline = self._read_timeline()
        self._procs.clear()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def _read_timeline(self) -> list[tuple[float, float]]:
        spans = []
        for log in self._logs:
            try:
                spans += [tuple(s) for s in json.loads(Path(log).read_text())]
            except (OSError, ValueError):
                continue
        return sorted(spans)

    def timeline(self) -> list[tuple[float, float]]:
        """When the neighbour was really on: ``[(start, end), ...]`` in this machine's monotonic seconds."""
        if self._procs:
            return self._read_timeline()
        return getattr(self, "_timeline", [])

    def on_share(self, start: float, end: float) -> float:
        """Share of ``[start, end]`` (monotonic seconds) during which the neighbour was on."""
        covered = sum(max(0.0, min(e, end) - max(s, start)) for s, e in self.timeline())
        return covered / max(end - start, 1e-9)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=KINDS, default="stream")
    parser.add_argument("--pattern", choices=PATTERNS, default="switching")
    parser.add_argument("--cores", default=None, help="comma-separated cores (default: all but the first)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        os.sched_setaffinity(0, {spec["core"]})
        _child(spec["kind"], [tuple(w) for w in spec["windows"]], spec["total_s"], spec["log"])
        return
    cores = [int(c) for c in args.cores.split(",")] if args.cores else None
    with Neighbour(args.kind, args.pattern, cores, args.seed, total_s=args.seconds) as neighbour:
        print(f"neighbour {args.kind} ({args.pattern}) on cores {neighbour.cores} for {args.seconds:.0f} s",
              file=sys.stderr)
        time.sleep(args.seconds)


if __name__ == "__main__":
    main()
