"""Linear predictors: the FLOPs baseline and the additive per-choice model."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold

from hwprof.arch import Arch, Block
from hwprof.errors import HwprofError
from hwprof.predictors.base import LatencyPredictor, schema_from_state, single_space
from hwprof.registry import PREDICTORS


def _relative_weights(latency_ms: np.ndarray) -> np.ndarray:
    """Weights that make least squares minimise relative (not absolute) error."""
    return 1.0 / np.maximum(np.asarray(latency_ms, dtype=float), 1e-9) ** 2


@PREDICTORS.register("flops-linear")
class FlopsLinearPredictor(LatencyPredictor):
    """Baseline: ``latency = a * MACs + b * params + c``, fitted by least squares.

    What FLOPs-driven design implicitly assumes; every other predictor must beat it.
    """

    name = "flops-linear"
    layer_additive = True  # MACs and params are sums over blocks

    def fit(self, archs: Sequence[Arch], latency_ms: np.ndarray,
            block_latency_ms: Mapping[Block, float] | None = None, seed: int = 0) -> FlopsLinearPredictor:
        x = self._features(archs)
        y = np.asarray(latency_ms, dtype=float)
        w = np.sqrt(_relative_weights(y))
        self.coef_, *_ = np.linalg.lstsq(x * w[:, None], y * w, rcond=None)
        return self

    @staticmethod
    def _features(archs: Sequence[Arch]) -> np.ndarray:
        return np.array([[a.macs / 1e6, a.params / 1e6, 1.0] for a in archs]).reshape(-1, 3)

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        self._check_fitted()
        return self._features(archs) @ self.coef_

    def predict_onnx(self, models: Sequence) -> np.ndarray:
        """Predicted latency (ms) of arbitrary ONNX models, from their MACs and parameters."""
        from hwprof.onnx_stats import count_macs, count_params

        self._check_fitted()
        x = np.array([[count_macs(m) / 1e6, count_params(m) / 1e6, 1.0] for m in models]).reshape(-1, 3)
        return x @ self.coef_

    def get_state(self):
        return {}, {"coef": self.coef_}, {}

    def set_state(self, meta, arrays, models) -> None:
        self.coef_ = arrays["coef"]


@PREDICTORS.register("additive")
class AdditivePredictor(LatencyPredictor):
    """Per-(layer, choice) costs fitted from end-to-end latencies only (Mills et al.).

    A ridge regression on one-hot choice indicators, so block costs are known
    even on devices that cannot run a single block alone. MACs and params enter
    as two more features, so with few networks the model shrinks towards the
    FLOPs baseline instead of overfitting the one-hot terms. Positions of a skip
    group (interchangeable layers of one stage, same shapes) share their
    coefficients: the features count each option over the group, so the model
    cannot tell a network from its reordering, and its cost table is exact. Where the space has a
    ``resolution`` variable, each choice's cost is a quadratic in
    ``resolution / max resolution`` (compute grows with pixels), so one model
    covers every input size. Rows are weighted by 1/latency^2 (relative error).

    Args:
        alphas: Ridge penalties to choose from by generalised cross-validation.
    """

    name = "additive"
    layer_additive = True

    def __init__(self, alphas: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4)) -> None:
        super().__init__()
        self.alphas = tuple(float(a) for a in alphas)

    def get_params(self) -> dict[str, Any]:
        return {"alphas": list(self.alphas)}

    def fit(self, archs: Sequence[Arch], latency_ms: np.ndarray,
            block_latency_ms: Mapping[Block, float] | None = None, seed: int = 0) -> AdditivePredictor:
        self.schema_ = single_space(archs, "additive")
        self.space_ = self.schema_.name
        x = self._design(self.schema_, archs)
        y = np.asarray(latency_ms, dtype=float)
        if len(y) < 3:
            raise HwprofError(f"the additive predictor needs at least 3 measured networks, got {len(y)}",
                              "measure more networks (hwprof measure --samples N)")
        # 5-fold cross-validation chooses the penalty; below 10 networks a fold would hold one network (whose R^2
        # is undefined), so the penalty is chosen by efficient leave-one-out (generalised cross-validation)
        folds = KFold(5, shuffle=True, random_state=seed) if len(y) >= 10 else None
        model = RidgeCV(alphas=np.array(self.alphas), cv=folds).fit(
            x, y, sample_weight=_relative_weights(y))
        self.coef_ = model.coef_
        self.intercept_ = float(model.intercept_)
        self.alpha_ = float(model.alpha_)
        return self

    def _design(self, space, archs: Sequence[Arch]) -> np.ndarray:
        """MACs and params (millions), then one-hot choices times the resolution basis [1, s, s^2]."""
        genes = np.array([space.genes_of(a) for a in archs]).reshape(-1, space.n_variables)
        n = len(genes)
        basis = np.ones((n, 1))
        names = [v.name for v in space.variables]
        if "resolution" in names:
            i = names.index("resolution")
            values = np.array([float(o) for o in space.variables[i].options])
            s = values[genes[:, i]] / values.max()
            basis = np.column_stack([basis, s, s * s])
        blocks = [np.array([[a.macs / 1e6, a.params / 1e6] for a in archs]).reshape(-1, 2)]
        grouped = {i: g for g in space.skip_groups for i in g}
        for i, v in enumerate(space.variables):
            if i in grouped and i != grouped[i][0]:
                continue  # counted with the first position of its skip group
            onehot = np.zeros((n, len(v.options)))
            for j in grouped.get(i, (i,)):
                onehot[np.arange(n), genes[:, j]] += 1.0
            if v.kind == "layer":
                blocks.append((onehot[:, :, None] * basis[:, None, :]).reshape(n, -1))
            else:
                blocks.append(onehot)
        return np.hstack(blocks)

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        self._check_fitted()
        return self._design(self.schema_, archs) @ self.coef_ + self.intercept_

    def get_state(self):
        return ({"space": self.space_, "space_schema": self.schema_.to_dict(), "alpha": self.alpha_,
                 "intercept": self.intercept_}, {"coef": self.coef_}, {})

    def set_state(self, meta, arrays, models) -> None:
        self.space_, self.alpha_, self.intercept_ = meta["space"], meta["alpha"], meta["intercept"]
        self.schema_ = schema_from_state(meta)
        self.coef_ = arrays["coef"]
