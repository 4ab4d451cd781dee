"""The latency-predictor interface and the per-(layer, choice) cost table.

Every predictor is an sklearn-style estimator: :meth:`LatencyPredictor.fit`
returns ``self``, fitted state ends in ``_``, :meth:`LatencyPredictor.predict`
maps architectures to milliseconds. Searchers also ask for predictions on
genotypes (``predict_genes``) and for a :class:`CostTable`, which a
differentiable searcher turns into an expected latency ``sum p * cost``.

Predictors whose prediction is a sum of per-block terms (``layer_additive``)
give exact cost tables on *separable* spaces (a layer's block depends only on
its own choice and the global choices); there ``predict_genes`` is a table
lookup, vectorised over any number of genotypes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from hwprof.arch import Arch, Block
from hwprof.errors import HwprofError


@dataclass
class CostTable:
    """Latency contribution of every option of every layer variable of a space.

    ``latency(genes) = intercept_ms + sum_i costs_ms[i][genes[layer_i]]``, exact
    for layer-additive predictors on separable spaces, a first-order
    approximation (around an anchor network) otherwise.

    Attributes:
        space: Space name.
        variables: Names of the layer variables, in network order.
        labels: Option labels per variable.
        costs_ms: One array per variable, one cost per option (ms).
        intercept_ms: Everything not attributed to a layer (stem, head, overhead).
        globals: The global choices (e.g. resolution) the table holds for.
        exact: Whether the table reproduces the predictor exactly.
    """

    space: str
    variables: list[str]
    labels: list[list[str]]
    costs_ms: list[np.ndarray]
    intercept_ms: float
    globals: dict[str, Any] = field(default_factory=dict)
    exact: bool = True

    def matrix(self) -> np.ndarray:
        """Costs as a (variables x max options) array, padded with zeros."""
        width = max(len(c) for c in self.costs_ms)
        out = np.zeros((len(self.costs_ms), width))
        for i, c in enumerate(self.costs_ms):
            out[i, : len(c)] = c
        return out

    def latency(self, layer_genes: np.ndarray) -> np.ndarray:
        """Latency (ms) of genotypes given as option indices of the layer variables only."""
        g = np.atleast_2d(np.asarray(layer_genes, dtype=np.int64))
        m = self.matrix()
        return self.intercept_ms + m[np.arange(m.shape[0]), g].sum(axis=1)

    def expected(self, probs: Sequence[np.ndarray]) -> float:
        """Expected latency under independent per-layer choice probabilities."""
        return float(self.intercept_ms + sum(float(np.dot(p, c)) for p, c in zip(probs, self.costs_ms)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"space": self.space, "globals": self.globals, "intercept_ms": self.intercept_ms,
                "exact": self.exact,
                "layers": [{"variable": v, "costs_ms": dict(zip(lab, map(float, c)))}
                           for v, lab, c in zip(self.variables, self.labels, self.costs_ms)]}


class LatencyPredictor(ABC):
    """Base class of latency predictors.

    Subclasses set ``name``, ``needs_blocks`` (fitting requires single-block
    measurements) and ``layer_additive``, and implement :meth:`fit`,
    :meth:`predict`, :meth:`get_state` and :meth:`set_state`.
    """

    name: ClassVar[str] = ""
    needs_blocks: ClassVar[bool] = False
    layer_additive: ClassVar[bool] = False
    style_aware: ClassVar[bool] = False  # can be fitted on several graph styles (kernel-rf: `fit_styles`)

    def __init__(self) -> None:
        self.provenance_: dict[str, Any] = {}
        self._tables: dict[tuple, CostTable] = {}
        self.graph_style = "hwprof"  # the graph style (hwprof.graph_styles) predictions are for
        self.graph_runtime = None  # the runtime whose executed graph gives kernels (hwprof.runtime_graph)
        self.block_profiles = None  # graph style -> block -> per-node profiled ms (measure --per-op)

    def fitted_styles(self) -> list[str]:
        """Graph styles the training data held (``hwprof`` for files written before styles existed)."""
        return list(self.provenance_.get("graph_styles") or ["hwprof"])

    def use_style(self, style: str) -> LatencyPredictor:
        """Predict for networks exported in graph ``style`` from now on.

        Raises:
            HwprofError: if the predictor was not fitted on that style.
        """
        fitted = self.fitted_styles()
        if style not in fitted:
            raise HwprofError(f"the predictor was fitted on graph style(s) {', '.join(fitted)}, not '{style}'",
                              f"measure with --graph-style {style} and fit a predictor on that data")
        self.graph_style = style
        self._tables = {}
        for inner in self._inner_predictors():
            inner.use_style(style)
        return self

    def _inner_predictors(self) -> list[LatencyPredictor]:
        """Predictors this one delegates to (a lookup table's fallback)."""
        return []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "fit" in vars(cls):  # refitting must drop cost tables of the previous fit
            fit = cls.fit

            def fit_and_reset(self, *args: Any, **kw: Any):
                self._tables = {}
                return fit(self, *args, **kw)

            fit_and_reset.__doc__, fit_and_reset.__name__ = fit.__doc__, "fit"
            cls.fit = fit_and_reset

    # --- the estimator -----------------------------------------------------------------

    @abstractmethod
    def fit(self, archs: Sequence[Arch], latency_ms: np.ndarray,
            block_latency_ms: Mapping[Block, float] | None = None, seed: int = 0) -> LatencyPredictor:
        """Fit to end-to-end latencies of ``archs`` (and single-block latencies, if used).

        Returns:
            self.
        """

    @abstractmethod
    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        """Predicted latency of each architecture, in milliseconds."""

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments (JSON-able)."""
        return {}

    def predict_onnx(self, models: Sequence[Any]) -> np.ndarray:
        """Predicted latency (ms) of arbitrary ONNX models (not built from a search space).

        Raises:
            HwprofError: for predictors bound to blocks or genes of a search space.
        """
        space = self.provenance_.get("space") or getattr(self, "space_", "")
        raise HwprofError(f"the {self.name} predictor only knows networks of its space"
                          + (f" '{space}'" if space else "") + "; this model is outside it",
                          "use a kernel-rf or flops-linear predictor for arbitrary ONNX models")

    @abstractmethod
    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, Any]]:
        """Fitted state as (JSON-able dict, numpy arrays, sklearn estimators)."""

    @abstractmethod
    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray], models: dict[str, Any]) -> None:
        """Restore the fitted state written by :meth:`get_state`."""

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or loading) has set the fitted state."""
        return any(k.endswith("_") and not k.startswith("_") and k != "provenance_" for k in vars(self))

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise HwprofError(f"the {self.name} predictor is not fitted", "call fit() or load a saved predictor")

    # --- genotypes and cost tables -------------------------------------------------------

    def cost_table(self, space, globals: Mapping[str, Any] | None = None,
                   anchor: Sequence[int] | None = None) -> CostTable:
        """Latency per (layer variable, option) of ``space``, at fixed global choices.

        The cost of an option is the change in predicted latency when the anchor
        network (first non-skip option everywhere, or ``anchor``) takes that
        option at that layer.

        Args:
            space: A :class:`~nas.spaces.base.SearchSpace`.
            globals: Values of the global variables (e.g. ``{"resolution": 224}``);
                default: the largest option of each.
            anchor: Genotype to take the layer options' deltas around.
        """
        self._check_fitted()
        genes = list(anchor) if anchor is not None else _default_anchor(space)
        for i, v in enumerate(space.variables):
            if v.kind != "layer":
                if globals and v.name in globals:
                    if globals[v.name] not in v.options:
                        raise HwprofError(f"{v.name}={globals[v.name]} is not an option of space "
                                          f"'{space.name}'", f"choose one of {list(v.options)}")
                    genes[i] = v.options.index(globals[v.name])
                elif anchor is None:
                    genes[i] = _largest_option(v)
        key = (space.name, tuple(genes))
        if key in self._tables:
            return self._tables[key]
        layer_idx = [i for i, v in enumerate(space.variables) if v.kind == "layer"]
        variants = space.layer_variants(genes)
        pred = self.predict([space.to_arch(g) for g in variants])
        costs = space.layer_deltas(pred)
        intercept = float(pred[0])  # the anchor: every delta is zero at its own options
        exact = self.layer_additive and getattr(space, "separable", True)
        table = CostTable(space.name, [space.variables[i].name for i in layer_idx],
                          [list(space.variables[i].labels) for i in layer_idx], costs, intercept,
                          {space.variables[i].name: space.variables[i].options[genes[i]]
                           for i in range(space.n_variables) if i not in layer_idx}, exact)
        self._tables[key] = table
        return table

    def predict_genes(self, space, genes: np.ndarray) -> np.ndarray:
        """Predicted latency (ms) of genotypes (rows of option indices, as ``space.encode`` gives).

        Vectorised table lookups where exact (layer-additive predictor, separable
        space); otherwise the genotypes are decoded and predicted one by one.
        """
        genes = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        if genes.shape[1] != space.n_variables:
            raise HwprofError(f"space '{space.name}' has {space.n_variables} variables, "
                              f"got genotypes of length {genes.shape[1]}")
        if not (self.layer_additive and getattr(space, "separable", True)):
            return self.predict([space.to_arch(g) for g in genes])
        layer_idx = np.array([i for i, v in enumerate(space.variables) if v.kind == "layer"])
        global_idx = [i for i, v in enumerate(space.variables) if v.kind != "layer"]
        anchor = np.asarray(_default_anchor(space))
        out = np.empty(len(genes))
        keys = genes[:, global_idx] if global_idx else np.zeros((len(genes), 0), dtype=np.int64)
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        anchors = []
        for key in uniq:
            a = anchor.copy()
            a[global_idx] = key
            anchors.append(tuple(int(x) for x in a))
        table_size = 1 + sum(len(space.variables[i].options) for i in layer_idx)
        fresh = sum((space.name, a) not in self._tables for a in anchors)
        if fresh * table_size > len(genes):  # building tables would cost more than predicting directly
            return self.predict([space.to_arch(g) for g in genes])
        for u, a in enumerate(anchors):
            rows = np.flatnonzero(inverse.ravel() == u)
            out[rows] = self.cost_table(space, anchor=a).latency(genes[rows][:, layer_idx])
        return out


def single_space(archs: Sequence[Arch], who: str):
    """The :class:`~hwprof.space_schema.SpaceSchema` of networks that must all come from one search space.

    Raises:
        HwprofError: if they come from several spaces or none.
    """
    from hwprof.space_schema import SpaceSchema

    spaces = {a.space for a in archs}
    if len(spaces) != 1 or "" in spaces:
        raise HwprofError(f"the {who} predictor needs networks from one search space",
                          "measure networks sampled with `--space NAME`")
    return SpaceSchema.registered(spaces.pop())


def schema_from_state(meta: Mapping[str, Any]):
    """The space schema a saved predictor carries; files saved before it did get the registered space's."""
    from hwprof.space_schema import SpaceSchema

    if "space_schema" in meta:
        return SpaceSchema.from_dict(meta["space_schema"])
    return SpaceSchema.registered(meta["space"])


def _largest_option(variable) -> int:
    try:
        return int(np.argmax([float(o) for o in variable.options]))
    except (TypeError, ValueError):
        return 0


def _default_anchor(space) -> list[int]:
    genes = []
    for v in space.variables:
        if v.kind == "layer":
            genes.append(next(j for j in range(len(v.options)) if j != v.skip_index))
        else:
            genes.append(_largest_option(v))
    return genes


def block_io_elements(block: Block) -> float:
    """Elements of a block's input and output (millions): what a block timed alone must move."""
    return (block.c_in * block.resolution**2 + block.c_out * block.out_resolution**2) / 1e6


def block_sum_features(archs: Sequence[Arch], block_cost: Mapping[Block, float]) -> np.ndarray:
    """Per network: sum of block costs, number of blocks, and the blocks' summed I/O elements."""
    return np.array([[sum(block_cost[b] for b in a.blocks), len(a.blocks),
                      sum(block_io_elements(b) for b in a.blocks)] for a in archs], dtype=float).reshape(-1, 3)


def design_overhead(features: np.ndarray) -> np.ndarray:
    """Design matrix of ``e2e = a*sum + b*n_blocks + d*io_elements + c`` from :func:`block_sum_features`."""
    return np.column_stack([features, np.ones(len(features))])


def fit_overhead(features: np.ndarray, latency_ms: np.ndarray) -> np.ndarray:
    """Least-squares coefficients of the end-to-end overhead model.

    Blocks timed alone each pay a per-inference overhead and the transfer of
    their input and output, which a whole network pays once; fusion across
    block borders shifts the sum further. The model
    ``e2e = a * sum(blocks) + b * n_blocks + d * io_elements + c`` absorbs
    these, fitted on relative error (rows weighted by 1/latency).
    """
    x = design_overhead(features)
    w = 1.0 / np.maximum(latency_ms, 1e-9)
    coef, *_ = np.linalg.lstsq(x * w[:, None], latency_ms * w, rcond=None)
    return coef
