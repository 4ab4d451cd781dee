"""Graph advisor: where a model loses time to its graph's spelling, and the rewrite that wins it back.

:func:`advise` finds the rewritable chains of :mod:`hwprof.graph_rewrites`
in a model, profiles the model on the device per node (as the runtime ran
it), and gives each kind of chain the time of its own nodes plus the layout
conversions the runtime inserted around them (onnxruntime's NCHWc layout is
left and re-entered around every op it cannot keep blocked). With a
kernel-rf predictor the saving is also predicted: the predicted latency of
the model minus that of the model with the rewrite applied.

:func:`fix` applies the safe rewrites, keeps only those whose outputs match
the original (max abs difference within ``tolerance`` on seeded inputs), and
:func:`before_after` measures both models round-robin on the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from hwprof.errors import HwprofError
from hwprof.graph_rewrites import KINDS, Rewrite, apply_rewrites, find_rewrites, max_output_difference

LAYOUT_OPS = ("ReorderInput", "ReorderOutput")


@dataclass
class Finding:
    """One kind of rewritable chain found in a model.

    Attributes:
        kind: A key of :data:`hwprof.graph_rewrites.KINDS`.
        rewrite: What replaces each chain.
        count: How many chains.
        nodes_ms: Profiled time of the chains' nodes and the layout conversions around them.
        predicted_saving_ms: Predicted latency saved by the rewrite (with a kernel-rf predictor), at most
            ``nodes_ms`` (what its nodes take as profiled), else None.
    """

    kind: str
    rewrite: str
    count: int
    nodes_ms: float
    predicted_saving_ms: float | None = None


@dataclass
class Advice:
    """What :func:`advise` reports.

    Attributes:
        device: Device name.
        simulated: Whether the device is simulated.
        total_ms: Sum of the per-node profile.
        layout_ms: Profiled time of all layout conversions the runtime inserted.
        findings: One entry per kind of chain found.
        predicted_ms: The predictor's latency for the model as it is (with a predictor).
    """

    device: str
    simulated: bool
    total_ms: float
    layout_ms: float
    findings: list[Finding] = field(default_factory=list)
    predicted_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _attributed_times(model: onnx.ModelProto, rewrites: list[Rewrite], device) -> tuple[dict[str, float], float, float]:
    """Per kind: profiled ms of its nodes plus adjacent layout conversions; the profile's total; layout total."""
    from hwprof.per_op import named

    model = named(model)
    times = device.op_times(model, 20)
    by_node = {t.node: t.ms for t in times}
    total = float(sum(t.ms for t in times))
    layout = float(sum(t.ms for t in times if t.op in LAYOUT_OPS))
    runtime_nodes = _runtime_graph_nodes(model, device)
    produced_by = {o: n for n in runtime_nodes for o in n.output}
    consumers: dict[str, list] = {}
    for n in runtime_nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    out: dict[str, float] = {}
    for rewrite in rewrites:
        names = set(rewrite.nodes)
        chain = [n for n in runtime_nodes if n.name in names]
        around = set()
        for n in chain:
            for i in n.input:
                p = produced_by.get(i)
                if p is not None and p.op_type == "ReorderOutput":
                    around.add(p.name)
            for o in n.output:
                around.update(c.name for c in consumers.get(o, []) if c.op_type == "ReorderInput")
        ms = sum(by_node.get(name, 0.0) for name in names | around)
        out[rewrite.kind] = out.get(rewrite.kind, 0.0) + ms
    return out, total, layout


def _runtime_graph_nodes(model: onnx.ModelProto, device) -> list[onnx.NodeProto]:
    """Nodes of the graph the device runs (onnxruntime's optimized graph on cpu; the model itself elsewhere)."""
    from hwprof.runtime_graph import ONNXRUNTIME, optimized_model, runtime_for

    import json

    runtime = runtime_for(device.name, json.dumps(device.settings()), device.simulated)
    if runtime.kind != ONNXRUNTIME:
        return list(model.graph.node)
    return list(optimized_model(model, runtime).graph.node)


def advise(model: onnx.ModelProto, device, predictor=None) -> Advice:
    """Where ``model`` loses time on ``device`` to how its graph is spelled (see the module docstring).

    Args:
        model: A single-input ONNX model.
        device: A :class:`~hwprof.device.Device` that can break latency down per op.
        predictor: Optional kernel-rf predictor fitted on the device, for predicted savings.
    """
    rewrites = find_rewrites(model)
    attributed, total, layout = _attributed_times(model, rewrites, device)
    advice = Advice(device.name, device.simulated, total, layout)
    if predictor is not None:
        advice.predicted_ms = float(predictor.predict_onnx([model])[0])
    for kind in KINDS:
        chosen = [r for r in rewrites if r.kind == kind]
        if not chosen:
            continue
        saving = None
        if predictor is not None:  # a rewrite cannot save more than its nodes take: the predictor's excess is its error
            saving = advice.predicted_ms - float(predictor.predict_onnx([apply_rewrites(model, chosen)])[0])
            saving = min(saving, attributed.get(kind, 0.0))
        advice.findings.append(Finding(kind, KINDS[kind], len(chosen), attributed.get(kind, 0.0), saving))
    return advice


@dataclass
class FixResult:
    """What :func:`fix` did.

    Attributes:
        model: The rewritten model.
        applied: Rewrite kind -> number applied.
        refused: Rewrite kind -> why it was not applied (outputs changed).
        max_abs_diff: Largest output difference of the result from the original on seeded inputs.
    """

    model: onnx.ModelProto
    applied: dict[str, int]
    refused: dict[str, str]
    max_abs_diff: float


def fix(model: onnx.ModelProto, tolerance: float = 1e-4) -> FixResult:
    """Apply every safe rewrite whose outputs stay within ``tolerance`` of the original.

    Each kind is first checked on its own; a kind whose rewrite changes the
    outputs by more than ``tolerance`` (max abs difference over seeded inputs)
    is refused. The kinds kept are then applied together and checked again.
    """
    rewrites = find_rewrites(model)
    kept: list[Rewrite] = []
    refused: dict[str, str] = {}
    for kind in KINDS:
        chosen = [r for r in rewrites if r.kind == kind]
        if not chosen:
            continue
        diff = max_output_difference(model, apply_rewrites(model, chosen))
        if diff <= tolerance:
            kept.extend(chosen)
            continue
        safe = [r for r in chosen if max_output_difference(model, apply_rewrites(model, [r])) <= tolerance]
        kept.extend(safe)
        refused[kind] = (f"{len(chosen) - len(safe)} of {len(chosen)} chain(s) would change the outputs "
                         f"(max abs difference {diff:.2e} > {tolerance:g})")
    fixed = apply_rewrites(model, kept)
    try:
        onnx.checker.check_model(fixed)
    except onnx.checker.ValidationError as exc:  # pragma: no cover - the rewrites keep the graph valid
        raise HwprofError(f"the rewritten model is not valid ONNX: {str(exc).splitlines()[0]}",
                          "report this model to the hwprof developers") from None
    diff = max_output_difference(model, fixed) if kept else 0.0
    applied: dict[str, int] = {}
    for r in kept:
        applied[r.kind] = applied.get(r.kind, 0) + 1
    return FixResult(fixed, applied, refused, diff)


def before_after(models: list[onnx.ModelProto], device: str, rounds: int = 3, **options: Any) -> list[float]:
    """Median latency (ms) of each model, measured round-robin for ``rounds`` rounds, drift-corrected.

    On a real device each measurement is scaled by the reference network's latency
    around it relative to the first one, so a change in machine speed between
    models does not read as a speed-up.
    """
    from hwprof.api import measure

    times: list[list[float]] = [[] for _ in models]
    nominal = None
    for _ in range(rounds):
        for i, model in enumerate(models):
            row = measure(model, device=device, **options)
            ref = row.get("ref_ms")
            nominal = nominal or ref
            times[i].append(row["median_ms"] * (nominal / ref if ref else 1.0))
    return [float(np.median(t)) for t in times]


FIXED_STAMP = "hwprof.advise.fixed"  # metadata of models `advise --fix` wrote (they may be overwritten)


def check_fix_target(model: Any, fix_out: Any, force: bool = False) -> None:
    """Refuse a ``--fix`` path that is the input model, or an existing file advise did not write (unless ``force``).

    Raises:
        HwprofError: naming the file and the way out.
    """
    from hwprof.outputs import guard_output

    guard_output(fix_out, "--fix", "fixed model (from `advise --fix`)", _is_fixed_model, force,
                 [model] if isinstance(model, (str, Path)) else [])


def _is_fixed_model(path: Path) -> bool:
    return any(p.key == FIXED_STAMP for p in onnx.load(str(path), load_external_data=False).metadata_props)


def advise_model(model: Any, device: str = "cpu", predictor_path: Any = None, fix_out: Any = None,
                 tolerance: float = 1e-4, rounds: int = 3, input_shape: Any = None,
                 force: bool = False) -> dict[str, Any]:
    """What ``hwprof advise`` does, as one call: advise, and with ``fix_out`` fix, save and time before/after.

    Args:
        model: ONNX model or path.
        device: Device name.
        predictor_path: Optional kernel-rf predictor file of the device.
        fix_out: Where to write the fixed model (None: no fix).
        tolerance: Largest output difference a rewrite may make.
        rounds: Round-robin rounds of the before/after timing.
        input_shape: For models with dynamic dimensions.
        force: Overwrite an existing ``fix_out`` that advise did not write (never the input model).

    Returns:
        The report as a JSON-ready dict (see :class:`Advice`), with ``fix`` when fixing.

    Raises:
        HwprofError: for bad input (unreadable model, unknown device, a predictor that is not kernel-rf).
    """
    from devices import resolve
    from hwprof.api import to_onnx
    from hwprof.build_onnx import save_onnx
    from hwprof.predictors import store

    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise HwprofError(f"--tolerance must be a non-negative number, got {tolerance}", "e.g. --tolerance 1e-4")
    if rounds < 1:
        raise HwprofError(f"--rounds must be at least 1, got {rounds}", "e.g. --rounds 3")
    if fix_out is not None:
        check_fix_target(model, fix_out, force)
    proto = to_onnx(model, input_shape)
    dev = resolve(device)
    dev.require_available()
    predictor = store.load(predictor_path) if predictor_path else None
    if predictor is not None:
        store.check_device(predictor, dev, predictor_path)
    if predictor is not None and predictor.name != "kernel-rf":
        raise HwprofError(f"--predictor must be a kernel-rf predictor, not {predictor.name}",
                          "fit one with `hwprof fit-predictor --model kernel-rf`")
    result: dict[str, Any] = {"model": str(model), **advise(proto, dev, predictor).to_dict()}
    if fix_out is not None:
        fixed = fix(proto, tolerance)
        stamp = fixed.model.metadata_props.add()
        stamp.key, stamp.value = FIXED_STAMP, "1"
        save_onnx(fixed.model, fix_out)
        before, after = before_after([proto, fixed.model], device, rounds) if fixed.applied else (None, None)
        result["fix"] = {"out": str(fix_out), "applied": fixed.applied, "refused": fixed.refused,
                         "max_abs_diff": fixed.max_abs_diff, "before_ms": before, "after_ms": after,
                         "speedup": before / after if fixed.applied else 1.0, "rounds": rounds}
    return result


def advise_notes(result: dict, fix_out: Path | None, rounds: int) -> list[str]:
    """What ``hwprof advise`` says under its table: what the findings mean and what ``--fix`` did."""
    if not result["findings"]:
        notes = ["nothing to rewrite: the graph uses the forms the runtime fuses"]
    else:
        notes = ["time in its nodes: the chains' own nodes plus the layout conversions next to them; "
                 "a rewrite saves up to that much"]
    fix = result.get("fix")
    if fix is None:
        return notes
    notes += [f"refused {kind}: {why}" for kind, why in fix["refused"].items()]
    if fix["applied"]:
        notes.append(f"wrote {fix_out}: applied {', '.join(f'{n} {k}' for k, n in fix['applied'].items())}; "
                     f"outputs within {fix['max_abs_diff']:.1e} of the original; measured "
                     f"{fix['before_ms']:.3f} ms -> {fix['after_ms']:.3f} ms "
                     f"({fix['speedup']:.2f}x, {rounds} round-robin rounds, drift-corrected)"
                     + (" - SIMULATED" if result["simulated"] else ""))
    else:
        notes.append(f"wrote {fix_out} unchanged: no rewrite applied")
    return notes
