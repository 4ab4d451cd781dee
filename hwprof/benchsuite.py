"""Benchmark sets for CI: a TOML file of models and devices -> a JSON results file.

A suite file::

    name = "my-models"

    [protocol]            # optional; more samples give ``hwprof compare`` more power
    min_samples = 50      # in all, spread over the rounds
    min_time = 0.5
    rounds = 16           # chunks per model (default 16 on real devices, 8 round-robin rounds on simulated ones)

    [[models]]
    name = "candidate"
    arch = "best.json"    # an hwprof arch JSON ...
    [[models]]
    name = "prod"
    onnx = "prod.onnx"    # ... or any single-input ONNX model with static shapes

    [[devices]]
    name = "cpu"
    threads = 1
    [[devices]]
    name = "kirin-npu"

Paths are relative to the suite file. The results file keeps the raw per-run
samples so that :mod:`hwprof.regression` can test on them.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx

import hwprof
from hwprof.device import host_info
from hwprof.arch import Arch
from hwprof.build_onnx import build_onnx
from hwprof.errors import HwprofError
from hwprof.protocol import Protocol, measure_session

FORMAT = "hwprof.bench"
VERSION = 1
DEFAULT_ROUNDS = 8  # simulated devices: round-robin rounds of the contiguous protocol
#: Real devices: chunks per model. ``hwprof compare`` judges interleaved runs round by round (a signed-rank
#: test on the paired chunks); beside a switching neighbour 16 chunks of 31 ms caught 97% of 10% slowdowns where
#: 8 chunks of 62 ms (the same inference time) caught 87%, both with no A/A false alarm (benchmarks/bench_compare.py).
DEFAULT_CHUNKED_ROUNDS = 16
_PROTOCOL_KEYS = {"rounds": "rounds", "warmup": "warmup", "min_samples": "min_samples",
                  "max_samples": "max_samples",
                  "target_ci": "target_ci", "min_time": "min_time_s", "time_cap": "time_cap_s"}


def load_suite(path: str | Path) -> dict[str, Any]:
    """Parse and check a suite file; models are loaded (ONNX) or built (arch JSON).

    Raises:
        HwprofError: naming the file and the entry that is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise HwprofError(f"benchmark suite {path} does not exist", "write a TOML suite (see `hwprof bench --help`)")
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise HwprofError(f"cannot parse {path}: {exc}", "fix the TOML syntax") from None
    models, devices = doc.get("models", []), doc.get("devices", [])
    if not models or not devices:
        raise HwprofError(f"{path} needs at least one [[models]] and one [[devices]] entry")
    loaded = []
    for i, entry in enumerate(models):
        name = entry.get("name") or f"model{i}"
        if ("arch" in entry) == ("onnx" in entry):
            raise HwprofError(f"{path}: model '{name}' needs exactly one of arch = ... or onnx = ...")
        file = path.parent / (entry.get("arch") or entry["onnx"])
        if not file.is_file():
            raise HwprofError(f"{path}: model '{name}': file {file} does not exist")
        if "arch" in entry:
            model = build_onnx(Arch.from_json(file.read_text()))
        else:
            try:
                model = onnx.load(str(file))
            except Exception as exc:  # onnx raises DecodeError and others for bad files
                raise HwprofError(f"{path}: model '{name}': cannot read ONNX file {file}: {exc}") from None
        loaded.append({"name": name, "source": str(file), "model": model})
    unknown = set(doc.get("protocol", {})) - set(_PROTOCOL_KEYS)
    if unknown:
        raise HwprofError(f"{path}: unknown [protocol] keys {sorted(unknown)}", f"use {sorted(_PROTOCOL_KEYS)}")
    return {"name": doc.get("name", path.stem), "models": loaded, "devices": devices,
            "protocol": doc.get("protocol", {})}


def suite_protocol(options: dict[str, Any], simulated: bool) -> tuple[Protocol, int]:
    """The per-round protocol and the number of rounds of a suite's ``[protocol]`` table on one kind of device."""
    options = dict(options)
    rounds = int(options.pop("rounds", DEFAULT_ROUNDS if simulated else DEFAULT_CHUNKED_ROUNDS))
    if rounds < 1:
        raise HwprofError("[protocol] rounds must be at least 1")
    values = {"min_samples": 50, "min_time_s": 0.0 if simulated else 0.5, "target_ci": 0.01}
    values.update({_PROTOCOL_KEYS[k]: v for k, v in options.items()})
    per_round = {**values, "min_samples": max(10, values["min_samples"] // rounds),
                 "min_time_s": values["min_time_s"] / rounds, "warmup": min(values.get("warmup", 5), 3)}
    per_round["max_samples"] = max(per_round.get("max_samples", 2000) // rounds, per_round["min_samples"])
    return Protocol(**per_round), rounds


def measure_rounds(sessions: list, protocol: Protocol, rounds: int) -> list[list[np.ndarray]]:
    """Samples of each session in ``rounds`` rounds, round-robin over the sessions.

    Spreading each model's samples over rounds interleaved with the others
    makes slow drifts of the machine show up as spread between round medians,
    which is what :func:`hwprof.regression.compare_samples` tests on.
    """
    out: list[list[np.ndarray]] = [[] for _ in sessions]
    for _ in range(rounds):
        for i, session in enumerate(sessions):
            out[i].append(measure_session(session, protocol).samples_ms)
    return out


@dataclass
class ModelRun:
    """One model's part of an interleaved benchmark run.

    Attributes:
        samples_ms: The samples kept (quiet chunks' on real devices).
        round_medians_ms: The median of each kept round (chunk).
        chunks: Every chunk timed: ``{"round": [...], "median_ms": [...], "quiet": [...]}`` (quiet None on
            simulated devices); models of one run share round numbers, so they can be paired round by round.
        noise: The row's noise fields and the run's verdict line (None on simulated devices).
    """

    samples_ms: np.ndarray
    round_medians_ms: list[float]
    chunks: dict[str, list]
    noise: dict | None = None

    @classmethod
    def from_rounds(cls, rounds: list[np.ndarray]) -> ModelRun:
        """The run of round-robin rounds of the contiguous protocol (simulated devices): every round kept."""
        medians = [float(np.median(r)) for r in rounds]
        return cls(np.concatenate(rounds), medians,
                   {"round": list(range(len(rounds))), "median_ms": medians, "quiet": [None] * len(rounds)})


def measure_models(device, models: list, protocol: Protocol, rounds: int, seed: int = 0) -> list[ModelRun]:
    """Samples, round medians, chunk records and noise fields of each model, all interleaved on ``device``.

    Real devices use the chunked protocol (:mod:`hwprof.interleave`), the one
    ``hwprof measure`` uses: every model and the reference network are timed
    in ``rounds`` chunks in random order, and chunks taken while the machine
    was disturbed are left out of both the samples and the round medians. So
    a neighbour that comes and goes during a CI job is not read as a change.
    Simulated devices keep round-robin rounds of the contiguous protocol.
    """
    if device.simulated:
        sessions = [device.load(m) for m in models]
        try:
            per_model = measure_rounds(sessions, protocol, rounds)
        finally:
            for session in sessions:
                session.close()
        return [ModelRun.from_rounds(r) for r in per_model]
    from dataclasses import replace

    from hwprof.interleave import measure_models_chunked

    chunked = replace(protocol, rounds=rounds, pool=len(models), warmup=max(protocol.warmup, 2),
                      min_samples=3, min_time_s=protocol.min_time_s * rounds,
                      chunk_s=max(protocol.min_time_s, 0.01),
                      max_samples=max(protocol.max_samples * rounds, 3 * rounds))
    done, verdict = measure_models_chunked(device, models, chunked, seed)
    return [ModelRun(f.measurement.samples_ms, f.chunk_medians_ms,
                     {"round": [c[0] for c in f.chunk_log], "median_ms": [c[1] for c in f.chunk_log],
                      "quiet": [c[2] for c in f.chunk_log]},
                     {**f.noise.columns(), "verdict": verdict.line()}) for f in done]


def run_suite(suite: dict[str, Any], seed: int = 0,
              on_item: Callable[[str, str], None] | None = None) -> dict[str, Any]:
    """Measure every (model, device) pair of a loaded suite; return the results document."""
    return run_suites([suite], seed, on_item)[0]


def run_suites(suites: list[dict[str, Any]], seed: int = 0,
               on_item: Callable[[str, str], None] | None = None) -> list[dict[str, Any]]:
    """Measure several suites *interleaved*, round by round, on the first suite's devices.

    Measuring a baseline and a current suite in alternation (as asv's
    ``continuous`` mode does) makes the machine's drift hit both alike, so
    ``hwprof compare`` judges the change, not the minute each ran in.
    """
    from devices import resolve

    devices = []
    for entry in suites[0]["devices"]:
        options = {k: v for k, v in entry.items() if k != "name"}
        device = resolve(entry.get("name", ""), seed=seed, **options)
        device.require_available()
        devices.append(device)
    results: list[list[dict]] = [[] for _ in suites]
    for device in devices:
        protocol, rounds = suite_protocol(suites[0]["protocol"], device.simulated)
        items = [(k, m) for k, suite in enumerate(suites) for m in suite["models"]]
        if on_item:
            on_item(f"{len(items)} model(s) x {rounds} rounds", device.name)
        measured = measure_models(device, [m["model"] for _, m in items], protocol, rounds, seed)
        for (k, m), run in zip(items, measured):
            samples = run.samples_ms
            results[k].append({
                "model": m["name"], "source": m["source"],
                "model_sha256": hashlib.sha256(m["model"].SerializeToString()).hexdigest()[:16],
                "device": device.name, "simulated": device.simulated, "settings": device.recorded_settings(),
                "settings_hash": device.settings_hash(), "profile_hash": device.profile_hash(),
                "median_ms": float(np.median(samples)), "p10_ms": float(np.percentile(samples, 10)),
                "p90_ms": float(np.percentile(samples, 90)), "n": int(len(samples)),
                "round_medians_ms": run.round_medians_ms, "samples_ms": samples.tolist(), "chunks": run.chunks,
                **({"noise": run.noise} if run.noise else {}),
            })
    return [results_document(suite["name"], r, {"seed": seed, "interleaved_with": len(suites) - 1})
            for suite, r in zip(suites, results)]


def bench_job(suite: str | Path, out: str | Path, baseline: str | Path | None = None,
              baseline_out: str | Path | None = None, seed: int = 0, force: bool = False,
              on_item: Callable[[str, str], None] | None = None) -> dict[str, Any]:
    """What ``hwprof bench`` does: measure a suite (interleaved with ``baseline``'s) and write the results.

    Every output is checked before anything is measured.

    Returns:
        The suite's results document (the one written to ``out``).

    Raises:
        HwprofError: for a baseline without its output (or the reverse), one file named twice,
            an output that is not an hwprof results file (unless ``force``), or a bad suite.
    """
    from hwprof.io import write_json
    from hwprof.outputs import guard_output

    if (baseline is None) != (baseline_out is None):
        raise HwprofError("--baseline and --baseline-out go together")
    if baseline_out is not None and Path(out).absolute() == Path(baseline_out).absolute():
        raise HwprofError("--out and --baseline-out name the same file", "give each suite its own results file")
    for option, path in (("--out", out), ("--baseline-out", baseline_out)):
        if path is not None:
            guard_output(path, option, "results file", is_results_file, force, [suite, baseline])
    suites = [load_suite(suite)] + ([load_suite(baseline)] if baseline else [])
    docs = run_suites(suites, seed=seed, on_item=on_item)
    write_json(out, docs[0], indent=1)
    if baseline_out is not None:
        write_json(baseline_out, docs[1], indent=1)
    return docs[0]


def results_document(suite: str, results: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> dict:
    """The JSON document ``hwprof compare`` reads."""
    return {"format": FORMAT, "version": VERSION, "suite": suite, "hwprof_version": hwprof.__version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "host": host_info(),
            **(extra or {}), "results": results}


def is_results_file(path: str | Path) -> bool:
    """Whether ``path`` is a results file of ``hwprof bench`` (so a rerun may replace it)."""
    return load_results(path) is not None


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a results file written by ``hwprof bench`` (or ``python -m benchmarks``).

    Raises:
        HwprofError: if unreadable or not a results file.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise HwprofError(f"results file {path} does not exist", "run `hwprof bench SUITE --out FILE` first") from None
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise HwprofError(f"cannot read results file {path}: {exc}", "give a JSON file from `hwprof bench`") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("results"), list):
        raise HwprofError(f"{path} is not an hwprof benchmark results file", "give a JSON file from `hwprof bench`")
    for r in doc["results"]:
        if not {"model", "device", "samples_ms"} <= set(r) or len(r["samples_ms"]) < 3:
            raise HwprofError(f"{path} has a malformed result entry: {str(r)[:80]}")
    return doc
