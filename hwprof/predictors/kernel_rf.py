"""Kernel-level random forests (nn-Meter, Zhang et al., MobiSys 2021).

The network is split into kernels as the device's runtime executes them
(:func:`~hwprof.runtime_graph.graph_kernels`: onnxruntime's optimized graph for
``cpu``, hwprof's fusion rules for simulated chips);
one random forest per kernel type predicts a kernel's latency from its
features; a network is ``a * sum(kernels) + d * io_elements + w * weights + c``,
fitted on end-to-end rows (``io_elements``: the network's input and output;
``weights``: its parameters, which a block timed alone keeps in cache but a
whole network reloads on every inference).

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
from hwprof.graph_styles import DEFAULT_STYLE, build_model
from hwprof.predictors.base import LatencyPredictor, block_io_elements, design_overhead, fit_overhead
from hwprof.predictors.kernels import FEATURES, LEGACY_FEATURES, block_kernels
from hwprof.registry import PREDICTORS
from hwprof.runtime_graph import RULES, GraphRuntime, graph_kernels, target_kernels

#: Blocks whose kernels are read from their ONNX graph even where the IR could give them: attention
#: layers lower to several ops (reshapes, two products, softmax) that a model exported by torch has too,
#: so kernels read the same way from both make a predictor trained on one right about the other.
GRAPH_READ_OPS = ("patchembed", "flatten", "transformer", "tokenhead", "poolmixer")

#: Training networks per graph style whose whole graphs fit the network term of :meth:`predict_onnx`
#: (a few parameters; exporting a torch-style graph takes about a second, so not every network).
GRAPH_NETWORKS = 48

_MACS, _IN, _OUT = FEATURES.index("macs"), FEATURES.index("in_elems"), FEATURES.index("out_elems")
_EXTRA = FEATURES.index("extra_elems")
# Kernel types that do the same kind of work, tried in order for a type the training blocks lacked.
_SIMILAR = {"add": ("mul", "act"), "mul": ("add", "act"), "act": ("add", "mul"), "reorder": ("act", "add", "mul"),
            "reduce": ("gap",), "gap": ("reduce",), "reduce-axis": ("reduce", "gap"), "split": ("concat", "add", "mul", "act"),
            "concat": ("split", "add", "mul", "act"),
            "gconv": ("conv",)}  # a grouped convolution (RegNet, ResNeXt): hwprof's spaces have none; priced as a conv

Kernels = tuple  # ((kernel type, features), ...)


@PREDICTORS.register("kernel-rf")
class KernelRFPredictor(LatencyPredictor):
    """One random forest per kernel type, summed over the network.

    Kernels come from the graph the device's runtime executes (see
    :mod:`hwprof.runtime_graph`): for ``cpu``, onnxruntime's optimized graph of
    the network in its graph style; for simulated chips, hwprof's fusion rules.
    Because the graph style changes the executed kernels, one kernel-rf can be
    fitted on several graph styles at once (``style_aware``).

    Args:
        n_estimators: Trees per forest.
        rounds: Backfitting rounds that re-share block latency among kernels.
        min_samples_leaf: Minimum kernels per leaf.
        kernels: ``runtime`` (kernels of the graph the device's runtime executes) or
            ``rules`` (hwprof's own fusion rules, as before runtime graphs were read).
        target: What the forests learn: ``ratio`` (a kernel's time per unit of its
            roofline-like cost, MACs plus memory traffic, so a kernel larger than any
            in the training blocks is priced by its size rather than capped at the
            largest leaf) or ``ms`` (its time, as before). ``auto``: ratio for kernels
            read from a runtime graph (real devices, where networks from outside the
            space meet larger kernels), ms with the fusion rules (simulated chips,
            whose lane-padding staircases the ratio blurs; measured in the tests).
        profiler_correction: Take the profiler's own cost off every profiled node before the
            profile shares a block's latency among its kernels. onnxruntime's profiler adds a few
            microseconds to each node it times (on this project's VM a block's profiled nodes sum to
            about 5 us per node more than the block timed without the profiler), which makes small
            kernels look dearer than they are. The cost per node is fitted on the training blocks
            themselves: their profiled sum minus their latency timed without the profiler, against
            their number of profiled nodes (``profiler_node_ms_``).
    """

    name = "kernel-rf"
    needs_blocks = True
    layer_additive = True
    style_aware = True

    def __init__(self, n_estimators: int = 40, rounds: int = 3, min_samples_leaf: int = 1,
                 kernels: str = "runtime", target: str = "auto", profiler_correction: bool = False) -> None:
        super().__init__()
        if kernels not in ("runtime", RULES):
            raise HwprofError(f"unknown kernel source '{kernels}'", "use kernels=runtime or kernels=rules")
        if target not in ("auto", "ratio", "ms"):
            raise HwprofError(f"unknown kernel-rf target '{target}'", "use target=auto, ratio or ms")
        self.target = target
        self.kernels = kernels
        self.n_estimators = n_estimators
        self.rounds = rounds
        self.min_samples_leaf = min_samples_leaf
        self.profiler_correction = profiler_correction
        self._kernel_cache: dict[tuple, tuple[float, float]] = {}

    def get_params(self) -> dict[str, Any]:
        return {"n_estimators": self.n_estimators, "rounds": self.rounds, "min_samples_leaf": self.min_samples_leaf,
                "kernels": self.kernels, "target": self.target, "profiler_correction": self.profiler_correction}

    # --- kernels ---------------------------------------------------------------------------

    def _kernels(self, target: Block | Arch, style: str, context: bool = False) -> Kernels:
        """(type, features) of each kernel of a block: as timed alone, or (``context``) inside a network."""
        runtime = self.runtime_
        if (runtime.kind == RULES and style == DEFAULT_STYLE and isinstance(target, Block)
                and target.op not in GRAPH_READ_OPS):
            return tuple((t, f) for t, f in block_kernels(target))  # the IR is the graph: no build needed
        return tuple((k.type, k.features) for k in target_kernels(target, style, runtime, context))

    def fit(self, archs: Sequence[Arch], latency_ms: np.ndarray,
            block_latency_ms: Mapping[Block, float] | None = None, seed: int = 0,
            on_round=None) -> KernelRFPredictor:
        return self.fit_styles([(self.graph_style, archs, latency_ms, block_latency_ms)], seed, on_round)

    def fit_styles(self, parts: Sequence[tuple[str, Sequence[Arch], np.ndarray, Mapping[Block, float] | None]],
                   seed: int = 0, on_round=None) -> KernelRFPredictor:
        """Fit on measurements of several graph styles of the same device.

        Args:
            parts: (graph style, networks, their latencies, block -> latency) per style.
            seed: Seed of the forests.
            on_round: Called with (round, rounds) after each backfitting round.

        Returns:
            self.
        """
        self._tables = {}
        use_runtime = self.kernels == "runtime" and self.graph_runtime is not None  # fit_on sets it from the device
        self.runtime_ = self.graph_runtime if use_runtime else GraphRuntime(RULES)
        rows = [(style, b, ms) for style, _, _, blocks in parts for b, ms in (blocks or {}).items()]
        if not rows:
            raise HwprofError("the kernel-rf predictor needs single-block measurements",
                              "measure with `hwprof measure --mode both` "
                              "(or fit `hwprof fit-predictor --model additive`)")
        y = np.array([ms for _, _, ms in rows], dtype=float)
        io = np.array([block_io_elements(b) for _, b, _ in rows])
        kernel_lists = [self._kernels(b, style) for style, b, _ in rows]
        groups = _group(kernel_lists)
        uniq = {}  # identical kernels get one row and the mean of their targets
        for ktype, (x, owner) in groups.items():
            unique_rows, inverse = np.unique(x, axis=0, return_inverse=True)
            uniq[ktype] = (unique_rows, inverse.ravel(), owner)
        self.profiler_node_ms_ = (profiler_node_cost(rows, self._node_profiles()) if self.profiler_correction
                                  else 0.0)
        profiled = self._profiled_shares(rows, kernel_lists, groups)
        self.profiled_kernels_ = int(sum(np.isfinite(v).sum() for v in profiled.values()))
        share = _initial_shares(groups, profiled)
        self.forests_: dict[str, RandomForestRegressor] = {}
        self.n_features_ = len(FEATURES)
        self.target_ = self.target if self.target != "auto" else ("ms" if self.runtime_.kind == RULES else "ratio")
        kernel_sum = _sum_by_owner(share, groups, len(rows))
        beta = _block_overhead(y, io, kernel_sum, with_scale=True)
        for r in range(self.rounds + 1):
            work = np.maximum(y - beta[0] - beta[1] * io, 0.05 * y)  # what the kernels themselves take
            for k, (unique_rows, inverse, owner) in uniq.items():
                target = share[k] * (work[owner] / np.maximum(kernel_sum[owner], 1e-12))
                mean_target = np.bincount(inverse, weights=target, minlength=len(unique_rows)) / np.bincount(
                    inverse, minlength=len(unique_rows))
                forest = RandomForestRegressor(n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf,
                                               random_state=seed, n_jobs=1)
                scale = _prior(unique_rows) if self.target_ == "ratio" else 1.0
                self.forests_[k] = forest.fit(unique_rows, mean_target / scale)
            share = {k: np.where(np.isfinite(profiled[k]), profiled[k],
                                 np.maximum(self._predict_kernels(k, unique_rows)[inverse], 1e-6))
                     for k, (unique_rows, inverse, _) in uniq.items()}
            kernel_sum = _sum_by_owner(share, groups, len(rows))
            beta = _block_overhead(y, io, kernel_sum)
            if on_round:
                on_round(r + 1, self.rounds + 1)
        self.block_overhead_ = beta[:2]
        sizes = {k: _prior(rows_k) for k, (rows_k, _, _) in uniq.items()}
        self.kernel_range_ = {k: [float(z.min()), float(z.max())] for k, z in sizes.items()}
        self._kernel_cache = {}
        self.styles_ = sorted({style for style, *_ in parts})
        features = np.vstack([self._network_features(archs, style) for style, archs, _, _ in parts])
        latency = np.concatenate([np.asarray(lat, dtype=float) for _, _, lat, _ in parts])
        self.overhead_ = fit_overhead(features, latency)
        self.network_range_ = [float(features[:, 0].min()), float(features[:, 0].max())]
        self.graph_overhead_ = None
        if self.runtime_.kind != RULES:  # whole graphs (predict_onnx) run kernels the block path does not see
            chosen = [(style, a, ms) for style, archs, lat, _ in parts
                      for a, ms in list(zip(archs, np.asarray(lat, dtype=float)))[:GRAPH_NETWORKS]]
            graph = np.array([self._onnx_features(build_model(a, style)) for style, a, _ in chosen], dtype=float)
            self.graph_overhead_ = fit_overhead(graph, np.array([ms for *_, ms in chosen]))
            self.network_range_ = [float(graph[:, 0].min()), float(graph[:, 0].max())]
        return self

    def _profiled_shares(self, rows, kernel_lists, groups) -> dict[str, np.ndarray]:
        """Profiled ms of each kernel row of ``groups`` (NaN where the block was not profiled).

        Blocks measured with ``--per-op`` carry the time of every node their
        runtime ran (``block_profiles``, set by :func:`~hwprof.predictors.training.fit_on`);
        a kernel read from the runtime's executed graph has the name of its node
        there. Kernels whose time the profiler saw need not be guessed from a
        prior: a block's SE pooling, say, always sits beside the same convolutions,
        so from block totals alone its share cannot be told from theirs.
        """
        profiles, per_node = self._node_profiles(), self.profiler_node_ms_
        values: dict[str, list[float]] = {k: [] for k in groups}
        for (style, block, _), kernels in zip(rows, kernel_lists):
            node_ms = profiles.get(style, {}).get(block)
            named_kernels = target_kernels(block, style, self.runtime_) if node_ms else ()
            for j, (ktype, _) in enumerate(kernels):
                times = [max(node_ms[n] - per_node, MIN_NODE_SHARE * node_ms[n])
                         for n in named_kernels[j].nodes if n in node_ms] if node_ms else []
                values[ktype].append(float(sum(times)) if times else np.nan)
        return {k: np.asarray(v, dtype=float) for k, v in values.items()}

    def _node_profiles(self) -> Mapping[str, Mapping[Block, Mapping[str, float]]]:
        """Per-node profiles of the training blocks by graph style (none with the fusion rules)."""
        return {} if self.runtime_.kind == RULES else (getattr(self, "block_profiles", None) or {})

    def _predict_kernels(self, ktype: str, x: np.ndarray) -> np.ndarray:
        """Predicted ms of kernels of one type (rows of features)."""
        out = self._forest(ktype).predict(x[:, : self.n_features_])
        return out * _prior(x) if self.target_ == "ratio" else out

    def _kernel_sums(self, blocks: Sequence[Block], style: str) -> np.ndarray:
        """(kernels as timed alone, kernels inside a network) predicted per block, cached per block and style."""
        self._check_fitted()
        todo = list(dict.fromkeys(b for b in blocks if (b, style) not in self._kernel_cache))
        if todo:
            totals = np.zeros((len(todo), 2))
            for column, context in ((0, False), (1, True)):
                kernels = [self._kernels(b, style, context) for b in todo]
                for ktype, (x, owner) in sorted(_group(kernels).items()):
                    np.add.at(totals[:, column], owner, self._predict_kernels(ktype, x))
            self._kernel_cache.update({(b, style): tuple(t) for b, t in zip(todo, totals.tolist())})
        return np.array([self._kernel_cache[(b, style)] for b in blocks], dtype=float).reshape(-1, 2)

    def _forest(self, ktype: str) -> RandomForestRegressor:
        for candidate in (ktype, *_SIMILAR.get(ktype, ())):
            if candidate in self.forests_:
                return self.forests_[candidate]
        raise HwprofError(f"kernel type '{ktype}' never occurred in the training blocks",
                          "measure blocks containing it, or fit `hwprof fit-predictor --model additive`")

    def predict_blocks(self, blocks: Sequence[Block]) -> np.ndarray:
        """Predicted latency (ms) of single blocks timed alone: their kernels plus per-run overhead."""
        io = np.array([block_io_elements(b) for b in blocks])
        return self._kernel_sums(blocks, self.graph_style)[:, 0] + self.block_overhead_[0] + self.block_overhead_[1] * io

    def _network_features(self, archs: Sequence[Arch], style: str | None = None) -> np.ndarray:
        """Per network: its blocks' kernels as they run inside it, summed; its I/O; its weights (millions)."""
        sums = self._kernel_sums([b for a in archs for b in a.blocks], style or self.graph_style)[:, 1]
        out, i = [], 0
        for a in archs:
            n = len(a.blocks)
            out.append([sums[i:i + n].sum(), network_io_elements(a.input_shape, a.output_shape), a.params / 1e6])
            i += n
        return np.array(out, dtype=float).reshape(-1, 3)

    def _overhead(self, features: np.ndarray) -> np.ndarray:
        """Network latency from :meth:`_network_features` (files fitted before the weights term lack it)."""
        if len(self.overhead_) == 3:
            features = features[:, :2]
        return design_overhead(features) @ self.overhead_

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        self._check_fitted()
        return self._overhead(self._network_features(archs))

    def onnx_kernels(self, model) -> list:
        """Kernels of an ONNX model as this predictor's runtime runs them (:class:`OnnxKernel` list)."""
        self._check_fitted()
        return graph_kernels(model, self.runtime_)

    def kernel_latencies(self, kernels: Sequence) -> np.ndarray:
        """Predicted latency (ms) of each kernel in ``kernels`` (:class:`OnnxKernel` objects)."""
        out = np.zeros(len(kernels))
        by_type: dict[str, list[int]] = {}
        for i, k in enumerate(kernels):
            by_type.setdefault(k.type, []).append(i)
        for ktype, index in sorted(by_type.items()):
            out[index] = self._predict_kernels(ktype, np.asarray([kernels[i].features for i in index], dtype=float))
        return out

    def _onnx_features(self, model, priced: tuple | None = None) -> list[float]:
        """A whole ONNX model's kernels (as its runtime runs them) summed, its I/O and its weights (millions)."""
        from hwprof.onnx_inputs import model_inputs

        total = float((priced or self._priced(model))[1].sum())
        in_shape = (1, sum(int(np.prod(shape[1:])) for _, shape, _ in model_inputs(model)))  # every input
        out_dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
        weights = sum(int(np.prod(t.dims)) for t in model.graph.initializer if len(t.dims) > 1) / 1e6
        return [total, network_io_elements(in_shape, tuple(out_dims)), weights]

    def _priced(self, model) -> tuple[list, np.ndarray]:
        """A model's kernels as its runtime runs them and their predicted ms (read once, used twice)."""
        kernels = self.onnx_kernels(model)
        return kernels, self.kernel_latencies(kernels)

    def predict_onnx(self, models: Sequence) -> np.ndarray:
        """Predicted latency (ms) of arbitrary ONNX models, from the kernels their runtime executes.

        With a runtime graph the network term is the one fitted on the training
        networks' whole graphs (``graph_overhead_``), whose kernels are read the
        same way as the model's; the block path's term (``overhead_``) is fitted
        on kernels read block by block, which a whole graph does not split into.
        """
        self._check_fitted()
        return self._predict_priced(models, [self._priced(model) for model in models])

    def predict_onnx_with_coverage(self, models: Sequence) -> tuple[np.ndarray, list[list[str]]]:
        """:meth:`predict_onnx` and :meth:`coverage` of the same models, each model's kernels read once."""
        self._check_fitted()
        priced = [self._priced(model) for model in models]
        return self._predict_priced(models, priced), self._coverage_priced(priced)

    def _predict_priced(self, models: Sequence, priced: list) -> np.ndarray:
        feats = np.array([self._onnx_features(m, p) for m, p in zip(models, priced)], dtype=float).reshape(-1, 3)
        coef = getattr(self, "graph_overhead_", None)
        predicted = design_overhead(feats) @ coef if coef is not None else self._overhead(feats)
        if np.any(predicted <= 0):
            raise HwprofError("the model is too far from the networks this kernel-rf was trained on (its network "
                              "term extrapolates to a latency <= 0)",
                              "fit kernel-rf on measurements of models like it, or use flops-linear")
        return predicted

    def coverage(self, models: Sequence) -> list[list[str]]:
        """Where each ONNX model lies outside what this predictor was trained on, in words.

        A forest cannot extrapolate: a kernel smaller (or larger) than every
        trained kernel of its type gets the price of the nearest trained ones,
        and the network term is fitted on the trained networks' sizes. Per model,
        the list is empty when its kernels' summed time lies within the trained
        networks' and at most :data:`OUTSIDE_SHARE` of it is in kernels outside
        their type's trained range; else it says which and by how much.
        Predictors saved before ranges were recorded return empty lists.
        """
        self._check_fitted()
        return self._coverage_priced([self._priced(model) for model in models])

    def _coverage_priced(self, priced: list) -> list[list[str]]:
        ranges, span = getattr(self, "kernel_range_", None), getattr(self, "network_range_", None)
        if not ranges or not span:
            return [[] for _ in priced]
        out = []
        for kernels, ms in priced:
            total = float(ms.sum())
            sizes = _prior(np.asarray([k.features for k in kernels], dtype=float).reshape(len(kernels), -1))
            below = sum(t for k, t, z in zip(kernels, ms, sizes) if k.type in ranges and z < ranges[k.type][0])
            above = sum(t for k, t, z in zip(kernels, ms, sizes) if k.type in ranges and z > ranges[k.type][1])
            untrained = sum(t for k, t in zip(kernels, ms) if k.type not in ranges)
            notes = []
            if total < span[0] or total > span[1]:
                notes.append(f"its kernels sum to {total:.2f} ms, outside the trained networks' "
                             f"{span[0]:.2f}-{span[1]:.2f} ms")
            for name, part in (("smaller", below), ("larger", above)):
                if part > OUTSIDE_SHARE * total:
                    notes.append(f"{part / max(total, 1e-12):.0%} of its kernel time is in kernels {name} than "
                                 "any trained kernel of their type")
            if untrained > OUTSIDE_SHARE * total:
                notes.append(f"{untrained / max(total, 1e-12):.0%} of its kernel time is in kernel types never "
                             "trained (priced as similar types)")
            out.append(notes)
        return out

    def get_state(self):
        types = sorted(self.forests_)
        return ({"kernel_types": types, "runtime": self.runtime_.to_json(), "n_features": self.n_features_,
                 "graph_styles": list(self.styles_), "target": self.target_,
                 "profiler_node_ms": self.profiler_node_ms_, "kernel_range": self.kernel_range_,
                 "network_range": self.network_range_},
                {"overhead": self.overhead_, "block_overhead": self.block_overhead_,
                 **({"graph_overhead": self.graph_overhead_} if self.graph_overhead_ is not None else {})},
                {f"forest.{k}": self.forests_[k] for k in types})

    def set_state(self, meta, arrays, models) -> None:
        self.forests_ = {k: models[f"forest.{k}"] for k in meta["kernel_types"]}
        self.overhead_ = arrays["overhead"]
        self.block_overhead_ = arrays["block_overhead"]
        self.graph_overhead_ = arrays.get("graph_overhead")  # absent in files fitted before whole-graph terms
        self.runtime_ = self.graph_runtime = GraphRuntime.from_json(meta.get("runtime"))
        self.n_features_ = int(meta.get("n_features", LEGACY_FEATURES))
        self.target_ = meta.get("target", "ms")  # files written before the ratio target learnt ms
        self.styles_ = list(meta.get("graph_styles", [DEFAULT_STYLE]))
        self.profiler_node_ms_ = float(meta.get("profiler_node_ms", 0.0))
        self.kernel_range_ = meta.get("kernel_range")  # absent in files fitted before ranges were recorded
        self.network_range_ = meta.get("network_range")
        self._kernel_cache = {}


#: Share of a model's kernel time in kernels outside their type's trained range above which
#: :meth:`KernelRFPredictor.coverage` says the prediction extrapolates.
OUTSIDE_SHARE = 0.25

#: A profiled node keeps at least this share of its profiled time when the profiler's cost is taken off.
MIN_NODE_SHARE = 0.25


def profiler_node_cost(rows, profiles: Mapping[str, Mapping[Block, Mapping[str, float]]]) -> float:
    """The profiler's own cost per node (ms), from blocks timed both with and without it.

    ``(sum of a block's profiled nodes) - (its latency timed without the profiler)`` is fitted as
    ``a + cost * nodes`` over the profiled blocks (least squares, weighted by 1 / latency so that the
    many small blocks count as much as the few large ones). The intercept takes the per-run work that
    a timed run has and its profiled nodes do not (feeding the input, fetching the output). 0 without
    profiles or with fewer than 10 profiled blocks; never negative.
    """
    sums, counts, timed = [], [], []
    for style, block, ms in rows:
        node_ms = profiles.get(style, {}).get(block)
        if node_ms:
            sums.append(sum(node_ms.values()))
            counts.append(len(node_ms))
            timed.append(ms)
    if len(sums) < 10 or len(set(counts)) < 2:
        return 0.0
    y, n, w = np.asarray(sums) - np.asarray(timed), np.asarray(counts, dtype=float), 1.0 / np.asarray(timed)
    coef, *_ = np.linalg.lstsq(np.column_stack([np.ones_like(n), n]) * w[:, None], y * w, rcond=None)
    return float(max(coef[1], 0.0))


def _group(kernel_lists: Sequence[Kernels]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Kernels grouped by type: (feature matrix, owning list index per row)."""
    feats: dict[str, list] = {}
    owner: dict[str, list] = {}
    for i, kernels in enumerate(kernel_lists):
        for ktype, f in kernels:
            feats.setdefault(ktype, []).append(f)
            owner.setdefault(ktype, []).append(i)
    return {k: (np.asarray(feats[k], dtype=float), np.asarray(owner[k])) for k in feats}


def _sum_by_owner(share: dict[str, np.ndarray], groups, n: int) -> np.ndarray:
    total = np.zeros(n)
    for k in sorted(share):  # fixed order: exact, reproducible sums
        np.add.at(total, groups[k][1], share[k])
    return total


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


def _initial_shares(groups, profiled: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each kernel's first share of its block's latency: profiled ms where known, else the prior.

    Without any profiled kernel the prior alone (its scale does not matter).
    With some, the prior is brought to ms by the median ratio of profiled time
    to prior, per kernel type (all types together for a type never profiled).
    """
    prior = {k: _prior(x) for k, (x, _) in groups.items()}
    known = {k: np.isfinite(profiled[k]) for k in groups}
    if not any(v.any() for v in known.values()):
        return prior
    ratios = np.concatenate([profiled[k][known[k]] / prior[k][known[k]] for k in groups])
    shares = {}
    for k in groups:
        ratio = np.median(profiled[k][known[k]] / prior[k][known[k]]) if known[k].any() else np.median(ratios)
        shares[k] = np.where(known[k], np.maximum(profiled[k], 1e-6), prior[k] * ratio)
    return shares


def _prior(x: np.ndarray) -> np.ndarray:
    """Initial share of a block's latency: compute plus memory traffic plus a dispatch constant."""
    return x[:, _MACS] + 8.0 * (x[:, _IN] + x[:, _OUT] + x[:, _EXTRA]) + 1e4
