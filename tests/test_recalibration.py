"""Recalibration of a few-shot predictor near the latency target, after the search."""

from __future__ import annotations

import numpy as np
import pytest

from nas.recalibration import merged, networks_near_target, recalibrate
from nas.searchers.base import Candidate, Constraint, SearchResult, summarised
from nas.spaces import get_space


class _Scaled:
    """A latency model that predicts ``factor`` times each network's given latency."""

    def __init__(self, truth: dict, factor: float) -> None:
        self.truth, self.factor = truth, factor

    def predict(self, archs):
        return np.array([self.truth[a.hash] * self.factor for a in archs])


def _history():
    rng = np.random.default_rng(0)
    archs = [get_space("ofa").sample(rng) for _ in range(8)]
    predicted = [6.0, 8.8, 9.5, 9.9, 10.6, 11.0, 12.0, 30.0]  # the first predictor, over 10 ms: infeasible
    scores = [1.0, 2.0, 3.0, 4.0, 8.0, 9.0, 10.0, 12.0]
    return [Candidate(a, p, s, 0, i) for i, (a, p, s) in enumerate(zip(archs, predicted, scores))]


def test_networks_near_the_target_are_the_best_scoring_within_15_percent():
    history = _history()
    near = networks_near_target(history + history[:2], 10.0, 3)  # repeats count once
    assert [c.latency_ms for c in near] == [11.0, 10.6, 9.9]  # 12.0 is 20 % over: not near
    few = networks_near_target(history, 10.0, 7)  # only 6 are near: the closest of the rest
    assert len(few) == 7 and few[-1].latency_ms == 6.0


def test_recalibration_refits_and_chooses_the_winner_again():
    history = _history()
    result = summarised(SearchResult("evolutionary", "ofa", "proxy", Constraint(10.0), history, [], None, 0.0,
                                     (0.0, 0.0), 0.0))
    assert result.best.latency_ms == 9.9
    truth = {c.arch.hash: c.latency_ms * 0.9 for c in history}  # the first predictor was 11 % too slow
    asked = []

    def refit(archs):
        asked.extend(archs)
        return _Scaled(truth, 1.0), {a.hash: truth[a.hash] for a in archs}

    predictor, after, record = recalibrate(result, 10.0, 4, refit)
    assert len(asked) == 4 and after.best.latency_ms == pytest.approx(9.9)  # 11.0 ms -> 9.9: now it fits
    assert after.best.score == 9.0 and after.best.arch.hash != result.best.arch.hash
    assert record["error_before"] == pytest.approx(1 / 0.9 - 1)
    assert record["winner_before"]["predicted_after_ms"] == pytest.approx(9.9 * 0.9)
    assert [c.latency_ms for c in after.pareto] == sorted(c.latency_ms for c in after.pareto)
    assert all(c.score == h.score for c, h in zip(after.history, history))  # scores are kept


def test_a_second_search_is_merged_with_the_first_under_one_predictor():
    history = _history()
    first = summarised(SearchResult("evolutionary", "ofa", "proxy", Constraint(10.0), history[:5], [], None, 0.0,
                                    (0.0, 0.0), 1.0))
    again = [Candidate(c.arch, c.latency_ms, c.score, 0, i) for i, c in enumerate(history[3:])]  # 2 seen before
    both = merged(first, summarised(SearchResult("evolutionary", "ofa", "proxy", Constraint(10.0), again, [], None,
                                                 0.0, (0.0, 0.0), 2.0)))
    assert [c.arch.hash for c in both.history] == [c.arch.hash for c in history]
    assert [c.index for c in both.history] == list(range(len(history))) and both.wall_s == 3.0
    assert both.best.latency_ms == 9.9 and both.history[5].step == 1  # the second search's steps come after
