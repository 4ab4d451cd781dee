"""The terminal side of ``nas search``: its summary table, and the search run under a progress bar."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table


def search_table(summary: dict, result, space: str, label: str, simulated: bool, predictor: str,
                  predictor_source: str, out: Path) -> Table:
    """The terminal summary of `nas search`."""
    latency_ms = summary["latency_constraint_ms"]
    fastest, slowest = summary["feasible_range_ms"]
    sim = " - SIMULATED device" if simulated else ""
    table = Table(title=f"nas search: {space} on {label}{sim}")
    table.add_column("item")
    table.add_column("value", justify="right")
    if summary["budget"] is None:
        table.add_row("searcher", f"{summary['searcher']} ({summary['searcher_settings']['epochs']} epochs, "
                      f"{summary['extra'].get('distinct_networks_visited', 0)} networks visited)")
        table.add_row("training data", summary["extra"].get("data", ""))
    else:
        table.add_row("searcher / budget", f"{summary['searcher']} / {len(result.history)} networks scored")
    if "shrink" in summary["extra"]:
        removed = summary["extra"]["shrink"]["removed"]
        table.add_row("space shrinking", f"{len(removed)} choice(s) removed (summary.json: extra.shrink)")
    table.add_row("score", result.estimator)
    table.add_row("latency predictor", f"{predictor} ({predictor_source})")
    table.add_row("graph style (predicted and measured)", summary.get("graph_style", "hwprof"))
    for h in summary.get("held", []):
        table.add_row(f"held: {h['variable']} = {h['value']}", h["reason"])
    dist = summary.get("front_distribution", {})
    for name in summary.get("front_globals", []):
        counts = dist[name]
        shown = ", ".join(f"{k}: {v}" for k, v in list(counts.items())[:6]) + (" ..." if len(counts) > 6 else "")
        table.add_row(f"front: {name} (value: networks)", shown)
    tokens = summary.get("front_layer_tokens")
    if tokens:
        table.add_row("front: layer choices", ", ".join(f"{k}: {v}" for k, v in tokens.items()))
    table.add_row("feasible latency range, ms", f"{fastest:.3f} - {slowest:.3f}")
    table.add_row("latency constraint, ms", "none (whole front)" if latency_ms is None else f"{latency_ms:g}")
    if latency_ms is not None and latency_ms > slowest:
        held = ", ".join(f"{h['variable']} = {h['value']}" for h in summary.get("held", []))
        table.add_row("constraint not binding", f"above the slowest predicted network ({slowest:.3f} ms"
                      + (f", with {held}" if held else "") + "): every network meets it, so the winner lands "
                      "below it")
    table.add_row("Pareto front size / hypervolume", f"{len(result.pareto)} / {result.hypervolume:.4g}")
    b, searched = summary["best"], summary.get("searched")
    if b is None:
        table.add_row("best network", "none met the constraint")
    else:
        gap = f" ({searched['predicted_vs_constraint']:+.1%} vs constraint)" if "predicted_vs_constraint" in searched else ""
        if summary.get("recalibration"):
            table.add_row("recalibrated near the target", _recalibration_text(summary["recalibration"]))
        table.add_row("searched network", searched["arch_hash"])
        table.add_row(f"searched {summary['score_kind']}", f"{searched['score']:.4f}")
        table.add_row("searched latency, predicted ms", f"{searched['predicted_latency_ms']:.3f}{gap}")
        slack = searched.get("unused_budget")
        if slack is not None:
            table.add_row("unused latency budget", _unused_budget_text(slack, searched, summary))
        if "measured_latency_ms" in searched:
            table.add_row("searched latency, measured ms", f"{searched['measured_latency_ms']:.3f} "
                          f"(prediction {searched['prediction_error']:+.1%})")
        refined = summary.get("refined")
        if refined:
            sc, post = refined["scaling"], refined["postprocess"]
            if sc is not None:
                table.add_row("compound scaling", f"phi {sc['phi']:g}: depth x{sc['depth']:.2f}, width "
                              f"x{sc['width']:.2f}, resolution x{sc['resolution']:.2f}" if sc["changed"]
                              else "unchanged (no headroom)")
            if post is not None:
                table.add_row("post-processing", post["applied"] or "unchanged (no variant fitted and helped)")
            table.add_row("final network", b["arch_hash"])
        if "measured_latency_ms" in b:
            notes = [f"prediction {b['prediction_error']:+.1%}"] if "prediction_error" in b else []
            if "measured_vs_constraint" in b:
                notes.append(f"{b['measured_vs_constraint']:+.1%} vs constraint")
            detail = f" ({'; '.join(notes)})" if notes else ""
            table.add_row("best latency, measured ms", f"{b['measured_latency_ms']:.3f}{detail}")
        table.add_row("MACs / params", f"{b['macs'] / 1e6:.1f} M / {b['params'] / 1e6:.2f} M")
    table.add_row("wall time, s", f"{summary['wall_s']:.1f}")
    table.add_row("outputs", str(out))
    return table


def over_target_warning(summary: dict, label: str) -> str | None:
    """The warning line for a winner that, measured on the target, is over the latency target; else None.

    The search still exits 0 (it ran, and ``summary.json`` says ``meets_constraint_measured: false``):
    the predictor under-estimated this network, and the line says by how much so a script can act on it.
    """
    best = summary.get("best") or {}
    if best.get("meets_constraint_measured") is not False:
        return None
    target = summary["latency_constraint_ms"]
    return (f"warning: the winner measured {best['measured_latency_ms']:.3f} ms on {label}, "
            f"{best['measured_vs_constraint']:+.1%} over the {target:g} ms target; the predictor under-estimated "
            "it (search with a lower --latency-ms, or refit the predictor with more data near the target)")


def _recalibration_text(record: dict) -> str:
    """What measuring the networks near the target found, and what it did to the winner."""
    measured = record["networks"]
    text = (f"measured {len(measured)} networks predicted {min(n['predicted_before_ms'] for n in measured):.3g}-"
            f"{max(n['predicted_before_ms'] for n in measured):.3g} ms: the predictor was off by "
            f"{record['error_before']:+.1%} on average there (MAPE {record['mape_before']:.1%}); refitted with them")
    before = record["winner_before"]
    if before is not None:
        text += (f"; the first winner {before['arch_hash']} is now predicted {before['predicted_after_ms']:.3g} ms "
                 f"(was {before['predicted_before_ms']:.3g})")
    if "new_networks_searched_again" in record:
        text += f"; searched again with it ({record['new_networks_searched_again']} new networks scored)"
    return text


def _unused_budget_text(slack: dict, searched: dict, summary: dict) -> str:
    """Why the winner lies well under the target: the score preferred it, or the search found nothing slower."""
    between = f"between {searched['predicted_latency_ms']:.3g} and {summary['latency_constraint_ms']:g} ms"
    if not slack["networks_closer"]:
        return (f"{slack['fraction']:.0%}: no network scored was predicted {between}; a larger --budget may "
                "find one")
    return (f"{slack['fraction']:.0%}: {slack['networks_closer']} networks scored {between}, the best "
            f"{summary['score_kind']} among them {slack['best_score_closer']:.4f} against the winner's "
            f"{searched['score']:.4f}: the score prefers the faster network, not the latency model")


def run_with_progress(search_impl, trains: bool, sp, latency_model, est, constraint, budget: int, seed: int,
                      label: str, err: Console, quiet: bool):
    """Run a searcher with a progress bar (steps of supernet training, or networks scored)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[best]}"), TimeElapsedColumn(), console=err, disable=quiet)
    with progress:
        if trains:
            bar = progress.add_task(f"{search_impl.name}: training the supernet on {label}", total=None, best="")

            def on_step(info: dict) -> None:
                text = f"epoch {info['epoch']}  loss {info['loss']:.3f}  latency {info['expected_latency_ms']:.3f} ms"
                if "val_top1" in info:
                    text += f"  held-out top-1 {info['val_top1']:.3f}"
                progress.update(bar, total=info["total_steps"], completed=info["step"], best=text)

            return search_impl.search(sp, latency_model, None, constraint, 0, seed, on_step)
        bar = progress.add_task(f"{search_impl.name} on {label}", total=budget, best="")

        def on_progress(ev) -> None:
            feasible = [c for c in ev.history if constraint.feasible(c.latency_ms)]
            best_c = max(feasible, key=lambda c: c.score) if feasible else None
            text = f"step {ev.step}  best {est.kind} {best_c.score:.3f} @ {best_c.latency_ms:.2f} ms" if best_c else ""
            progress.update(bar, completed=len(ev.history), best=text)

        return search_impl.search(sp, latency_model, est, constraint, budget, seed, on_progress)
