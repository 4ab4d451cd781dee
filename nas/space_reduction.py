"""Hardware-specific space reduction from a design-space profile (Mills et al.).

A block choice is *dominated* at a position when another choice there adds no
more latency on the device (the profile's additive contribution, fitted from
end-to-end measurements) and gives at least as much. What a choice gives is
measured one of two ways:

- ``score`` (the default of ``hwprof reduce-space``): its additive
  contribution to an accuracy estimator's score (e.g. the synflow proxy the
  search will use), fitted by ridge regression on one-hot choices over the
  profiled networks, the same method as the latency side (Mills et al. fit
  both a block's latency and its predictive power from whole networks);
- ``capacity``: the MACs and parameters it adds (at least as many of both,
  more of one), as in HURRICANE's operator selection; needs no scoring.

A dominated choice is slow for what it gives, so a search loses nothing by not
visiting it. Dominated choices are dropped; ``skip`` (depth) and global
choices (input resolution) are kept, and the interchangeable positions of a
stage keep one shared set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from hwprof.arch import SKIP, Arch
from hwprof.errors import HwprofError
from hwprof.space_profile import SpaceProfile, profile_anchor


def capacity_deltas(space, anchor: list[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """MACs and parameters each option adds at each layer position, around ``anchor``."""
    archs = [space.to_arch(g) for g in space.layer_variants(anchor)]
    return (space.layer_deltas([a.macs for a in archs]), space.layer_deltas([a.params for a in archs]))


def score_contributions(space, archs: Sequence[Arch], scores: np.ndarray,
                        seed: int = 0) -> list[np.ndarray]:
    """Per layer position, each option's additive contribution to ``scores`` (ridge on one-hot choices).

    Args:
        space: The space the networks come from.
        archs: Networks of the space.
        scores: One score per network (e.g. a zero-cost proxy).
        seed: Seed of the cross-validation folds that pick the ridge penalty.
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold

    genes = np.array([space.genes_of(a) for a in archs])
    blocks, spans = [], []
    for i, v in enumerate(space.variables):
        onehot = np.zeros((len(genes), len(v.options)))
        onehot[np.arange(len(genes)), genes[:, i]] = 1.0
        spans.append((sum(b.shape[1] for b in blocks), len(v.options)))
        blocks.append(onehot)
    x = np.hstack(blocks)
    model = RidgeCV(alphas=np.logspace(-3, 3, 13), cv=KFold(5, shuffle=True, random_state=seed)).fit(
        x, np.asarray(scores, dtype=float))
    return [model.coef_[start:start + n] for (start, n), v in zip(spans, space.variables) if v.kind == "layer"]


def dominated_options(latency: np.ndarray, gains: Sequence[np.ndarray], options: list[int]) -> set[int]:
    """Options (of ``options``) some other option beats: no slower, gives no less on every gain, better in one."""
    out = set()
    for j in options:
        for o in options:
            if o == j:
                continue
            no_worse = latency[o] <= latency[j] and all(g[o] >= g[j] for g in gains)
            better = latency[o] < latency[j] or any(g[o] > g[j] for g in gains)
            if no_worse and better:
                out.add(j)
                break
    return out


def reduce_space(space, profile: SpaceProfile,
                 score_gains: list[np.ndarray] | None = None) -> tuple[Any, dict[str, Any]]:
    """Drop the choices the profile shows to be dominated on its device.

    Args:
        space: The profiled space (a reduced space is reduced further).
        profile: Its profile on one device (:func:`hwprof.space_profile.profile_space`).
        score_gains: Per layer position, each option's contribution to a score
            (:func:`score_contributions`); None judges by capacity (MACs and params).

    Returns:
        The reduced space, and per position the dropped labels with the option
        that dominates each (``{"s1.b0": [{"dropped": "k7_e3", "by": "k3_e6"}, ...]}``).
    """
    if score_gains is None:
        macs, params = capacity_deltas(space, profile_anchor(space))
        gains_at = [[m, p] for m, p in zip(macs, params)]
    else:
        gains_at = [[g] for g in score_gains]
    mask = space.option_mask()
    contributions = {(r.position, r.choice): r.contribution_ms for r in profile.table.itertuples()}
    why: dict[str, list[dict[str, str]]] = {}
    layer_idx = [i for i, v in enumerate(space.variables) if v.kind == "layer"]
    for pos, i in enumerate(layer_idx):
        v = space.variables[i]
        lat = np.array([contributions.get((v.name, lab), np.nan) for lab in v.labels])
        gains = gains_at[pos]
        ops = [j for j in mask[i] if v.options[j] != SKIP and np.isfinite(lat[j])]
        drop = dominated_options(lat, gains, ops)
        for j in sorted(drop):
            by = min((o for o in ops if o not in drop and lat[o] <= lat[j] and all(g[o] >= g[j] for g in gains)),
                     key=lambda o: lat[o], default=None)
            why.setdefault(v.name, []).append({"dropped": v.labels[j], "by": v.labels[by] if by is not None else ""})
        mask[i] = [j for j in mask[i] if j not in drop]
    mask = space.share_within_skip_groups(mask)  # interchangeable positions: keep what any of them keeps
    index = {v.name: i for i, v in enumerate(space.variables)}
    why = {name: [d for d in drops if space.variables[index[name]].labels.index(d["dropped"]) not in mask[index[name]]]
           for name, drops in why.items()}
    why = {name: drops for name, drops in why.items() if drops}
    from nas.spaces.reduced import ReducedSpace

    return ReducedSpace(getattr(space, "base", space), mask), why


@dataclass
class ReduceJob:
    """What :func:`reduce_space_job` did.

    Attributes:
        doc: The reduced-space JSON document it wrote.
        device: The target.
        space: The space it reduced.
        profile: The design-space profile the reduction is based on.
        reduced: The reduced space.
        dropped: Position -> the choices dropped there and what dominates each.
    """

    doc: dict[str, Any]
    device: Any
    space: Any
    profile: SpaceProfile
    reduced: Any
    dropped: dict[str, list[dict[str, str]]]


def reduce_space_job(space: str, device: str, out, data=None, samples: int | None = None, bootstrap: int = 30,
                     seed: int = 0, by: str = "score", estimator: str = "synflow", executor: str = "local",
                     ray_address: str | None = None, force: bool = False,
                     status: Callable[[str], Any] = lambda _m: None) -> ReduceJob:
    """What ``hwprof reduce-space`` does, as one call: profile the space on the device (measuring a sample
    unless ``data`` is given), judge each choice's gain, drop the dominated choices, write ``out``.

    Args:
        space: The space (``--space``).
        device: The target token.
        out: The reduced-space ``.json`` to write (checked before any work; kept if foreign unless ``force``).
        data: A dataset to profile from instead of measuring (into OUT's name without .json + ``-data``).
        samples: Networks to measure when ``data`` is not given.
        bootstrap: Bootstrap refits for the profile's intervals.
        seed: Seed of the sample, the bootstrap and the estimator.
        by: ``score`` (each choice's additive contribution to ``estimator``'s score) or ``capacity`` (MACs and
            parameters added).
        estimator: The estimator your search will use.
        executor, ray_address: Where to measure.
        force: Overwrite a foreign ``out``.
        status: Called with a line of progress.

    Raises:
        HwprofError: for bad input, before any work.
    """
    from pathlib import Path

    from hwprof.io import write_json
    from hwprof.outputs import guard_output, is_json_records
    from hwprof.space_profile import profile_with_executor
    from nas.accuracy import create_estimator
    from nas.spaces import get_space

    out = Path(out)
    if out.suffix != ".json":
        raise HwprofError(f"--out {out} must be a .json file", "e.g. --out reduced.json")
    if by not in ("score", "capacity"):
        raise HwprofError(f"--by must be score or capacity, got '{by}'", "e.g. --by score")
    guard_output(out, "--out", "reduced space", lambda p: is_json_records(p, {"format", "base", "keep"}), force,
                 [space, data])
    sp = get_space(space)
    est = create_estimator(estimator, seed=seed) if by == "score" else None  # a bad name fails before any work
    dev, profile, data_used, measured = profile_with_executor(sp, device, out.parent / f"{out.stem}-data", data,
                                                              samples, bootstrap, seed, executor, ray_address,
                                                              status=status)
    gains, judged_by = None, "capacity: MACs and parameters added"
    if est is not None:
        status(f"scoring the {len(measured.archs)} profiled networks with {est.label}")
        gains = score_contributions(sp, measured.archs, est.score(measured.archs), seed)
        judged_by = f"score: additive contribution to the {est.label}"
    reduced, why = reduce_space(sp, profile, gains)
    doc = reduced.to_dict(device=dev.name, simulated=dev.simulated, judged_by=judged_by,
                          profile_networks=profile.networks,
                          profile_data=str(data_used), profile_kendall_tau=profile.to_dict()["kendall_tau"],
                          profile_kendall_tau_choice_ranking=profile.kendall_tau_ranking,
                          profile_kendall_tau_within_positions=profile.kendall_tau_within, dropped_because=why)
    write_json(out, doc)
    return ReduceJob(doc, dev, sp, profile, reduced, why)

