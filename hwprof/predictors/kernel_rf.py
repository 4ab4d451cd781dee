"""Kernel-level random forests (nn-Meter, Zhang et al., MobiSys 2021).

The network is split into kernels as the device fuses them (from hwprof's
IR, or from any ONNX graph by :func:`~hwprof.predictors.kernels.kernels_from_onnx`);
one random forest per kernel type predicts a kernel's latency from its
features; a network is ``a * sum(kernels) + d * io_elements + c``, fitted on
end-to-end rows (``io_elements``: the network's input and output).

hwprof measures blocks, not kernels, so kernel targets are found by
*backfitting*: a block timed alone costs its kernels plus a per-run overhead
``b0 + b1 * (its input and output elements)``. The rest of its measured
latency is first shared among its kernels in proportion to a roofline-like
prior (MACs plus memory traffic); the forests are fitted; each round the
overhead is refitted and the rest re-shared in proportion to the forests'
predictions. Because kernels carry no per-block overhead, the model applies to
graphs that are not made of hwprof blocks.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from hwprof.arch import Arch, Block
from hwprof.errors import HwprofError
from hwprof.predictors.base import LatencyPredictor, block_io_elements, design_overhead, fit_overhead
from hwprof.predictors.kernels import FEATURES, group_kernels, kernels_from_onnx
from hwprof.registry import PREDICTORS

_ELEMENTWISE = ("add", "mul", "act")
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
        self._kernel_cache: dict[Block, float] = {}

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
        io = np.array([block_io_elements(b) for b in blocks])
        groups = group_kernels(blocks)
        uniq = {}  # identical kernels get one row and the mean of their targets
        for ktype, (x, owner) in groups.items():
            rows, inverse = np.unique(x, axis=0, return_inverse=True)
            uniq[ktype] = (rows, inverse.ravel(), owner)
        share = {k: _prior(x) for k, (x, _) in groups.items()}
        self.forests_: dict[str, RandomForestRegressor] = {}
        kernel_sum = self._sum_by_block(share, groups, len(blocks))
        beta = _block_overhead(y, io, kernel_sum, with_scale=True)
        for r in range(self.rounds + 1):
            work = np.maximum(y - beta[0] - beta[1] * io, 0.05 * y)  # what the kernels themselves take
            for k, (rows, inverse, owner) in uniq.items():
                target = share[k] * (work[owner] / np.maximum(kernel_sum[owner], 1e-12))
                mean_target = np.bincount(inverse, weights=target, minlength=len(rows)) / np.bincount(
                    inverse, minlength=len(rows))
                forest = RandomForestRegressor(n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf,
                                               random_state=seed, n_jobs=1)
                self.forests_[k] = forest.fit(rows, mean_target)
            share = {k: np.maximum(self.forests_[k].predict(rows)[inverse], 1e-6)
                     for k, (rows, inverse, _) in uniq.items()}
            kernel_sum = self._sum_by_block(share, groups, len(blocks))
            beta = _block_overhead(y, io, kernel_sum)
            if on_round:
                on_round(r + 1, self.rounds + 1)
        self.block_overhead_ = beta[:2]
        self._kernel_cache = {}
        self.overhead_ = fit_overhead(self._network_features(archs), np.asarray(latency_ms, dtype=float))
        return self

    @staticmethod
    def _sum_by_block(share: dict[str, np.ndarray], groups, n: int) -> np.ndarray:
        total = np.zeros(n)
        for k in sorted(share):  # fixed order: exact, reproducible sums
            np.add.at(total, groups[k][1], share[k])
        return total

    def _kernel_sums(self, blocks: Sequence[Block]) -> np.ndarray:
        """Sum of kernel predictions of each block (cached per block configuration)."""
        self._check_fitted()
        todo = list(dict.fromkeys(b for b in blocks if b not in self._kernel_cache))
        if todo:
            totals = np.zeros(len(todo))
            for ktype, (x, owner) in sorted(group_kernels(todo).items()):
                np.add.at(totals, owner, self._forest(ktype).predict(x))
            self._kernel_cache.update(zip(todo, totals.tolist()))
        return np.array([self._kernel_cache[b] for b in blocks], dtype=float)

    def _forest(self, ktype: str) -> RandomForestRegressor:
        forest = self.forests_.get(ktype)
        if forest is None and ktype in _ELEMENTWISE:  # same memory-bound work as another elementwise kernel
            forest = next((self.forests_[k] for k in _ELEMENTWISE if k in self.forests_), None)
        if forest is None:
            raise HwprofError(f"kernel type '{ktype}' never occurred in the training blocks",
                              "measure blocks containing it, or use --model additive")
        return forest

    def predict_blocks(self, blocks: Sequence[Block]) -> np.ndarray:
        """Predicted latency (ms) of single blocks timed alone: their kernels plus per-run overhead."""
        io = np.array([block_io_elements(b) for b in blocks])
        return self._kernel_sums(blocks) + self.block_overhead_[0] + self.block_overhead_[1] * io

    def _network_features(self, archs: Sequence[Arch]) -> np.ndarray:
        sums = self._kernel_sums([b for a in archs for b in a.blocks])
        out, i = [], 0
        for a in archs:
            n = len(a.blocks)
            out.append([sums[i:i + n].sum(), network_io_elements(a.input_shape, a.output_shape)])
            i += n
        return np.array(out, dtype=float).reshape(-1, 2)

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        self._check_fitted()
        return design_overhead(self._network_features(archs)) @ self.overhead_

    def predict_onnx(self, models: Sequence) -> np.ndarray:
        """Predicted latency (ms) of arbitrary ONNX models, from their fused kernels."""
        from devices.base import model_input

        self._check_fitted()
        feats = []
        for model in models:
            total = 0.0
            by_type: dict[str, list] = {}
            for ktype, f in kernels_from_onnx(model):
                by_type.setdefault(ktype, []).append(f)
            for ktype, rows in sorted(by_type.items()):
                total += float(self._forest(ktype).predict(np.asarray(rows, dtype=float)).sum())
            _, in_shape, _ = model_input(model)
            out_dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
            feats.append([total, network_io_elements(in_shape, tuple(out_dims))])
        return design_overhead(np.array(feats, dtype=float).reshape(-1, 2)) @ self.overhead_

    def get_state(self):
        types = sorted(self.forests_)
        return ({"kernel_types": types}, {"overhead": self.overhead_, "block_overhead": self.block_overhead_},
                {f"forest.{k}": self.forests_[k] for k in types})

    def set_state(self, meta, arrays, models) -> None:
        self.forests_ = {k: models[f"forest.{k}"] for k in meta["kernel_types"]}
        self.overhead_ = arrays["overhead"]
        self.block_overhead_ = arrays["block_overhead"]
        self._kernel_cache = {}


def network_io_elements(input_shape: Sequence[int], output_shape: Sequence[int]) -> float:
    """Elements (millions) of a network's input and output, without the batch dimension."""
    return (float(np.prod(input_shape[1:])) + float(np.prod(output_shape[1:]))) / 1e6


def _block_overhead(y: np.ndarray, io: np.ndarray, kernel_sum: np.ndarray, with_scale: bool = False) -> np.ndarray:
    """Per-run overhead of a block timed alone: ``y = b0 + b1 * io + [scale *] kernels``, b0, b1 >= 0."""
    cols = [np.ones_like(y), io] + ([kernel_sum] if with_scale else [])
    target = y if with_scale else y - kernel_sum
    w = 1.0 / np.maximum(y, 1e-9)
    coef, *_ = np.linalg.lstsq(np.column_stack(cols) * w[:, None], target * w, rcond=None)
    return np.maximum(coef[:2], 0.0)


def _prior(x: np.ndarray) -> np.ndarray:
    """Initial share of a block's latency: compute plus memory traffic plus a dispatch constant."""
    return x[:, _MACS] + 8.0 * (x[:, _IN] + x[:, _OUT]) + 1e4
