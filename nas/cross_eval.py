"""Cross-target evaluation: is a network searched for target T better on T than one searched for another?

For each target (a device token such as ``cpu``, ``litert-cpu:int8`` or
``kirin-npu``) :func:`cross_eval` builds or reuses its latency predictor, sets
its latency budget (a quantile of the predicted latency of 2000 random
networks, or a given number of ms), and searches. Then every winner is
*measured* on every target (real measurements with the drift reference on real
devices, corrected to the run's median reference speed), and the results form
a matrix: rows = searched for, columns = measured on. A column's diagonal cell
is the network searched for that target; it "wins" when it meets the column's
budget and no other feasible winner on that column scores higher.

Everything is resumable: searches are kept as JSON under ``searches/`` and
measurements in datasets under ``measurements/``, so a rerun of the same
command skips what is done.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from hwprof.arch import Arch
from hwprof.errors import HwprofError
from hwprof.io import atomic_write_text, write_json

RANDOM_NETWORKS = 2000


@dataclass(frozen=True)
class TargetSetup:
    """A target's device token, its predictor and its latency budget."""

    token: str
    predictor: Any
    budget_ms: float
    budget_source: str
    simulated: bool


def _tag(token: str) -> str:
    return token.replace(":", "-").replace("/", "_")


def _per_target(items: list[str], targets: list[str], option: str, example: str) -> dict[str, str]:
    """``["cpu=X", "litert-cpu:int8=Y"]`` -> ``{"cpu": "X", ...}``, each key one of ``targets``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.rpartition("=")
        if not sep or key not in targets or not value:
            raise HwprofError(f"{option} '{item}' does not name one of the targets ({', '.join(targets)})",
                              f"write TARGET=VALUE, e.g. {option} {example}")
        out[key] = value
    return out


def parse_latency_overrides(items: list[str], targets: list[str]) -> dict[str, float]:
    """``["cpu=4.5", "litert-cpu:int8=3"]`` -> ``{"cpu": 4.5, ...}`` (each key one of ``targets``)."""
    out: dict[str, float] = {}
    for key, value in _per_target(items, targets, "--latency-ms", "cpu=4.5").items():
        try:
            out[key] = float(value)
        except ValueError:
            raise HwprofError(f"--latency-ms '{key}={value}' has no number of milliseconds", "e.g. cpu=4.5") from None
        if not (math.isfinite(out[key]) and out[key] > 0):
            raise HwprofError(f"--latency-ms '{key}={value}' must be a positive number of milliseconds",
                              "e.g. cpu=4.5")
    return out


def parse_predictor_files(items: list[str], targets: list[str]) -> dict[str, Path]:
    """``["cpu=cpu.pred"]`` -> ``{"cpu": Path("cpu.pred")}``: a target's predictor given instead of the cached one."""
    return {key: Path(value) for key, value in _per_target(items, targets, "--predictor", "cpu=cpu.pred").items()}


def setup_targets(space, targets: list[str], quantile: float, latency_ms: dict[str, float], seed: int,
                  status: Callable[[str], None], predictor_files: dict[str, Path] | None = None) -> list[TargetSetup]:
    """Device, predictor (a given file, else cached, built if missing) and budget of each target."""
    from devices import resolve
    from hwprof.predictors import store
    from hwprof.predictors.cache import cached_predictor

    if not 0 < quantile < 1:
        raise HwprofError(f"--budget-quantile must be between 0 and 1, got {quantile}", "e.g. 0.3")
    if len(set(targets)) != len(targets) or len(targets) < 2:
        raise HwprofError("cross-eval needs two or more different targets", "e.g. --targets cpu,litert-cpu:int8")
    rng = np.random.default_rng(123)
    genes = np.array([space.sample_genes(rng, space.option_mask()) for _ in range(RANDOM_NETWORKS)])
    devices = [resolve(token, seed=seed) for token in targets]  # every name checked before any work
    for device in devices:
        device.require_available()
    predictor_files = predictor_files or {}
    given = {token: store.load_for(path, device, getattr(space, "base", space).name)  # all checked before any work
             for (token, device) in zip(targets, devices) if (path := predictor_files.get(token)) is not None}
    setups = []
    for token, device in zip(targets, devices):
        label = device.label
        if token in given:
            predictor = given[token]
            status(f"{token}: using the given predictor {predictor_files[token]} ({label})")
        else:
            predictor, path, built = cached_predictor(device, space, status=status)
            status(f"{token}: {'built' if built else 'using cached'} predictor {path} ({label})")
        if token in latency_ms:
            budget, source = latency_ms[token], "given"
        else:
            budget = float(np.quantile(predictor.predict_genes(space, genes), quantile))
            source = f"{quantile:.0%} quantile of {RANDOM_NETWORKS} random networks' predicted latency"
        setups.append(TargetSetup(token, predictor, budget, source, device.simulated))
    return setups


def _search_file(out: Path, token: str, seed: int) -> Path:
    return out / "searches" / f"{_tag(token)}-s{seed}.json"


def run_searches(space, setups: list[TargetSetup], searcher: str, estimator, budget: int, seeds: list[int],
                 out: Path, status: Callable[[str], None]) -> dict[tuple[str, int], dict]:
    """One search per (target, seed), each kept as JSON (a rerun under the same budget reuses it)."""
    from nas.searchers import Constraint, create_searcher

    winners = {}
    for setup in setups:
        for seed in seeds:
            path = _search_file(out, setup.token, seed)
            if path.exists():
                record = json.loads(path.read_text())
                if np.isclose(record.get("budget_ms", np.nan), setup.budget_ms, rtol=1e-9, atol=0.0):
                    winners[(setup.token, seed)] = record
                    continue
                status(f"{setup.token}'s budget is now {setup.budget_ms:.3f} ms (was {record.get('budget_ms')}): "
                       f"searching again (seed {seed})")  # another predictor or --latency-ms: the old winner is stale
            status(f"searching for {setup.token} under {setup.budget_ms:.3f} ms (seed {seed})")
            result = create_searcher(searcher).search(space, setup.predictor, estimator,
                                                      Constraint(setup.budget_ms), budget, seed)
            best = result.best
            if best is None:
                raise HwprofError(f"the search for {setup.token} found no network under {setup.budget_ms:.3f} ms",
                                  "raise --budget-quantile or give a larger --latency-ms for it")
            record = {"target": setup.token, "seed": seed, "arch_json": best.arch.to_json(),
                      "arch_hash": best.arch.hash, "score": best.score, "predicted_ms": best.latency_ms,
                      "budget_ms": setup.budget_ms, "evaluated": len(result.history)}
            write_json(path, record)
            winners[(setup.token, seed)] = record
    return winners


def nominal_speed(setup: TargetSetup, measurements: pd.DataFrame) -> float:
    """The reference latency winners are corrected to: the predictor's nominal speed, so measured and predicted
    ms are in the same units (the budget is in them too); the run's median reference when the predictor has none."""
    nominal = (getattr(setup.predictor, "provenance_", None) or {}).get("reference_ms")
    return float(nominal) if nominal else float(measurements.ref_ms.median())


def measure_winners(setups: list[TargetSetup], winners: dict[tuple[str, int], dict], out: Path, seed: int,
                    executor=None, status: Callable[[str], None] = lambda _m: None) -> dict[str, pd.DataFrame]:
    """Every distinct winner measured on every target (resumable datasets), drift-corrected to the speed of
    that target's predictor (:func:`nominal_speed`)."""
    from devices import resolve
    from hwprof.dataset import Dataset
    from hwprof.drift import corrected
    from hwprof.profiling import measure_into

    archs = list({w["arch_hash"]: Arch.from_json(w["arch_json"]) for w in winners.values()}.values())
    measured = {}
    for setup in setups:
        device = resolve(setup.token, seed=seed)
        status(f"measuring {len(archs)} winners on {setup.token}")
        dataset = Dataset(out / "measurements" / _tag(setup.token))
        summary = measure_into(dataset, device, archs, mode="e2e", executor=executor,
                               reference_every_s=device.reference_every_s)
        if getattr(summary, "failed", 0):
            raise HwprofError(f"{summary.failed} measurement batches failed on {setup.token}",
                              "rerun the same command to retry them")
        df = dataset.read()
        df = df[(df.block_key == "e2e") & (df.settings_hash == device.settings_hash())]
        df = df.drop_duplicates("arch_hash", keep="last").set_index("arch_hash")
        ms = df.median_ms.astype(float)
        if df.ref_ms.notna().all() and len(df):
            ms = pd.Series(corrected(ms.to_numpy(), df.ref_ms.to_numpy(float), nominal_speed(setup, df)),
                           index=df.index)
        measured[setup.token] = ms
    return measured


def build_matrix(setups: list[TargetSetup], winners: dict[tuple[str, int], dict], measured: dict,
                 space) -> pd.DataFrame:
    """Long-form matrix: one row per (seed, searched for, measured on)."""
    rows = []
    for (searched, seed), w in winners.items():
        arch = Arch.from_json(w["arch_json"])
        for setup in setups:
            ms = float(measured[setup.token].get(w["arch_hash"], np.nan))
            predicted = float(setup.predictor.predict([arch])[0])
            rows.append({"seed": seed, "searched_for": searched, "measured_on": setup.token,
                         "arch_hash": w["arch_hash"], "score": w["score"], "measured_ms": ms,
                         "predicted_ms": predicted, "budget_ms": setup.budget_ms,
                         "feasible": bool(ms <= setup.budget_ms), "simulated": setup.simulated})
    return pd.DataFrame(rows)


def diagonal_summary(matrix: pd.DataFrame, targets: list[str]) -> dict[str, Any]:
    """Per target and seed: is the diagonal winner feasible, and does it win or tie the column?"""
    per_target = {}
    for target in targets:
        col = matrix[matrix.measured_on == target]
        entries = []
        for seed, group in col.groupby("seed"):
            diag = group[group.searched_for == target].iloc[0]
            others = group[(group.searched_for != target) & group.feasible]
            best_other = float(others.score.max()) if len(others) else None
            wins = bool(diag.feasible and (best_other is None or diag.score >= best_other - 1e-9))
            entries.append({"seed": int(seed), "diagonal_feasible": bool(diag.feasible),
                            "diagonal_score": float(diag.score), "best_feasible_other_score": best_other,
                            "diagonal_ms": float(diag.measured_ms), "budget_ms": float(diag.budget_ms),
                            "wins_or_ties": wins})
        per_target[target] = {"seeds": entries,
                              "diagonal_feasible": sum(e["diagonal_feasible"] for e in entries),
                              "wins_or_ties": sum(e["wins_or_ties"] for e in entries), "runs": len(entries)}
    return per_target


def plot_matrix(matrix: pd.DataFrame, targets: list[str], path: Path, score_label: str) -> None:
    """Heatmap of measured / budget for the first seed, each cell with ms, feasibility and score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = matrix[matrix.seed == matrix.seed.min()]
    ratio = np.full((len(targets), len(targets)), np.nan)
    fig, ax = plt.subplots(figsize=(1.9 * len(targets) + 2, 1.3 * len(targets) + 1.5))
    for i, row in enumerate(targets):
        for j, col in enumerate(targets):
            cell = first[(first.searched_for == row) & (first.measured_on == col)].iloc[0]
            ratio[i, j] = cell.measured_ms / cell.budget_ms
            ax.text(j, i, f"{cell.measured_ms:.2f} ms\n{'meets' if cell.feasible else 'over'}\n{cell.score:.2f}",
                    ha="center", va="center", fontsize=8, fontweight="bold" if i == j else "normal")
    image = ax.imshow(ratio, cmap="RdYlGn_r", vmin=0.6, vmax=1.4)
    labels = [f"{t} (simulated)" if first[first.measured_on == t].simulated.iloc[0] else t for t in targets]
    ax.set_xticks(range(len(targets)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(targets)), labels)
    ax.set_xlabel("measured on")
    ax.set_ylabel("searched for")
    ax.set_title(f"winner's measured latency / column budget (cells: ms, budget, {score_label})", fontsize=9)
    fig.colorbar(image, ax=ax, label="measured / budget")
    fig.tight_layout()
    from hwprof.io import atomic_write_via

    atomic_write_via(path, lambda p: fig.savefig(p, dpi=120, format="png"), ".png")
    plt.close(fig)


def cross_eval(space_name: str, targets: list[str], out: Path, budget_quantile: float = 0.3,
               latency_ms: dict[str, float] | None = None, searcher: str = "evolutionary",
               estimator: str = "synflow", budget: int = 400, seeds: int = 1, seed: int = 0, executor=None,
               status: Callable[[str], None] = lambda _m: None,
               predictor_files: dict[str, Path] | None = None) -> dict[str, Any]:
    """Search for each target, measure every winner on every target, write the matrix (see the module docstring).

    Args:
        space_name: Search space.
        targets: Device tokens (``NAME`` or ``NAME:DTYPE``), two or more.
        out: Output directory (``matrix.csv``, ``matrix.png``, ``summary.json``, ``searches/``,
            ``measurements/``); a rerun resumes.
        budget_quantile: Each target's latency budget as this quantile of 2000 random
            networks' predicted latency, unless ``latency_ms`` gives it.
        latency_ms: Budgets in ms per target token.
        searcher: Searcher name (default: the default searcher).
        estimator: Accuracy estimator (default synflow, a proxy).
        budget: Networks each search scores.
        seeds: Searches per target (seeds ``seed`` .. ``seed + seeds - 1``).
        seed: First seed (also the simulated devices' noise seed).
        executor: Where measurements run (local when None, or a Ray executor).
        status: Progress messages.
        predictor_files: A predictor file per target token, used instead of the cached
            default (checked to be for that device, its dtype and the space).

    Returns:
        The summary written to ``summary.json``.
    """
    from nas.accuracy import create_estimator
    from nas.dimensions import hold_unseen
    from nas.spaces import get_space

    if seeds < 1:
        raise HwprofError(f"--seeds must be at least 1, got {seeds}")
    latency_ms = dict(latency_ms or {})
    unknown = set(latency_ms) - set(targets)
    if unknown:
        raise HwprofError(f"--latency-ms names {', '.join(sorted(unknown))}, which is not among --targets")
    out = Path(out)
    est = create_estimator(estimator, seed=seed)
    space, held = hold_unseen(get_space(space_name), est)
    setups = setup_targets(space, targets, budget_quantile, latency_ms, seed, status, predictor_files)
    seed_list = list(range(seed, seed + seeds))
    winners = run_searches(space, setups, searcher, est, budget, seed_list, out, status)
    measured = measure_winners(setups, winners, out, seed, executor, status)
    matrix = build_matrix(setups, winners, measured, space)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "matrix.csv", matrix.to_csv(index=False))
    score_label = f"{estimator} {getattr(est, 'kind', 'score')}"
    plot_matrix(matrix, targets, out / "matrix.png", score_label)
    summary = {
        "space": space_name, "targets": targets, "searcher": searcher, "estimator": estimator,
        "score_kind": getattr(est, "kind", "score"), "search_budget": budget, "seeds": seed_list,
        "held": [h.to_dict() for h in held],
        "budgets_ms": {s.token: s.budget_ms for s in setups},
        "budget_sources": {s.token: s.budget_source for s in setups},
        "predictors": {s.token: str((predictor_files or {}).get(s.token, "cached default")) for s in setups},
        "simulated": {s.token: s.simulated for s in setups},
        "diagonal": diagonal_summary(matrix, targets),
        "files": {"matrix_csv": str(out / "matrix.csv"), "matrix_png": str(out / "matrix.png")},
    }
    write_json(out / "summary.json", summary)
    return summary


def summary_table(summary: dict[str, Any]):
    """A rich table of the matrix's first seed, plus per-target diagonal counts over all seeds."""
    from rich.table import Table

    matrix = pd.read_csv(summary["files"]["matrix_csv"])
    targets = summary["targets"]
    first = matrix[matrix.seed == matrix.seed.min()]
    table = Table(title=f"searched for (rows) x measured on (columns): measured ms / predicted ms, seed "
                        f"{int(first.seed.iloc[0])}; bold = diagonal, red = over the column's budget")
    table.add_column("searched for")
    for t in targets:
        sim = " (simulated)" if summary["simulated"][t] else ""
        table.add_column(f"{t}{sim}\nbudget {summary['budgets_ms'][t]:.3f} ms", justify="right")
    table.add_column(f"{summary['estimator']} ({summary['score_kind']})", justify="right")
    for row in targets:
        cells = []
        for col in targets:
            c = first[(first.searched_for == row) & (first.measured_on == col)].iloc[0]
            text = f"{c.measured_ms:.3f} / {c.predicted_ms:.3f}"
            style = ("bold " if row == col else "") + ("red" if not c.feasible else "")
            cells.append(f"[{style}]{text}[/]" if style.strip() else text)
        score = first[first.searched_for == row].score.iloc[0]
        table.add_row(row, *cells, f"{score:.3f}")
    diag = summary["diagonal"]
    table.caption = "diagonal winner feasible / wins or ties its column, over seeds: " + ", ".join(
        f"{t} {d['diagonal_feasible']}/{d['runs']} feasible, {d['wins_or_ties']}/{d['runs']} wins"
        for t, d in diag.items())
    return table


def cross_eval_job(space_name: str, targets: str, out: Path, budget_quantile: float = 0.3,
                   latency_overrides: Sequence[str] = (), predictor_overrides: Sequence[str] = (),
                   searcher: str = "evolutionary", estimator: str = "synflow", budget: int = 400, seeds: int = 1,
                   seed: int = 0, executor: str = "local", ray_address: str | None = None,
                   status: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """What ``nas cross-eval`` does: :func:`cross_eval` from the command's text options.

    ``targets`` is comma-separated; ``latency_overrides`` and ``predictor_overrides``
    are ``TARGET=MS`` and ``TARGET=FILE`` items; the executor named by ``executor``
    and ``ray_address`` is opened and closed here.
    """
    from hwprof.executors import executor_from_options

    tokens = [t.strip() for t in targets.split(",") if t.strip()]
    budgets = parse_latency_overrides(list(latency_overrides), tokens)
    files = parse_predictor_files(list(predictor_overrides), tokens)
    runner = executor_from_options(executor, ray_address)
    try:
        return cross_eval(space_name, tokens, Path(out), budget_quantile, budgets, searcher, estimator, budget, seeds,
                          seed, runner if runner.name != "local" else None, status=status, predictor_files=files)
    finally:
        runner.close()
