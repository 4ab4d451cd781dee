"""Design-space profiling from end-to-end latencies (Mills et al.).

Mills et al. ask which block choices a device likes and how much their place
in the network matters, using whole-network latencies only (single blocks
cannot be run alone on every device). hwprof fits the ``additive`` predictor
(ridge regression on one-hot choices) to end-to-end rows and reads its
per-(position, choice) contributions; bootstrap refits over the networks give
each contribution a 95 % interval (normal approximation: the estimate
± 1.96 bootstrap standard deviations). Where the dataset also holds single-block
timings, the directly measured block latency sits beside each contribution,
and the two are compared by Kendall's tau.

A contribution is the latency a choice adds at its position over the
position's cheapest choice (so 0 for the cheapest), with the space's global
choices (input resolution) at their largest option.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from hwprof.arch import SKIP
from hwprof.errors import HwprofError
from hwprof.predictors.data import MeasurementData


@dataclass
class SpaceProfile:
    """Per-(position, choice) latency contributions of a space on one device.

    Attributes:
        space: Space name.
        device: Device name.
        simulated: Whether the device is simulated.
        networks: End-to-end rows used.
        table: One row per (position, choice): ``position``, ``stage``,
            ``choice``, ``contribution_ms``, ``ci_low_ms``, ``ci_high_ms``,
            ``block_ms`` (measured single block, NaN if not measured),
            ``block_delta_ms`` (the same over the position's cheapest choice).
        kendall_tau: Rank agreement of contributions and measured block deltas
            over every (position, choice) (None without block timings).
        kendall_tau_within: The same within each position, averaged over positions.
        kendall_tau_ranking: The same for the choice ranking (each choice
            averaged over its positions), the order :meth:`ranking` prints.
    """

    space: str
    device: str
    simulated: bool
    networks: int
    table: pd.DataFrame
    kendall_tau: float | None
    kendall_tau_within: float | None = None
    kendall_tau_ranking: float | None = None

    def agreement_text(self) -> str:
        """One line: the three rank agreements with measured blocks."""
        if self.kendall_tau is None:
            return "n/a (no single-block timings in the data)"

        def fmt(value: float | None) -> str:
            return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"

        return (f"{fmt(self.kendall_tau_ranking)} for the choice ranking, {fmt(self.kendall_tau_within)} within "
                f"positions (mean), {fmt(self.kendall_tau)} over all positions and choices")

    def ranking(self) -> pd.DataFrame:
        """Choices ranked by mean contribution over positions (most hardware-friendly first)."""
        grouped = self.table[self.table.choice != SKIP].groupby("choice")
        out = grouped.agg(mean_contribution_ms=("contribution_ms", "mean"),
                          spread_over_positions_ms=("contribution_ms", "std"),
                          positions=("position", "count"))
        return out.sort_values("mean_contribution_ms").reset_index()

    def placement(self) -> pd.DataFrame:
        """Mean contribution per stage: how much the same choices cost where they are placed."""
        rows = self.table[self.table.choice != SKIP]
        return rows.groupby("stage", sort=False).agg(mean_contribution_ms=("contribution_ms", "mean"),
                                                     max_contribution_ms=("contribution_ms", "max")).reset_index()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {"space": self.space, "device": self.device, "simulated": self.simulated,
                "networks": self.networks, "kendall_tau": self.kendall_tau,
                "kendall_tau_within_positions": self.kendall_tau_within,
                "kendall_tau_choice_ranking": self.kendall_tau_ranking,
                "ranking": self.ranking().to_dict(orient="records")}


def _stage(name: str) -> str:
    return name.split(".")[0] if "." in name else name


def profile_space(space, data: MeasurementData, bootstrap: int = 30, seed: int = 0) -> SpaceProfile:
    """Contributions with bootstrap intervals, and measured block latencies where present.

    Args:
        space: The space the networks come from.
        data: Measurements of that space on one device (end-to-end rows; block rows optional).
        bootstrap: Refits on resampled networks for the intervals.
        seed: Seed of the refits and resampling.

    Raises:
        HwprofError: with too few networks to fit.
    """
    from hwprof.predictors import create_predictor

    n = len(data.archs)
    if n < 20:
        raise HwprofError(f"profiling needs at least 20 measured networks, the dataset has {n}",
                          "measure more with `hwprof measure --samples N`")
    globals_ = profile_globals(space)
    table = create_predictor("additive").fit(data.archs, data.latency_ms, seed=seed).cost_table(space, globals_)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(bootstrap):
        pick = rng.integers(0, n, n)
        boot = create_predictor("additive").fit([data.archs[i] for i in pick], data.latency_ms[pick], seed=seed)
        samples.append(boot.cost_table(space, globals_).costs_ms)
    layer_vars = [i for i, v in enumerate(space.variables) if v.kind == "layer"]
    anchor = profile_anchor(space)
    rows = []
    for pos, i in enumerate(layer_vars):
        v = space.variables[i]
        costs = np.asarray(table.costs_ms[pos])
        ops = [j for j in range(len(v.options)) if j != v.skip_index]
        cheapest = min(ops, key=lambda j: costs[j])
        boot = np.array([np.asarray(s[pos]) - np.asarray(s[pos])[cheapest] for s in samples])
        block_ms = _block_latencies(space, anchor, i, data.blocks)
        for j, label in enumerate(v.labels):
            rows.append({"position": v.name, "stage": _stage(v.name), "choice": label,
                         "contribution_ms": float(costs[j] - costs[cheapest]),
                         "ci_low_ms": float(costs[j] - costs[cheapest] - 1.96 * boot[:, j].std(ddof=1)),
                         "ci_high_ms": float(costs[j] - costs[cheapest] + 1.96 * boot[:, j].std(ddof=1)),
                         "block_ms": block_ms[j], "block_delta_ms": block_ms[j] - block_ms[cheapest]})
    frame = pd.DataFrame(rows)
    both = frame[(frame.choice != SKIP) & frame.block_delta_ms.notna()]
    return SpaceProfile(space.name, data.device, data.simulated, n, frame, *_agreement(both))


def _tau(a, b) -> float:
    value = stats.kendalltau(a, b).statistic
    return float(value) if np.isfinite(value) else float("nan")


def _agreement(both: pd.DataFrame) -> tuple[float | None, float | None, float | None]:
    """Kendall tau of contributions vs measured block deltas: pooled, within positions, choice ranking."""
    if len(both) < 5:
        return None, None, None
    within = [_tau(g.contribution_ms, g.block_delta_ms) for _, g in both.groupby("position", sort=False)
              if len(g) >= 3]
    means = both.groupby("choice").agg(c=("contribution_ms", "mean"), b=("block_delta_ms", "mean"))
    return (_tau(both.contribution_ms, both.block_delta_ms),
            float(np.nanmean(within)) if within else None, _tau(means.c, means.b) if len(means) >= 3 else None)


def profile_device(space, device: str, measure_into_dir, data=None, samples: int | None = None,
                   bootstrap: int = 30, seed: int = 0, executor=None, status=lambda _m: None):
    """Profile ``space`` on ``device`` from ``data``, or from a sample measured now into ``measure_into_dir``.

    The sample (:func:`profile_sample`, default 1000 networks on simulated
    devices, 300 on real ones, and their blocks) is measured resumably, so a
    rerun continues it.

    Returns:
        (device, :class:`SpaceProfile`, the data directory used, its :class:`MeasurementData`).
    """
    from devices import resolve
    from hwprof.predictors.data import load_measurements

    dev = resolve(device, seed=seed)
    if data is None:
        data = measure_into_dir
        if executor is None or getattr(executor, "name", "local") == "local":
            dev.require_available()
        samples = samples or (1000 if dev.simulated else 300)
        status(f"measuring {samples} {space.name} networks (largest resolution) and their blocks on "
               f"{dev.label} into {data}")
        _measure_resumably(dev, device, profile_sample(space, samples, seed), data, "both", seed, executor)
    measurements = load_measurements(data, device=dev.name, space=space.name)
    return dev, profile_space(space, measurements, bootstrap, seed), data, measurements


def profile_with_executor(space, device: str, measure_into_dir, data=None, samples: int | None = None,
                          bootstrap: int = 30, seed: int = 0, executor: str = "local",
                          ray_address: str | None = None, status=lambda _m: None):
    """:func:`profile_device`, measuring on the executor named by ``executor`` / ``ray_address`` (opened and
    closed here; none is opened when ``data`` is given)."""
    from hwprof.executors import executor_from_options

    runner = executor_from_options(executor, ray_address) if data is None else None
    try:
        return profile_device(space, device, measure_into_dir, data, samples, bootstrap, seed, runner, status)
    finally:
        if runner is not None:
            runner.close()


def compare_devices(space, tokens: list[str], out, samples: int | None = None, bootstrap: int = 30, top: int = 3,
                    seed: int = 0, executor: str = "local", ray_address: str | None = None,
                    status=lambda _m: None) -> dict[str, Any]:
    """``profile-space --compare``: profile ``space`` on every target (each sample measured resumably into
    ``out/<target>/data``), compare them (:func:`compare_targets`) and write ``out/compare.json``."""
    from pathlib import Path

    def folder(token: str) -> Path:
        return Path(out) / token.replace(":", "-")

    return compare_targets(tokens, out, top, seed,
                           lambda t: profile_with_executor(space, t, folder(t) / "data", None, samples, bootstrap,
                                                           seed, executor, ray_address, status)[1],
                           lambda t: profile_sweeps(space, t, folder(t), seed))


def _measure_resumably(dev, device: str, archs: list, out, mode: str, seed: int, executor=None) -> None:
    """Measure what ``out`` lacks of ``archs`` on ``dev`` (token ``device``); a failure is one line."""
    from hwprof.dataset import Dataset
    from hwprof.profiling import measure_into

    run = measure_into(Dataset(out), dev, archs, mode=mode, executor=executor, reference_every_s=dev.reference_every_s)
    if run.failed:
        raise HwprofError(f"{run.failed} measurement(s) failed ({run.failures[0]})",
                          "rerun the same command: what was measured is kept")


def compare_profiles(profiles: dict[str, SpaceProfile], top: int = 3) -> dict[str, Any]:
    """Block-choice rankings of one space on several targets, side by side, with pairwise Kendall tau.

    Args:
        profiles: Target token -> its profile (same space).
        top: Choices listed at each end of each ranking.

    Returns:
        ``rankings`` (token -> choices, most hardware-friendly first), ``top`` / ``bottom``
        (token -> choices), ``tau`` (token -> token -> Kendall tau of mean contributions
        over the choices both have) and ``simulated`` (token -> bool).
    """
    means = {t: p.ranking().set_index("choice").mean_contribution_ms for t, p in profiles.items()}
    tokens = list(profiles)
    tau = {a: {} for a in tokens}
    for a in tokens:
        for b in tokens:
            common = means[a].index.intersection(means[b].index)
            tau[a][b] = 1.0 if a == b else _tau(means[a][common].to_numpy(), means[b][common].to_numpy())
    rankings = {t: list(m.sort_values().index) for t, m in means.items()}
    return {"rankings": rankings, "top": {t: r[:top] for t, r in rankings.items()},
            "bottom": {t: r[-top:] for t, r in rankings.items()}, "tau": tau,
            "simulated": {t: p.simulated for t, p in profiles.items()}, "space": next(iter(profiles.values())).space}


def compare_targets(tokens: list[str], out, top: int, seed: int, profile_one, sweep_one=None) -> dict[str, Any]:
    """Profile each target with ``profile_one(token)``, compare (:func:`compare_profiles`), write compare.json
    (with ``sweeps``, target -> ``sweep_one(token)``, when given and the space has sweeps)."""
    from pathlib import Path

    from devices import resolve
    from hwprof.io import write_json

    if len(set(tokens)) < 2:
        raise HwprofError("--compare needs two or more different targets", "e.g. --compare cpu,litert-cpu:int8")
    for token in tokens:
        resolve(token, seed=seed)  # every name checked before any measuring
    result = compare_profiles({t: profile_one(t) for t in tokens}, top)
    if sweep_one is not None:
        sweeps = {t: sweep_one(t) for t in tokens}
        if any(sweeps.values()):
            result["sweeps"] = sweeps
    write_json(Path(out) / "compare.json", result)
    return result


def compare_tables(result: dict[str, Any], top: int = 3) -> list:
    """Rich tables of :func:`compare_profiles`: the rankings side by side (ends only), pairwise tau."""
    from rich.table import Table

    tokens = list(result["rankings"])
    names = {t: f"{t} (simulated)" if result["simulated"][t] else t for t in tokens}
    ranks = Table(title=f"{result['space']}: block choices by latency added, most hardware-friendly first")
    ranks.add_column("rank", justify="right")
    for t in tokens:
        ranks.add_column(names[t])
    longest = max(len(r) for r in result["rankings"].values())
    for i in range(longest):
        if top <= i < longest - top:
            continue
        ranks.add_row(str(i + 1), *[r[i] if i < len(r) else "" for r in result["rankings"].values()])
    taus = Table(title="Kendall tau between the targets' choice rankings")
    taus.add_column("")
    for t in tokens:
        taus.add_column(names[t], justify="right")
    for a in tokens:
        taus.add_row(names[a], *[f"{result['tau'][a][b]:.2f}" for b in tokens])
    return [ranks, taus]


def profile_globals(space) -> dict[str, Any]:
    """The global choices a profile is taken at: the largest option of each (e.g. input resolution)."""
    return {v.name: max(v.options) for v in space.variables if v.kind != "layer"}


def profile_sample(space, n: int, seed: int = 0) -> list:
    """``n`` networks to profile: layer choices drawn from the space's options, globals as in :func:`profile_globals`
    (contributions and single-block timings are compared there)."""
    at = profile_globals(space)
    allowed = [m if v.kind == "layer" else [v.options.index(at[v.name])]
               for v, m in zip(space.variables, space.option_mask())]
    rng = np.random.default_rng(seed)
    return [space.sample(rng, allowed) for _ in range(n)]


def profile_anchor(space) -> list[int]:
    """The network the profile's single-block timings are taken in: each layer at its first
    non-skip option, global choices as in :func:`profile_globals`."""
    globals_ = profile_globals(space)
    genes = []
    for v in space.variables:
        if v.kind == "layer":
            genes.append(next(j for j, o in enumerate(v.options) if o != SKIP))
        else:
            genes.append(v.options.index(globals_[v.name]))
    return genes


def _block_latencies(space, anchor: list[int], var: int, measured: dict) -> list[float]:
    """Measured latency of the block each option puts at position ``var`` (NaN where unmeasured; 0 for skip)."""
    v = space.variables[var]
    ops = [j for j in range(len(v.options)) if j != v.skip_index]
    variants = {}
    for j in ops:
        genes = list(anchor)
        genes[var] = j
        variants[j] = space.to_arch(genes).blocks
    # the position's block is the first one where two options differ
    a, b = variants[ops[0]], variants[ops[-1]]
    index = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), None)
    out = []
    for j in range(len(v.options)):
        if j == v.skip_index:
            out.append(0.0)
        elif index is None:
            out.append(np.nan)
        else:
            out.append(float(measured.get(variants[j][index], np.nan)))
    return out


def write_report(profile: SpaceProfile, out, top: int = 3) -> dict[str, str]:
    """Write ``blocks.csv``, ``heatmap.png``, ``report.md`` and ``profile.json`` into ``out`` (atomically)."""
    from pathlib import Path

    from hwprof.io import atomic_write_text, atomic_write_via, write_json

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HwprofError(f"cannot create output directory {out}: {exc.strerror}", "choose a writable --out") from None
    label = f"{profile.device}{' (SIMULATED)' if profile.simulated else ''}"
    files = {"blocks": str(out / "blocks.csv"), "heatmap": str(out / "heatmap.png"),
             "report": str(out / "report.md"), "json": str(out / "profile.json")}
    atomic_write_text(out / "blocks.csv", profile.table.to_csv(index=False))
    _plot_heatmap(profile, out / "heatmap.png", label, atomic_write_via)
    ranking, placement = profile.ranking(), profile.placement()
    lines = [f"# Design-space profile: {profile.space} on {label}", "",
             f"From {profile.networks} end-to-end measurements: per-(position, choice) contributions of the "
             "additive model (ridge on one-hot choices, Mills et al.), with 95 % bootstrap intervals. "
             "A contribution is the latency a choice adds over its position's cheapest choice, at the largest "
             "input resolution.", "",
             f"Rank agreement with directly measured single-block latencies (Kendall tau): "
             f"**{profile.agreement_text()}**.", "",
             f"## Most hardware-friendly choices (top {top})", "", _markdown(ranking.head(top)), "",
             f"## Least hardware-friendly choices (bottom {top})", "", _markdown(ranking.tail(top)), "",
             "## Placement: mean contribution per stage", "", _markdown(placement), "",
             "Files: `blocks.csv` (every position and choice), `heatmap.png` (position x choice).", ""]
    atomic_write_text(out / "report.md", "\n".join(lines))
    write_json(out / "profile.json", profile.to_dict() | {"files": files})
    return files


def _markdown(frame: pd.DataFrame) -> str:
    cols = list(frame.columns)
    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in frame.iterrows():
        rows.append("| " + " | ".join(f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    return "\n".join(rows)


def _plot_heatmap(profile: SpaceProfile, path, label: str, writer) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = profile.table.pivot_table(index="position", columns="choice", values="contribution_ms", sort=False)
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * grid.shape[1], 1.2 + 0.28 * grid.shape[0]), dpi=110)
    image = ax.imshow(grid.values, aspect="auto", cmap="viridis")
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(grid.shape[0]), grid.index, fontsize=7)
    ax.set_title(f"{profile.space} on {label}: latency added over the cheapest choice (ms)", fontsize=9)
    fig.colorbar(image, ax=ax, label="ms")
    fig.tight_layout()
    writer(path, fig.savefig, ".png")
    plt.close(fig)


SWEEP_ALLOWANCES = (0.05, 0.10, 0.20, 0.50)


def sweep_variable(space, device: str, variable: str, out_dir, networks: int = 20, seed: int = 0,
                   executor=None) -> dict[str, Any]:
    """Latency of every option of one global variable with everything else equal, on one target.

    ``networks`` sampled networks are each built once per option of ``variable``
    (paired: only that variable differs) and measured end to end (resumably, into
    ``out_dir``). For a hybrid space's ``attention`` count this shows where attention
    stops paying on a chip: the latency each further attention block adds.

    Returns:
        ``options`` (labels), ``median_ms`` and ``median_ratio`` (to the first option, per network,
        then the median) per option, ``largest_within`` (allowance such as ``"+10%"`` -> the largest
        option whose median ratio stays within it), ``networks``, ``device``, ``simulated``.
    """
    from devices import resolve
    from hwprof.predictors.data import load_measurements

    names = [v.name for v in space.variables]
    if variable not in names:
        raise HwprofError(f"space '{space.name}' has no variable '{variable}'")
    index = names.index(variable)
    options = list(space.option_mask()[index])
    dev = resolve(device, seed=seed)
    rng = np.random.default_rng(seed)
    bases = [list(space.sample_genes(rng, space.option_mask())) for _ in range(networks)]
    grid = [[space.to_arch(base[:index] + [j] + base[index + 1:]) for j in options] for base in bases]
    _measure_resumably(dev, device, list({a.hash: a for row in grid for a in row}.values()), out_dir, "e2e", seed,
                       executor)
    data = load_measurements(out_dir, device=dev.name, space=space.name)
    latency = dict(zip((a.hash for a in data.archs), data.latency_ms))
    ms = np.array([[latency[a.hash] for a in row] for row in grid])
    ratio = np.median(ms / ms[:, :1], axis=0)
    labels = [str(space.variables[index].labels[j]) for j in options]
    within = {f"+{a:.0%}": labels[max(k for k in range(len(labels)) if ratio[k] <= 1 + a)]
              for a in SWEEP_ALLOWANCES}
    return {"variable": variable, "options": labels, "median_ms": np.median(ms, axis=0).round(4).tolist(),
            "median_ratio": ratio.round(4).tolist(), "largest_within": within, "networks": networks,
            "device": device, "simulated": dev.simulated}


def profile_sweeps(space, device: str, out, seed: int = 0, executor=None, networks: int = 20) -> list[dict[str, Any]]:
    """:func:`sweep_variable` for each of the space's ``profile_sweeps`` (none for most spaces)."""
    from pathlib import Path

    return [sweep_variable(space, device, v, Path(out) / f"sweep-{v}", networks, seed, executor)
            for v in getattr(getattr(space, "base", space), "profile_sweeps", ())]


def sweep_tables(sweeps: dict[str, list[dict[str, Any]]]) -> list:
    """Rich tables of sweeps per target (target token -> its sweeps), one table per swept variable."""
    from rich.table import Table

    tokens = list(sweeps)
    tables = []
    for k, first in enumerate(sweeps[tokens[0]] if tokens else []):
        table = Table(title=f"{first['variable']}, everything else equal ({first['networks']} networks): the median "
                            f"of each network's latency ratio to {first['variable']}={first['options'][0]}; in "
                            "brackets the median latency over the networks (a median of other networks, so two "
                            "equal latencies can come with different ratios)")
        table.add_column(first["variable"], justify="right")
        for t in tokens:
            table.add_column(f"{t} (simulated)" if sweeps[t][k]["simulated"] else t, justify="right")
        for i, label in enumerate(first["options"]):
            table.add_row(label, *[f"{sweeps[t][k]['median_ratio'][i]:.2f}x ({sweeps[t][k]['median_ms'][i]:.3f} ms)"
                                   for t in tokens])
        for allowance in first["largest_within"]:
            table.add_row(f"most within {allowance}", *[sweeps[t][k]["largest_within"][allowance] for t in tokens],
                          style="bold")
        tables.append(table)
    return tables


def write_sweeps(space, device: str, out, seed: int, files: dict[str, str]) -> list[dict[str, Any]]:
    """Run the space's sweeps on ``device`` and write them to OUT/sweeps.json (listed in ``files``)."""
    from pathlib import Path

    from hwprof.io import write_json

    sweeps = profile_sweeps(space, device, out, seed)
    if sweeps:
        path = Path(out) / "sweeps.json"
        write_json(path, sweeps)
        files["sweeps"] = str(path)
    return sweeps


@dataclass
class SpaceProfileJob:
    """What :func:`profile_space_job` did.

    Attributes:
        doc: JSON-ready result (``hwprof profile-space --json`` prints it).
        parts: What the command prints, in order: rich tables and lines.
    """

    doc: dict[str, Any]
    parts: list


def ranking_table(profile: SpaceProfile, space_name: str, label: str, top: int = 3):
    """Rich table of a profile's block choices, cheapest and dearest ``top`` of them."""
    from rich.table import Table

    ranking = profile.ranking()
    shown = list(ranking.head(top).itertuples()) + (list(ranking.tail(top).itertuples())
                                                    if len(ranking) > 2 * top else list(ranking.iloc[top:].itertuples()))
    sim = " - SIMULATED device" if profile.simulated else ""
    table = Table(title=f"{space_name} on {label}{sim}: block choices by latency added ({profile.networks} networks)")
    for col in ("rank", "choice", "mean added ms", "spread over positions", "positions"):
        table.add_column(col, justify="right" if col != "choice" else "left")
    for r in shown:
        table.add_row(str(r.Index + 1), r.choice, f"{r.mean_contribution_ms:.4f}", f"{r.spread_over_positions_ms:.4f}",
                      str(r.positions))
    return table


def profile_space_job(space, out, device: str | None = None, compare: str | None = None, data=None,
                      samples: int | None = None, bootstrap: int = 30, top: int = 3, seed: int = 0,
                      executor: str = "local", ray_address: str | None = None,
                      status=lambda _m: None) -> SpaceProfileJob:
    """What ``hwprof profile-space`` does: profile ``space`` (a space object) on ``device``, or on every
    target of ``compare`` (comma-separated) side by side, and write the report files under ``out``.

    Raises:
        HwprofError: unless exactly one of ``device`` and ``compare`` is given; for ``data`` with ``compare``.
    """
    from pathlib import Path

    if (device is None) == (compare is None):
        raise HwprofError("give exactly one of --device or --compare", "e.g. --device kirin-npu, or "
                          "--compare cpu,litert-cpu:int8,kirin-npu")
    if compare is not None:
        if data is not None:
            raise HwprofError("--compare measures each target's sample itself", "drop --data")
        result = compare_devices(space, [t.strip() for t in compare.split(",") if t.strip()], out, samples,
                                 bootstrap, top, seed, executor, ray_address, status=status)
        return SpaceProfileJob(result, [*compare_tables(result, top), *sweep_tables(result.get("sweeps", {})),
                                        f"wrote {Path(out) / 'compare.json'}"])
    dev, profile, _, _ = profile_with_executor(space, device, Path(out) / "data", data, samples, bootstrap, seed,
                                               executor, ray_address, status=status)
    files = write_report(profile, out, top)
    sweeps = write_sweeps(space, device, out, seed, files)
    return SpaceProfileJob(profile.to_dict() | {"files": files, "sweeps": sweeps},
                           [ranking_table(profile, space.name, dev.label, top),
                            f"Kendall tau, contributions vs measured blocks: {profile.agreement_text()}",
                            *sweep_tables({device: sweeps} if sweeps else {}), f"report: {files['report']}"])
