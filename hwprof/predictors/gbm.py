"""Gradient-boosted trees on the space's encoding plus MACs, params and resolution."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from hwprof.arch import Arch, Block
from hwprof.predictors.base import LatencyPredictor, schema_from_state, single_space
from hwprof.registry import PREDICTORS


@PREDICTORS.register("gbm")
class GBMPredictor(LatencyPredictor):
    """scikit-learn HistGradientBoosting on (choice indices, MACs, params, resolution).

    Trees cannot extrapolate a trend, and latency grows with MACs and params.
    So a least-squares line ``a*MACs + b*params + c`` is fitted first and the
    trees learn the log of the ratio between latency and that line: where the
    line is right the trees have nothing to add, and the loss is on relative
    error. Choice indices are categorical features.

    Args:
        max_iter: Boosting iterations.
        learning_rate: Shrinkage.
        max_leaf_nodes: Leaves per tree.
    """

    name = "gbm"

    def __init__(self, max_iter: int = 600, learning_rate: float = 0.05, max_leaf_nodes: int = 15) -> None:
        super().__init__()
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes

    def get_params(self) -> dict[str, Any]:
        return {"max_iter": self.max_iter, "learning_rate": self.learning_rate, "max_leaf_nodes": self.max_leaf_nodes}

    def _features(self, space, archs: Sequence[Arch]) -> np.ndarray:
        genes = np.array([space.genes_of(a) for a in archs], dtype=float).reshape(-1, space.n_variables)
        extra = np.array([[a.macs / 1e6, a.params / 1e6, a.resolution] for a in archs], dtype=float).reshape(-1, 3)
        return np.hstack([genes, extra])

    def fit(self, archs: Sequence[Arch], latency_ms: np.ndarray,
            block_latency_ms: Mapping[Block, float] | None = None, seed: int = 0) -> GBMPredictor:
        self.schema_ = space = single_space(archs, "gbm")
        self.space_ = space.name
        categorical = [len(v.options) <= 255 and v.kind == "layer" for v in space.variables] + [False] * 3
        model = HistGradientBoostingRegressor(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            categorical_features=categorical, early_stopping=False, random_state=seed)
        latency = np.asarray(latency_ms, dtype=float)
        design = self._design(archs)
        self.baseline_ = np.linalg.lstsq(design, latency, rcond=None)[0]
        floor = 0.5 * float(latency.min())
        self.floor_ms_ = floor
        ratio = np.log(latency) - np.log(np.maximum(design @ self.baseline_, floor))
        self.model_ = model.fit(self._features(space, archs), ratio)
        return self

    @staticmethod
    def _design(archs: Sequence[Arch]) -> np.ndarray:
        return np.array([[a.macs / 1e6, a.params / 1e6, 1.0] for a in archs], dtype=float).reshape(-1, 3)

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        self._check_fitted()
        baseline = np.maximum(self._design(archs) @ self.baseline_, self.floor_ms_)
        return baseline * np.exp(self.model_.predict(self._features(self.schema_, archs)))

    def get_state(self):
        return ({"space": self.space_, "space_schema": self.schema_.to_dict(), "floor_ms": self.floor_ms_},
                {"baseline": self.baseline_}, {"model": self.model_})

    def set_state(self, meta, arrays, models) -> None:
        self.space_ = meta["space"]
        self.schema_ = schema_from_state(meta)
        self.floor_ms_ = float(meta["floor_ms"])
        self.baseline_ = np.asarray(arrays["baseline"], dtype=float)
        self.model_ = models["model"]
