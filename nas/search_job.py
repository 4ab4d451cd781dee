"""The whole of ``nas search`` as one call: checks, latency model, search, refinement, the winner measured, outputs.

``nas search`` parses its options, calls :func:`run_search_job` and prints the
:class:`SearchJob` it returns; a script gets the same summary and files from the
same call. (:func:`nas.api.search` is the lighter call that only searches and
returns the :class:`~nas.searchers.base.SearchResult`.)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

from hwprof.errors import HwprofError
from nas.searchers.base import SearchResult


@dataclass
class SearchJob:
    """What :func:`run_search_job` did.

    Attributes:
        summary: The contents of ``summary.json`` (files written under ``summary["files"]``).
        result: The searcher's result (history, Pareto front, best).
        space_name: The space searched (after variables were held).
        label: The target as shown to users (``cpu:int8``, with its settings).
        simulated: Whether the target is a simulated device.
        predictor_name: The latency model's registered name.
        predictor_source: Where the latency model came from (a file, or how it was built).
        out: The output directory.
    """

    summary: dict[str, Any]
    result: SearchResult
    space_name: str
    label: str
    simulated: bool
    predictor_name: str
    predictor_source: str
    out: Path

    def table(self):
        """The terminal summary of ``nas search`` (a rich table)."""
        from nas.search_report import search_table

        return search_table(self.summary, self.result, self.space_name, self.label, self.simulated,
                            self.predictor_name, self.predictor_source, self.out)

    def warning(self) -> str | None:
        """A warning line when the winner, measured on the target, is over the latency target (else None)."""
        from nas.search_report import over_target_warning

        return over_target_warning(self.summary, self.label)


def run_search_job(target: str, space: str = "ofa", *, latency_ms: float | None = None,
                   searcher: str = "evolutionary", estimator: str = "synflow", predictor_path: Path | None = None,
                   accuracy_data: Path | None = None, data: Path | None = None, budget: int = 400,
                   epochs: int | None = None, scale: bool | None = None, postprocess: bool | None = None,
                   seed: int = 0, out: Path | None = None, params: dict[str, Any] | None = None,
                   executor: str = "local", ray_address: str | None = None, shrink: bool = False,
                   measure_best: bool = True, graph_style: str = "hwprof", fix: list[str] | None = None,
                   few_shot: int | None = None, transfer_from: str | None = None, recalibrate: int | None = None,
                   console: Console | None = None, quiet: bool = False) -> SearchJob:
    """Search ``space`` for accurate networks that are fast on ``target``, as ``nas search`` does.

    Args:
        target: Device name (see ``hwprof devices``).
        space: Space name, ``NAME:KEY=VALUE``, or a reduced-space ``.json``.
        latency_ms: Latency constraint (None: the whole front; single-path needs one).
        searcher: A registered searcher.
        estimator: A registered estimator (not for searchers that train a supernet).
        predictor_path: Latency predictor file (None: a few-shot fit, or the cached default).
        accuracy_data: (arch, accuracy) pairs for ``estimator="predictor"``.
        data: Image folder for ``estimator="train"`` and single-path.
        budget: Distinct networks to score (not single-path).
        epochs: Single-path supernet epochs.
        scale: Compound-scale the winner up to the constraint (default: on for single-path).
        postprocess: Add SE / h-swish where they fit and help (default: on for single-path).
        seed: Same seed, same result.
        out: Output directory (default ``runs/search-SPACE-TARGET``).
        params: Searcher settings.
        executor: Where candidates are scored: ``local`` or ``ray``.
        ray_address: Ray cluster ``HOST:PORT`` for ``executor="ray"``.
        shrink: Progressive space shrinking (evolutionary only).
        measure_best: Measure the winner on the target at the end.
        graph_style: The graph form latency is predicted and verified in.
        fix: ``NAME=VALUE`` variables held at one value.
        few_shot: Bring the target up from this many measured networks (with ``transfer_from``).
        transfer_from: Comma-separated source predictor files for ``few_shot``.
        recalibrate: After a ``few_shot`` search under ``latency_ms``: measure this many of the best-scoring
            networks predicted near the target, refit the predictor with them and choose the winner again
            (:mod:`nas.recalibration`; default RECALIBRATE_NETWORKS, 0: off).
        console: Where progress goes (default: stderr).
        quiet: No progress or status lines.

    Raises:
        HwprofError: for bad input (an unknown name, an impossible constraint, options that do not go together).
    """
    from devices import resolve
    from hwprof.executors import executor_from_options
    from hwprof.registry import SEARCHERS
    from nas.accuracy import create_estimator
    from nas.dimensions import front_distribution, hold_unseen, layer_token_distribution, parse_fix
    from nas.latency_models import latency_model_for
    from nas.results import feasible_range, latency_range, write_outputs
    from nas.search_report import run_with_progress
    from nas.searchers import Constraint
    from nas.spaces import get_space

    if latency_ms is not None and not (math.isfinite(latency_ms) and latency_ms > 0):
        raise HwprofError(f"--latency-ms must be a positive number of milliseconds, got {latency_ms}",
                          "e.g. --latency-ms 5")
    if few_shot is not None and few_shot < 1:
        raise HwprofError(f"--few-shot must be at least 1 network, got {few_shot}", "e.g. --few-shot 20")
    start = time.perf_counter()
    err = console or Console(stderr=True)
    say = (lambda _m: None) if quiet else (lambda m: err.print(f"[dim]{m}[/]"))
    params = dict(params or {})
    sp = get_space(space)
    dev = resolve(target, seed=seed, graph_style=graph_style)
    trains = getattr(SEARCHERS.factory(searcher), "trains_supernet", False)  # unknown names fail here
    if shrink:
        if searcher != "evolutionary":
            raise HwprofError(f"--shrink applies to --searcher evolutionary, not {searcher}",
                              "drop --shrink or use --searcher evolutionary")
        params["shrink"] = True
    if trains:
        if latency_ms is None:
            raise HwprofError(f"{searcher} search needs a latency target", "give --latency-ms (see the feasible "
                              "range with any other searcher, or `nas search ... --latency-ms 1` tells it)")
        if epochs is not None:
            params["epochs"] = epochs
        params.setdefault("data", str(data) if data else None)
    elif epochs is not None:
        raise HwprofError("--epochs applies to --searcher single-path", "use --budget for this searcher")
    if latency_ms is None and (scale or postprocess):
        raise HwprofError("--scale and --postprocess need a latency constraint", "give --latency-ms")
    do_scale = trains if scale is None else scale
    do_post = trains if postprocess is None else postprocess
    search_impl = SEARCHERS.create(searcher, **params)
    if trains and executor != "local":
        raise HwprofError(f"--executor {executor} fans out candidate scoring; {searcher} trains one supernet here",
                          "drop --executor for single-path search")
    fixed = parse_fix(fix or [], sp)
    if trains and fixed:
        raise HwprofError(f"--fix applies to searchers that sample networks, not {searcher}",
                          "drop --fix, or use --searcher evolutionary")
    recalibrate = _recalibration_count(recalibrate, few_shot, latency_ms, trains)
    est = None if trains else create_estimator(estimator, accuracy_data=accuracy_data, data=data, seed=seed)
    sp, held = hold_unseen(sp, est, fixed)
    search_impl.check_space(sp)  # before a predictor is built or measured for it
    runner = executor_from_options(executor, ray_address)
    if runner.name != "local":
        from nas.accuracy.base import ExecutorEstimator

        est = ExecutorEstimator(est, runner)
    label = dev.label
    out = out or Path("runs") / f"search-{sp.name}-{dev.name}"
    try:
        latency_model, predictor_source = latency_model_for(dev, sp, predictor_path, few_shot, transfer_from,
                                                            latency_ms, out, seed, say)
        fastest, slowest = feasible_range(sp, latency_model, latency_ms, label)
        constraint = Constraint(latency_ms)
        result = run_with_progress(search_impl, trains, sp, latency_model, est, constraint, budget, seed, label,
                                   err, quiet)
        recalibration = None
        if recalibrate and latency_ms > slowest:
            say(f"no recalibration: every network is predicted under the {latency_ms:g} ms target")
        elif recalibrate:
            from nas.latency_models import few_shot_refitter
            from nas.recalibration import recalibrated_search

            latency_model, result, recalibration = recalibrated_search(
                result, latency_ms, recalibrate, few_shot_refitter(dev, sp, transfer_from, out, seed, say),
                lambda model: run_with_progress(search_impl, trains, sp, model, est, constraint, budget, seed, label,
                                                err, quiet), say)
            fastest, slowest = latency_range(sp, latency_model)
    finally:
        runner.close()
    summary = {
        "space": sp.name, "target": dev.name if dev.simulated else label,  # cpu:int8, as given
        "simulated": dev.simulated, "searcher": searcher,
        "searcher_settings": result.settings, "estimator": None if trains else estimator,
        "score_label": result.estimator, "score_kind": "supernet top-1" if trains else est.kind,
        "predictor": latency_model.name,
        "predictor_file": predictor_source, "latency_constraint_ms": latency_ms,
        "feasible_range_ms": [fastest, slowest],
        "constraint_binding": None if latency_ms is None else latency_ms <= slowest,
        "budget": None if trains else budget, "seed": seed,
        "graph_style": graph_style, "held": [h.to_dict() for h in held],
        "front_distribution": front_distribution(sp, [c.arch for c in result.pareto]),
        "front_layer_tokens": layer_token_distribution(sp, [c.arch for c in result.pareto]),
        "front_globals": [v.name for v in sp.variables if v.kind != "layer"],
        "executor": runner.name, "evaluated": len(result.history), "pareto_size": len(result.pareto),
        "hypervolume": result.hypervolume,
        "hypervolume_reference": list(result.reference), "search_wall_s": result.wall_s, "extra": result.extra,
        "recalibration": recalibration, "best": None,
    }
    final = None
    if result.best is not None:
        final = _finish_best(summary, result, sp, dev, label, latency_ms, search_impl, data, seed, do_scale,
                             do_post, measure_best, say)
    summary["wall_s"] = time.perf_counter() - start
    title = f"{searcher} on {label}, {sp.name}" + (f", ≤ {latency_ms:g} ms" if latency_ms else "")
    summary["files"] = write_outputs(out, result, summary, title, final)
    return SearchJob(summary, result, sp.name, label, dev.simulated, latency_model.name, predictor_source, out)


#: Networks a ``--few-shot`` search under a latency target measures near it to recalibrate (:mod:`nas.recalibration`).
RECALIBRATE_NETWORKS = 5


def _recalibration_count(recalibrate: int | None, few_shot: int | None, latency_ms: float | None,
                         trains: bool) -> int:
    """How many networks to measure near the target after the search (0: none); bad combinations refused."""
    if recalibrate is not None and (recalibrate < 0 or few_shot is None or latency_ms is None or trains):
        raise HwprofError(f"--recalibrate {recalibrate} needs a non-negative count, --few-shot, --latency-ms and a "
                          "searcher that scores networks", "drop --recalibrate, or add --few-shot N --latency-ms MS")
    if few_shot is None or latency_ms is None or trains:
        return 0
    return RECALIBRATE_NETWORKS if recalibrate is None else recalibrate


#: A winner predicted this far or more under the latency target is reported with why (:func:`unused_budget`).
UNUSED_BUDGET_FRACTION = 0.10


def unused_budget(result: SearchResult, latency_ms: float) -> dict | None:
    """Why a winner lies well under the latency target: what the search scored between it and the target.

    With a score that prefers no slower network (a proxy that plateaus), the
    winner lands under the target although the latency model is right; a user
    should see that the slack is the score's choice, not a prediction error.

    Returns:
        None when the winner's predicted latency is within UNUSED_BUDGET_FRACTION of the target (or the
        searcher keeps no history); else the fraction unused, how many scored networks were predicted between
        the winner and the target, and their best score (None if none).
    """
    best = result.best
    if best is None or best.latency_ms >= (1 - UNUSED_BUDGET_FRACTION) * latency_ms or not result.history:
        return None
    closer = [c.score for c in result.history if best.latency_ms < c.latency_ms <= latency_ms]
    return {"fraction": 1 - best.latency_ms / latency_ms, "networks_closer": len(closer),
            "best_score_closer": max(closer) if closer else None}


def _finish_best(summary: dict, result: SearchResult, sp, dev, label: str, latency_ms: float | None,
                 search_impl, data: Path | None, seed: int, do_scale: bool, do_post: bool, measure_best: bool,
                 say: Callable[[str], None]):
    """Record the winner in ``summary``: refined (scaled, post-processed) if asked, then measured on the target.

    Returns:
        The refined network where refinement changed it, else None.
    """
    best = result.best
    summary["searched"] = {"arch_hash": best.arch.hash, "score": best.score,
                           "predicted_latency_ms": best.latency_ms, "genes": sp.describe(best.arch)}
    if latency_ms is not None:
        summary["searched"]["predicted_vs_constraint"] = best.latency_ms / latency_ms - 1
        slack = unused_budget(result, latency_ms)
        if slack is not None:
            summary["searched"]["unused_budget"] = slack
    final_arch, final = best.arch, None
    if do_scale or do_post:
        from nas.datasets import load_training_data
        from hwprof.interleave import network_timer
        from nas.refine import refine, short_training_score

        dev.require_available()
        images = getattr(search_impl, "data_", None) or load_training_data(data, 32, seed=seed)
        refined = refine(best.arch, latency_ms, network_timer(dev), short_training_score(images, seed=seed),
                         do_scale, do_post, status=say)
        summary["refined"] = refined.to_dict() | {"latency_source": f"measured on {label}",
                                                  "score": f"top-1 after 3 epochs on {images.description}"}
        if refined.arch.hash != best.arch.hash:
            final_arch = final = refined.arch
    summary["best"] = {"arch_hash": final_arch.hash, "score": best.score if final is None else None,
                       "predicted_latency_ms": best.latency_ms if final is None else None,
                       "macs": final_arch.macs, "params": final_arch.params}
    if final is None:
        summary["best"]["genes"] = sp.describe(best.arch)
    if measure_best:
        from hwprof.interleave import network_timer

        say(f"measuring the best network on {label}")
        dev.require_available()
        timer = network_timer(dev)
        measured = timer(final_arch)
        if final is not None:  # the searched network too: its prediction is checked there
            summary["searched"]["measured_latency_ms"] = timer(best.arch)
            summary["searched"]["prediction_error"] = best.latency_ms / timer(best.arch) - 1
        summary["best"]["measured_latency_ms"] = measured
        if final is None:
            summary["best"]["prediction_error"] = best.latency_ms / measured - 1
        summary["best"]["meets_constraint_measured"] = None
        if latency_ms is not None:
            summary["best"]["meets_constraint_measured"] = measured <= latency_ms
            summary["best"]["measured_vs_constraint"] = measured / latency_ms - 1
    return final
