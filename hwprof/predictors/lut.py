"""Lookup table of measured block latencies (as OFA and FBNet build them)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from hwprof.arch import Arch, Block
from hwprof.errors import HwprofError
from hwprof.predictors.base import LatencyPredictor, block_sum_features, design_overhead, fit_overhead
from hwprof.registry import PREDICTORS


@PREDICTORS.register("lut")
class LUTPredictor(LatencyPredictor):
    """Network latency = sum of its measured blocks, corrected by a fitted overhead.

    The correction (see :func:`~hwprof.predictors.base.fit_overhead`) is fitted
    on end-to-end rows.

    Args:
        fallback: Predictor name fitted on the same block rows to fill in blocks
            missing from the table (default ``"kernel-rf"``: on spaces with many
            resolutions a bare table almost never covers an unseen network);
            ``"none"`` (or ``None``) makes a missing block an error that names it.
    """

    name = "lut"
    needs_blocks = True
    layer_additive = True

    def __init__(self, fallback: str | None = "kernel-rf") -> None:
        super().__init__()
        self.fallback = None if fallback in (None, "", "none") else fallback

    def get_params(self) -> dict[str, Any]:
        return {"fallback": self.fallback}

    def fit(self, archs: Sequence[Arch], latency_ms: np.ndarray,
            block_latency_ms: Mapping[Block, float] | None = None, seed: int = 0) -> LUTPredictor:
        if not block_latency_ms:
            raise HwprofError("the lut predictor needs single-block measurements",
                              "measure with `hwprof measure --mode both` "
                              "(or fit `hwprof fit-predictor --model additive`)")
        self.table_ = {b.key(): float(v) for b, v in block_latency_ms.items()}
        self.fallback_ = None
        if self.fallback:
            from hwprof.predictors import create_predictor

            self.fallback_ = create_predictor(self.fallback)
            if not hasattr(self.fallback_, "predict_blocks"):
                raise HwprofError(f"predictor '{self.fallback}' cannot predict single blocks",
                                  "use --fallback kernel-rf")
            self.fallback_.graph_style, self.fallback_.graph_runtime = self.graph_style, self.graph_runtime
            self.fallback_.block_profiles = getattr(self, "block_profiles", None)
            self.fallback_.fit(archs, latency_ms, block_latency_ms, seed=seed)
        self.overhead_ = fit_overhead(self._block_features(archs), np.asarray(latency_ms, dtype=float))
        return self

    def predict_blocks(self, blocks: Sequence[Block]) -> np.ndarray:
        """Measured latency of single blocks (fallback prediction where unmeasured)."""
        self._check_fitted()
        keys = [b.key() for b in blocks]
        out = np.array([self.table_.get(k, np.nan) for k in keys], dtype=float)
        missing = np.flatnonzero(np.isnan(out))
        if len(missing):
            if self.fallback_ is None:
                first = blocks[missing[0]]
                raise HwprofError(
                    f"block '{first.describe()}' (key {keys[missing[0]]}) is not in the lookup table "
                    f"({len(missing)} block(s) missing)",
                    "measure networks that contain it, or fit with --fallback kernel-rf")
            out[missing] = self.fallback_.predict_blocks([blocks[i] for i in missing])
        return out

    def missing_blocks(self, archs: Sequence[Arch]) -> tuple[int, int]:
        """(distinct blocks of ``archs`` not in the table, distinct blocks) - the fallback predicts the first."""
        self._check_fitted()
        keys = {b.key() for a in archs for b in a.blocks}
        return sum(k not in self.table_ for k in keys), len(keys)

    def _inner_predictors(self) -> list[LatencyPredictor]:
        return [self.fallback_] if self.fallback_ is not None else []

    def _block_features(self, archs: Sequence[Arch]) -> np.ndarray:
        unique = list(dict.fromkeys(b for a in archs for b in a.blocks))
        return block_sum_features(archs, dict(zip(unique, self.predict_blocks(unique))))

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        self._check_fitted()
        return design_overhead(self._block_features(archs)) @ self.overhead_

    def get_state(self):
        keys = sorted(self.table_)
        meta = {"keys": keys}
        arrays = {"latency": np.array([self.table_[k] for k in keys]), "overhead": self.overhead_}
        models: dict[str, Any] = {}
        if self.fallback_ is not None:
            meta["fallback"] = {"name": self.fallback_.name, "params": self.fallback_.get_params()}
            f_meta, f_arrays, f_models = self.fallback_.get_state()
            meta["fallback"]["state"] = f_meta
            arrays.update({f"fallback.{k}": v for k, v in f_arrays.items()})
            models.update({f"fallback.{k}": v for k, v in f_models.items()})
        return meta, arrays, models

    def set_state(self, meta, arrays, models) -> None:
        self.table_ = dict(zip(meta["keys"], arrays["latency"].tolist()))
        self.overhead_ = arrays["overhead"]
        self.fallback_ = None
        if "fallback" in meta:
            from hwprof.predictors import create_predictor

            f = meta["fallback"]
            self.fallback_ = create_predictor(f["name"], **f["params"])
            strip = len("fallback.")
            self.fallback_.set_state(f["state"], {k[strip:]: v for k, v in arrays.items() if k.startswith("fallback.")},
                                     {k[strip:]: v for k, v in models.items() if k.startswith("fallback.")})
