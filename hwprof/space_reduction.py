"""Hardware-specific space reduction from a design-space profile (Mills et al.).

A block choice is *dominated* at a position when another choice there adds no
more latency on the device (the profile's additive contribution, fitted from
end-to-end measurements) and gives at least as much capacity: at least as many
MACs and as many parameters, more of one. Capacity stands in for what a choice
gives to accuracy, as in HURRICANE's operator selection; a dominated choice is
slow for what it gives, so a search loses nothing by not visiting it.
Dominated choices are dropped; ``skip`` (depth) and global choices (input
resolution) are kept, and the interchangeable positions of a stage keep one
shared set.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hwprof.space_profile import SpaceProfile, profile_anchor
from nas.spaces.base import SKIP, SearchSpace
from nas.spaces.reduced import ReducedSpace


def capacity_deltas(space: SearchSpace, anchor: list[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """MACs and parameters each option adds at each layer position, around ``anchor``."""
    archs = [space.to_arch(g) for g in space.layer_variants(anchor)]
    return (space.layer_deltas([a.macs for a in archs]), space.layer_deltas([a.params for a in archs]))


def dominated_options(latency: np.ndarray, macs: np.ndarray, params: np.ndarray, options: list[int]) -> set[int]:
    """Options (of ``options``) some other option beats: no slower, no less capacity, better in one."""
    out = set()
    for j in options:
        for o in options:
            if o == j:
                continue
            no_worse = latency[o] <= latency[j] and macs[o] >= macs[j] and params[o] >= params[j]
            better = latency[o] < latency[j] or macs[o] > macs[j] or params[o] > params[j]
            if no_worse and better:
                out.add(j)
                break
    return out


def reduce_space(space: SearchSpace, profile: SpaceProfile) -> tuple[ReducedSpace, dict[str, Any]]:
    """Drop the choices the profile shows to be dominated on its device.

    Args:
        space: The profiled space (a reduced space is reduced further).
        profile: Its profile on one device (:func:`hwprof.space_profile.profile_space`).

    Returns:
        The reduced space, and per position the dropped labels with the option
        that dominates each (``{"s1.b0": [{"dropped": "k7_e3", "by": "k3_e6"}, ...]}``).
    """
    anchor = profile_anchor(space)
    macs, params = capacity_deltas(space, anchor)
    mask = space.option_mask()
    contributions = {(r.position, r.choice): r.contribution_ms for r in profile.table.itertuples()}
    why: dict[str, list[dict[str, str]]] = {}
    layer_idx = [i for i, v in enumerate(space.variables) if v.kind == "layer"]
    for pos, i in enumerate(layer_idx):
        v = space.variables[i]
        lat = np.array([contributions.get((v.name, lab), np.nan) for lab in v.labels])
        ops = [j for j in mask[i] if v.options[j] != SKIP and np.isfinite(lat[j])]
        drop = dominated_options(lat, macs[pos], params[pos], ops)
        for j in sorted(drop):
            by = min((o for o in ops if o not in drop and lat[o] <= lat[j] and macs[pos][o] >= macs[pos][j]
                      and params[pos][o] >= params[pos][j]), key=lambda o: lat[o], default=None)
            why.setdefault(v.name, []).append({"dropped": v.labels[j], "by": v.labels[by] if by is not None else ""})
        mask[i] = [j for j in mask[i] if j not in drop]
    for group in space.skip_groups:  # interchangeable positions: keep what any of them keeps
        shared = sorted(set().union(*(mask[i] for i in group)))
        for i in group:
            mask[i] = shared
    index = {v.name: i for i, v in enumerate(space.variables)}
    why = {name: [d for d in drops if space.variables[index[name]].labels.index(d["dropped"]) not in mask[index[name]]]
           for name, drops in why.items()}
    why = {name: drops for name, drops in why.items() if drops}
    base = space.base if isinstance(space, ReducedSpace) else space
    return ReducedSpace(base, mask), why
