"""Kernel-level random forests (nn-Meter, Zhang et al., MobiSys 2021).

The network is split into kernels as the device fuses them; one random forest
per kernel type predicts a kernel's latency from its features; a block is the
sum of its kernels and a network the sum of its blocks, corrected by the fitted
end-to-end overhead (:func:`~hwprof.predictors.base.fit_overhead`).

hwprof measures blocks, not kernels, so kernel targets are found by
*backfitting*: a block's measured latency is first shared among its kernels in
proportion to a roofline-like prior (MACs plus memory traffic), the forests are
fitted, and each round the block latency is re-shared in proportion to the
forests' predictions. Sums over kernels then match the measured blocks.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from hwprof.arch import Arch, Block
from hwprof.errors import HwprofError
from hwprof.predictors.base import LatencyPredictor, block_sum_features, design_overhead, fit_overhead
from hwprof.predictors.kernels import FEATURES, group_kernels
from hwprof.registry import PREDICTORS

_MACS, _IN, _OUT = FEATURES.index("macs"), FEATURES.index("in_elems"), FEATURES.index("out_elems")


@PREDICTORS.register("kernel-rf")
class KernelRFPredictor(LatencyPredictor):
    """One random forest per kernel type, summed over the network.

    Args:
        n_estimators: Trees per forest.
        rounds: Backfitting rounds that re-share block latency among kernels.
        min_samples_leaf: Minimum kernels per leaf.
    """

    name = "kernel-rf"
    needs_blocks = True
    layer_additive = True

    def __init__(self, n_estimators: int = 40, rounds: int = 3, min_samples_leaf: int = 1) -> None:
        super().__init__()
        self.n_estimators = n_estimators
        self.rounds = rounds
        self.min_samples_leaf = min_samples_leaf
        self._block_cache: dict[Block, float] = {}

    def get_params(self) -> dict[str, Any]:
        return {"n_estimators": self.n_estimators, "rounds": self.rounds, "min_samples_leaf": self.min_samples_leaf}

    def fit(self, archs: Sequence[Arch], latency_ms: np.ndarray,
            block_latency_ms: Mapping[Block, float] | None = None, seed: int = 0,
            on_round=None) -> KernelRFPredictor:
        if not block_latency_ms:
            raise HwprofError("the kernel-rf predictor needs single-block measurements",
                              "measure with `hwprof measure --mode both` (or use --model additive)")
        blocks = list(block_latency_ms)
        y = np.array([block_latency_ms[b] for b in blocks], dtype=float)
        groups = group_kernels(blocks)
        # Deduplicate kernels: identical features get one target (their mean) and one row.
        uniq = {}
        for ktype, (x, owner) in groups.items():
            rows, inverse = np.unique(x, axis=0, return_inverse=True)
            uniq[ktype] = (rows, inverse.ravel(), owner)
        share = {k: _prior(x) for k, (x, _) in groups.items()}
        self.forests_: dict[str, RandomForestRegressor] = {}
        for r in range(self.rounds + 1):
            totals = np.zeros(len(blocks))
            for k, s in share.items():
                np.add.at(totals, groups[k][1], s)
            for k, (rows, inverse, owner) in uniq.items():
                target = share[k] * (y[owner] / np.maximum(totals[owner], 1e-12))
                mean_target = np.bincount(inverse, weights=target, minlength=len(rows)) / np.bincount(
                    inverse, minlength=len(rows))
                forest = RandomForestRegressor(n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf,
                                               random_state=seed, n_jobs=1)
                self.forests_[k] = forest.fit(rows, mean_target)
                share[k] = np.maximum(forest.predict(rows)[inverse], 1e-6)
            if on_round:
                on_round(r + 1, self.rounds + 1)
        self._block_cache = {}
        self.overhead_ = fit_overhead(self._block_features(archs), np.asarray(latency_ms, dtype=float))
        return self

    def predict_blocks(self, blocks: Sequence[Block]) -> np.ndarray:
        """Predicted latency (ms) of single blocks: the sum of their kernels."""
        self._check_fitted()
        todo = list(dict.fromkeys(b for b in blocks if b not in self._block_cache))
        if todo:
            totals = np.zeros(len(todo))
            for ktype, (x, owner) in sorted(group_kernels(todo).items()):  # fixed order: exact sums
                forest = self.forests_.get(ktype)
                if forest is None:
                    raise HwprofError(f"kernel type '{ktype}' never occurred in the training blocks",
                                      "measure blocks containing it, or use --model additive")
                np.add.at(totals, owner, forest.predict(x))
            self._block_cache.update(zip(todo, totals.tolist()))
        return np.array([self._block_cache[b] for b in blocks], dtype=float)

    def _block_features(self, archs: Sequence[Arch]) -> np.ndarray:
        self.predict_blocks([b for a in archs for b in a.blocks])
        return block_sum_features(archs, self._block_cache)

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        self._check_fitted()
        return design_overhead(self._block_features(archs)) @ self.overhead_

    def get_state(self):
        types = sorted(self.forests_)
        return {"kernel_types": types}, {"overhead": self.overhead_}, {f"forest.{k}": self.forests_[k] for k in types}

    def set_state(self, meta, arrays, models) -> None:
        self.forests_ = {k: models[f"forest.{k}"] for k in meta["kernel_types"]}
        self.overhead_ = arrays["overhead"]
        self._block_cache = {}


def _prior(x: np.ndarray) -> np.ndarray:
    """Initial share of a block's latency: compute plus memory traffic plus a dispatch constant."""
    return x[:, _MACS] + 8.0 * (x[:, _IN] + x[:, _OUT]) + 1e4
