"""``nas.search``: the search of ``nas search`` as one Python call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from nas.searchers.base import SearchResult


def search(space: str = "ofa", target: str = "kirin-npu", latency_ms: float | None = None,
           searcher: str = "evolutionary", estimator: str = "synflow", budget: int = 400, seed: int = 0,
           predictor: Any = None, graph_style: str = "hwprof", fix: dict[str, Any] | None = None,
           **estimator_options: Any) -> SearchResult:
    """Search ``space`` for networks fast on ``target``; returns a :class:`SearchResult`.

    Args:
        space: Space name.
        target: Device name; used to build (and cache) a predictor when none is given.
        latency_ms: Latency constraint (None: the whole front).
        searcher: random | evolutionary | hurricane.
        estimator: synflow | naswot | predictor | train.
        budget: Networks to score.
        seed: Same seed, same result.
        predictor: A fitted predictor or the path of a predictor file.
        graph_style: The graph form latency is predicted for (see :mod:`hwprof.graph_styles`).
        fix: Variables held at one value, e.g. ``{"resolution": 224}``. Variables the
            estimator cannot judge are held anyway (see :mod:`nas.dimensions`);
            ``result.extra["held"]`` says what was held and why.
        **estimator_options: e.g. ``accuracy_data="pairs.jsonl"`` or ``data="images/"``.

    Raises:
        HwprofError: for an impossible constraint or bad input.
    """
    from devices import resolve
    from hwprof.predictors import store
    from hwprof.predictors.cache import cached_predictor
    from nas.accuracy import create_estimator
    from nas.dimensions import hold_unseen, parse_fix
    from nas.results import feasible_range
    from nas.searchers import Constraint, create_searcher
    from nas.spaces import get_space

    sp = get_space(space)
    if predictor is None:
        predictor = cached_predictor(resolve(target, seed=seed, graph_style=graph_style), sp)[0]
    elif isinstance(predictor, (str, Path)):
        predictor = store.load(predictor)
    predictor.use_style(graph_style)
    est = create_estimator(estimator, seed=seed, **estimator_options)
    sp, held = hold_unseen(sp, est, parse_fix([f"{k}={v}" for k, v in (fix or {}).items()], sp))
    feasible_range(sp, predictor, latency_ms, target)
    result = create_searcher(searcher).search(sp, predictor, est, Constraint(latency_ms), budget, seed)
    result.extra["held"] = [h.to_dict() for h in held]
    return result


def history_frame(result: SearchResult) -> pd.DataFrame:
    """Every evaluated network of a search as a DataFrame (hash, latency, score, MACs, params, arch JSON)."""
    return pd.DataFrame([{"arch_hash": c.arch.hash, "latency_ms": c.latency_ms, "score": c.score, "step": c.step,
                          "macs": c.arch.macs, "params": c.arch.params, "on_front": c in result.pareto,
                          "arch_json": c.arch.to_json()} for c in result.history])
