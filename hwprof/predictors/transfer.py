"""Few-shot transfer: a predictor for a new device from a handful of its networks and other devices' predictors.

Profiling a new device is what costs most; published work adapts a predictor
built on other devices from 10-20 measured networks (HELP, Lee et al., NeurIPS
2021, through a hardware embedding and meta-learning; MAPLE-Edge, Nair et al.,
2022, through a linear combination of what reference devices measure). Three
methods here, all in MAPLE-Edge's family, compared in
``benchmarks/bench_transfer.py``:

- ``mixture``: the new device's latency is a non-negative
  combination of the source predictors' predictions, plus MACs, the number
  of layers and a constant: ``y = sum_s w_s * p_s(x) + a * MACs + b * layers
  + c`` with ``w, a, b, c >= 0``, fitted by non-negative least squares on
  relative error. Few parameters (sources + 3), so it is stable from 5
  networks, and each source contributes what it knows about which operators
  are expensive. ``b`` is the new device's cost per dispatched operator
  beyond what the sources charge: NPUs and VPUs pay a fixed time per layer
  that no source needs to share (leave-one-device-out at N = 20: kirin-npu
  94% -> 99% within 10%, Kendall tau 0.90 -> 0.93; myriad-vpu tau 0.85 -> 0.91).
- ``blockwise``: the mixture, then relative corrections by kind of block:
  ``y = mixture(x) + sum_g d_g * m_g(x)``, where ``m_g`` is the mixture's
  cost of the network's blocks in column ``g`` (the sources' per-block costs,
  weighted as in the mixture). A chip whose 7x7 depthwise kernels are slower
  than on every source shows as ``d > 0`` on them, which no combination of
  whole-network predictions can express. A block counts in one column per
  level (:func:`block_labels`), and its correction is the sum over them:
  *effects* (its kernel, activation, squeeze-and-excitation and expansion
  ratio, each shared by many kinds, so a few networks pin them down), its
  *kind* (operator, kernel, activation, SE) and its *subkind* (the kind at
  its expansion ratio: XNNPACK's int8/float32 ratio depends on both). A
  fourth level, *count*, is not relative: a fixed time per block with a
  given activation or with SE, ``+ sum_e t_e * n_e(x)`` (``n_e``: how many
  such blocks), for what a chip pays per operator whatever its size: a DSP
  that hands its float-only h-swish and sigmoid to the host CPU pays a
  synchronisation each time (hexagon-dsp, N = 20: Kendall tau 0.886 -> 0.940,
  its test-retest 0.940). Each
  level is ridge-shrunk towards 0 with its own strength, chosen by
  leave-one-out error on the few rows, so with too few rows to tell, a block
  keeps the coarser level's correction, and with none at all the plain
  mixture. Which levels (``levels``: ``auto`` chooses among
  LEVEL_CHOICES by leave-one-out error) is fitted per device: kinds suit
  kirin-npu, effects hexagon-dsp (simulated, ``bench_transfer``); both
  choices have ``count``, whose strength may leave it out.
  Each searched column is standardised, so a cheap kind is corrected as
  readily as a costly one (kirin-npu, N = 10: 78% -> 82% within 10%). Needs
  sources that price single blocks (``lut``, ``kernel-rf``). The default
  (``auto``) fits the mixture, ``nearest`` and, where every source prices
  single blocks, blockwise at each of LEVEL_CHOICES, and keeps the one with
  the lowest leave-one-out error over the measured networks (each refitted without one row, that row predicted;
  about 5 s for 20 networks): the ridge alone keeps the mixture's
  coefficients fitted on every row, so it cannot see corrections that chase
  a few extreme networks (as a D-optimal pick has).
- ``nearest``: the single source whose predictions best explain the new
  measurements (least relative error after an affine fit), scaled:
  ``y = a * p_s(x) + b``. Two parameters: where one source already tracks
  the new device (onnxruntime int8 for LiteRT int8 on the same CPU), it
  beats a mixture of seven sources fitted on 20 rows.

The source predictors are stored inside the predictor file (their own
checksummed bytes, no pickle), and the manifest lists their device, space
and file hash. Sources must be of the same search space.

:func:`informative_sample` chooses which networks to measure on the new
device from a seeded pool of random networks, by a greedy D-optimal design in
two stages: first the networks that make the mixture's regression best
determined (over the sources' normalised predictions, MACs and layer count:
those where the sources disagree and that span the latency range), then those
that make the kinds' corrections best determined (over the sources' cost of
each kind of block in each network).
"""

from __future__ import annotations

import hashlib
import json
import weakref
from functools import lru_cache
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.optimize import nnls

from hwprof.arch import Arch, Block
from hwprof.device import device_display_name
from hwprof.errors import HwprofError
from hwprof.predictors.base import LatencyPredictor
from hwprof.registry import PREDICTORS

METHODS = ("mixture", "blockwise", "nearest")
MIN_ROWS = {"mixture": 3, "blockwise": 3, "nearest": 2}
BACKFIT_ROUNDS = 4
#: Leave-one-out over at most this many rows when ``auto`` chooses a method; k-fold with this many folds beyond.
MAX_HELD_OUT_FOLDS = 20
#: Ridge strengths tried for the blockwise corrections, relative to the mean squared column (inf: none).
RIDGE_GRID = (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, np.inf)
FIXED_KIND_SPREAD = 1e-6  # a kind whose cost is the same (std / mean below this) in every row is fixed


def load_sources(paths: Sequence[str]) -> list[LatencyPredictor]:
    """Read source predictor files (one line of error for a missing, tampered or foreign file)."""
    from hwprof.predictors import store

    if not paths:
        raise HwprofError("transfer needs one or more source predictors", "give --transfer-from a.pred,b.pred")
    return [store.load(p) for p in paths]


def _space_of(predictor: LatencyPredictor) -> str:
    return str(predictor.provenance_.get("space") or "")


def _device_token(predictor: LatencyPredictor) -> str | None:
    """The device a predictor was fitted for, as its ``--device`` token: ``cpu:int8`` for a real device's
    non-float32 rows (simulated chips have one dtype, their profile's)."""
    prov = predictor.provenance_
    device = prov.get("device")
    if device is None or prov.get("simulated"):
        return device
    return device_display_name(device, False, (json.loads(prov["settings"]) if prov.get("settings") else {})
                               .get("dtype", "float32"))


def check_space(sources: Sequence[LatencyPredictor], space_name: str, paths: Sequence[str] = ()) -> None:
    """Refuse sources fitted on another space than ``space_name``."""
    for i, source in enumerate(sources):
        if _space_of(source) and _space_of(source) != space_name:
            name = paths[i] if i < len(paths) else f"source {i}"
            raise HwprofError(f"source predictor {name} was fitted on space '{_space_of(source)}', not "
                              f"'{space_name}'", "transfer from predictors of the same space")


@lru_cache(maxsize=65536)
def _block_layer_count(block: Block) -> int:
    return len(block.layers())


def layer_count(arch: Arch) -> int:
    """Primitive layers of a network (each a dispatched operator: conv with its BN and activation, add, pool, ...)."""
    return sum(_block_layer_count(b) for b in arch.blocks)


#: Columns of :func:`_source_features` after the sources' own: MACs, the layer count, the constant.
GENERIC_COLUMNS = 3


def _source_features(sources: Sequence[LatencyPredictor], archs: Sequence[Arch]) -> np.ndarray:
    """One column per source (its predicted ms), then MACs in G, the layer count, then 1 (GENERIC_COLUMNS)."""
    cols = [np.asarray(s.predict(archs), dtype=float) for s in sources]
    cols.append(np.array([a.macs / 1e9 for a in archs], dtype=float))
    cols.append(np.array([layer_count(a) for a in archs], dtype=float))
    cols.append(np.ones(len(archs)))
    return np.column_stack(cols)


def block_kind(block: Block) -> str:
    """The kind a blockwise correction is shared by: operator, largest kernel, activation, squeeze-and-excitation."""
    return f"{block.op}-k{max(block.kernel) if block.kernel else 0}-{block.act}" + ("-se" if block.se else "")


def _expansion(block: Block) -> str | None:
    """An mbconv's expansion ratio (hidden / input channels) as text; None without an expansion conv."""
    if block.op != "mbconv" or not block.expand_conv or not block.mid or not block.c_in:
        return None
    return f"{round(block.mid / block.c_in, 1):g}"


def block_subkind(block: Block) -> str | None:
    """A kind refined by the expansion ratio (an mbconv with an expansion conv); None for other blocks."""
    ratio = _expansion(block)
    return None if ratio is None else f"{block_kind(block)}-e{ratio}"


def block_effects(block: Block) -> list[str]:
    """The single attributes a block's correction shares with every block that has them: kernel, activation,
    squeeze-and-excitation, expansion ratio (MBConv-style blocks only; others have none)."""
    if block.op != "mbconv":
        return []
    effects = [f"kernel={max(block.kernel)}", f"act={block.act}", f"se={'yes' if block.se else 'no'}"]
    ratio = _expansion(block)
    return effects if ratio is None else [*effects, f"expand={ratio}"]


#: Levels of the blockwise corrections, coarse to fine; each is ridge-shrunk with its own strength.
LEVELS = ("effect", "kind", "subkind", "count")
#: Prefix of a per-occurrence column's label (level ``count``): a fixed cost in ms per block with the effect.
COUNT_PREFIX = "per-block "
#: The effects whose blocks may pay a fixed cost each (level ``count``): those that change which operators run
#: (an activation, squeeze-and-excitation's pooling and gating), not only how much work the same operators do.
COUNTED_EFFECTS = ("act=", "se=")
#: The sets of levels ``levels="auto"`` chooses from by leave-one-out error (see ``bench_transfer``). Subkinds
#: are not among them: on no simulated chip were they the best at N = 10 or 20, and on 20 LiteRT int8 networks
#: their lowest leave-one-out error (9.1 % against 10.4 % for kinds) came from corrections of -390 % to +530 %
#: that put the space's fastest network at 4.7 ms (12.9 ms by kinds); ``--param levels=...+subkind`` keeps them.
LEVEL_CHOICES = ("kind+count", "effect+count")


@lru_cache(maxsize=65536)
def block_labels(block: Block) -> tuple[tuple[int, str], ...]:
    """A block's correction columns as (level, label): its single attributes (:func:`block_effects`), its kind
    (:func:`block_kind`), its kind at its expansion ratio (:func:`block_subkind`), and per occurrence of an
    activation or of squeeze-and-excitation (level ``count``, labels starting with COUNT_PREFIX).

    A block's relative correction is the sum of its first three levels' coefficients; a ``count`` column's
    coefficient is a fixed time in ms that each block with that attribute adds, however large the block: what a
    chip pays per operator it hands to the host CPU (the Hexagon DSP's float-only h-swish and sigmoid) or per
    extra kernel launch, which no source prices and no relative correction can express. The
    effects are shared by many kinds, so a few networks pin them down (7x7
    kernels slower, every kind with them); a kind's and a subkind's own
    coefficient refine them and are shrunk towards 0 apart (:func:`_loo_ridge`),
    so with too few rows to tell them apart a block is priced by its effects.
    Flat kinds with the expansion (every subkind on its own) were tried in
    ``bench_transfer``: with 20 networks they leave too few rows per kind.
    """
    sub = block_subkind(block)  # cached: every prediction of a blockwise model labels its networks' blocks
    effects = block_effects(block)
    return tuple([(0, e) for e in effects] + [(1, block_kind(block))] + ([(2, sub)] if sub else [])
                 + [(3, COUNT_PREFIX + e) for e in effects if e.startswith(COUNTED_EFFECTS)])


def _kind_membership(archs: Sequence[Arch], columns: Sequence[str]) -> tuple[list[Block], np.ndarray, np.ndarray]:
    """The networks' distinct blocks, how often each network has each (networks x blocks), and which of the
    correction ``columns`` each block counts in (blocks x columns: :func:`block_labels`)."""
    blocks = list(dict.fromkeys(b for a in archs for b in a.blocks))
    index = {b: i for i, b in enumerate(blocks)}
    column = {k: j for j, k in enumerate(columns)}
    owner = np.zeros((len(archs), len(blocks)))  # networks x blocks -> their columns below
    kind_of = np.zeros((len(blocks), len(columns)))
    for b, i in index.items():
        for _, label in block_labels(b):
            j = column.get(label)
            if j is not None:
                kind_of[i, j] = 1.0
    for n, a in enumerate(archs):
        for b in a.blocks:
            owner[n, index[b]] += 1.0
    return blocks, owner, kind_of


def _kind_costs(sources: Sequence[LatencyPredictor], archs: Sequence[Arch], kinds: Sequence[str]) -> np.ndarray:
    """Per source, network and block kind: the source's summed cost of the network's blocks of that kind.

    Shape (sources, networks, kinds); the mixture's cost per kind is its weights times this.
    """
    return _priced_by_kind(sources, *_kind_membership(archs, kinds), columns=kinds)


def _priced_by_kind(sources: Sequence[LatencyPredictor], blocks: list[Block], owner: np.ndarray,
                    kind_of: np.ndarray, columns: Sequence[str] | None = None) -> np.ndarray:
    """:func:`_kind_costs` from a :func:`_kind_membership` already worked out (``columns``: their labels; a
    per-occurrence column holds how many of its blocks the network has, for every source)."""
    costs = np.array([np.asarray(s.predict_blocks(blocks), dtype=float) for s in sources])
    counted = _count_columns(columns) if columns is not None else np.zeros(kind_of.shape[1], dtype=bool)
    out = []
    for c in costs:
        priced = c[:, None] * kind_of
        if counted.any():
            priced[:, counted] = kind_of[:, counted]  # 1 ms a block: its coefficient is the ms
        out.append(owner @ priced)
    return np.stack(out)


def varying_kinds(costs: np.ndarray) -> np.ndarray:
    """Which columns of per-network kind costs vary between the networks (std / mean above FIXED_KIND_SPREAD)."""
    return np.std(costs, axis=0) > FIXED_KIND_SPREAD * np.maximum(np.abs(np.mean(costs, axis=0)), 1e-12)


def _loo_ridge(z: np.ndarray, r: np.ndarray, varies: np.ndarray, searched: np.ndarray | None = None,
               group: np.ndarray | None = None) -> tuple[np.ndarray, tuple[float, ...]]:
    """Ridge coefficients of ``r ~ z`` with the strengths of least leave-one-out error (RIDGE_GRID); and those.

    The columns of searched kinds (``searched``) are standardised first, so each
    such kind's relative correction is shrunk alike: with raw columns a kind
    that costs little (a few 7x7 SE blocks) was shrunk to nothing long before a
    costly one moved. One-off blocks that every network has once (stem, head,
    pooling) keep the scale of the largest column: they all scale with the
    resolution, so standardised they trade large corrections of opposite sign
    that no measurement pins down. Kinds that cost the same in every network
    (``varies`` false) get no correction; the mixture's constant is theirs.
    ``group`` (each column's level: 0 effects, 1 kinds, 2 subkinds) gives each
    level its own strength: a finer level refines the coarser ones, so it is
    shrunk towards them apart.
    """
    group = np.zeros(z.shape[1], dtype=int) if group is None else np.asarray(group, dtype=int)
    norm = np.sqrt(np.mean(z ** 2, axis=0))
    varies = varies & (norm > 0)
    if searched is not None and varies.any():  # one-off blocks keep the scale of the largest column
        norm = np.where(searched, norm, norm[varies].max())
    coef = np.zeros(z.shape[1])
    groups = int(group.max()) + 1 if len(group) else 1
    if not varies.any():
        return coef, (np.inf,) * groups
    scaled, strengths = _loo_ridge_standardised(z[:, varies] / norm[varies], r, group[varies], groups)
    coef[varies] = scaled / norm[varies]
    return coef, strengths


def _loo_ridge_standardised(z: np.ndarray, r: np.ndarray, group: np.ndarray,
                            groups: int) -> tuple[np.ndarray, tuple[float, ...]]:
    """Each group's strength from RIDGE_GRID by coordinate search on leave-one-out error (two sweeps over the
    groups, from a middle strength each); an infinite strength leaves that group's columns out."""
    scale = np.array([float(np.mean(np.sum(z[:, group == g] ** 2, axis=0))) if np.any(group == g) else 1.0
                      for g in range(groups)])
    scale[scale == 0] = 1.0

    def loo_fit(strengths: tuple[float, ...]) -> tuple[float, np.ndarray]:
        penalty = np.array(strengths)[group] * scale[group]
        used = np.isfinite(penalty)
        coef = np.zeros(z.shape[1])
        if not used.any():
            return float(np.mean(r ** 2)), coef
        zu = z[:, used]
        inv = np.linalg.inv(zu.T @ zu + np.diag(penalty[used]))
        coef[used] = inv @ zu.T @ r
        hat = np.einsum("ij,jk,ik->i", zu, inv, zu)
        return float(np.mean(((r - z @ coef) / np.maximum(1.0 - hat, 1e-6)) ** 2)), coef

    present = sorted({int(g) for g in group})
    none = tuple([np.inf] * groups)
    best_error, best_coef = loo_fit(none)  # no correction
    best = none
    current = tuple(RIDGE_GRID[len(RIDGE_GRID) // 2] if g in present else np.inf for g in range(groups))
    for _ in range(2):
        for g in present:
            for t in RIDGE_GRID:
                trial = current[:g] + (t,) + current[g + 1:]
                error, coef = loo_fit(trial)
                if error < best_error:
                    best_error, best_coef, best = error, coef, trial
            if best != none:
                current = best
    return best_coef, best


def _fit_mixture(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative mixture coefficients of ``y ~ x`` on relative error."""
    w = 1.0 / np.maximum(y, 1e-9)
    coef, _ = nnls(x * w[:, None], y * w)
    return coef


def _count_columns(labels: Sequence[str]) -> np.ndarray:
    """Which correction columns are per-occurrence (level ``count``: COUNT_PREFIX labels)."""
    return np.array([label.startswith(COUNT_PREFIX) for label in labels], dtype=bool)


def _corrected_columns(coef: np.ndarray, per_source: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """What each correction column multiplies: the mixture's cost of the blocks in it (its source weights times
    the sources' costs, ``per_source``: sources x ... x columns), or for a per-occurrence column the blocks it
    counts, whatever the weights (a fixed cost on this device that no source has)."""
    z = np.tensordot(coef[:per_source.shape[0]], per_source, axes=1)
    if counted.any():
        z[..., counted] = per_source[0][..., counted]
    return z


def _fit_blockwise(x: np.ndarray, per_source: np.ndarray, y: np.ndarray, searched: np.ndarray,
                   group: np.ndarray, counted: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """The mixture and the ridge-shrunk per-kind corrections, each backfitted to what the other leaves.

    Returns:
        (mixture coefficients, the correction of each column, ridge strength chosen per level).
    """
    w = 1.0 / np.maximum(y, 1e-9)
    coef = _fit_mixture(x, y)
    for r in range(BACKFIT_ROUNDS + 1):
        z = _corrected_columns(coef, per_source, counted)
        kind_coef, ridge = _loo_ridge(z * w[:, None], (y - x @ coef) * w, varying_kinds(z), searched, group)
        if r < BACKFIT_ROUNDS:
            coef, _ = nnls(x * w[:, None], (y - z @ kind_coef) * w)
    return coef, kind_coef, ridge


def _blockwise_value(fitted: tuple[np.ndarray, np.ndarray, tuple[float, ...]], x_row: np.ndarray,
                     per_source_row: np.ndarray, counted: np.ndarray) -> float:
    """One network's prediction from :func:`_fit_blockwise`'s result (``per_source_row``: sources x kinds)."""
    coef, kind_coef, _ = fitted
    return float(x_row @ coef + _corrected_columns(coef, per_source_row, counted) @ kind_coef)


def _loo_mape(fit, predict, n: int, y: np.ndarray) -> float:
    """Held-out mean absolute relative error of a fitting procedure over ``n`` rows: leave-one-out up to
    MAX_HELD_OUT_FOLDS rows, k-fold with that many folds beyond (``fit(rows)`` -> fitted state,
    ``predict(state, row)`` -> that row's prediction). A transfer is meant for a few rows; with all 300 of a
    device's networks, leave-one-out fitted each candidate 300 times."""
    from hwprof.predictors.selection import fold_indices

    errors = []
    for held in fold_indices(n, min(n, MAX_HELD_OUT_FOLDS), seed=0):
        state = fit(np.setdiff1d(np.arange(n), held))
        errors.extend(abs(predict(state, j) / y[j] - 1.0) for j in held)
    return float(np.mean(errors))


def _fit_nearest(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The single source (and constant) whose affine fit has the least relative error."""
    w = 1.0 / np.maximum(y, 1e-9)
    best, coef = np.inf, np.zeros(x.shape[1])
    for s in range(x.shape[1] - GENERIC_COLUMNS):  # the source columns
        cols = x[:, [s, -1]]
        c, *_ = np.linalg.lstsq(cols * w[:, None], y * w, rcond=None)
        err = float(np.mean(np.abs(cols @ c - y) * w))
        if err < best:
            best, coef = err, np.zeros(x.shape[1])
            coef[s], coef[-1] = c
    return coef


#: The methods that are a linear model of the source features (:func:`_source_features`); ties go to the first.
LINEAR_FITS = {"mixture": _fit_mixture, "nearest": _fit_nearest}


@PREDICTORS.register("transfer")
class TransferPredictor(LatencyPredictor):
    """Few-shot predictor for a new device from source predictors (see the module docstring).

    Args:
        sources: Paths of the source predictor files (read at fit time; the fitted
            predictor keeps their contents, so the files may move afterwards).
        method: ``blockwise``, ``mixture`` or ``nearest``; ``auto`` (default): the mixture,
            nearest or (where every source prices single blocks: ``lut``, ``kernel-rf``)
            blockwise, whichever has the lowest leave-one-out error on the measured networks
            (recorded as ``loo_mape_``). With few rows and many sources, the mixture's weights
            overfit where one source alone, scaled, tracks the new device.
        levels: Blockwise method: which levels of corrections (:data:`LEVELS`, joined by ``+``, e.g.
            ``effect+kind``); ``auto`` (default): the set of LEVEL_CHOICES with the lowest leave-one-out
            error (recorded in ``loo_mape_``; the one chosen is ``levels_``).
    """

    name = "transfer"

    def __init__(self, sources: Sequence[str] = (), method: str = "auto", levels: str = "auto") -> None:
        super().__init__()
        if method not in ("auto", *METHODS):
            raise HwprofError(f"unknown transfer method '{method}'", f"use one of: auto, {', '.join(METHODS)}")
        if levels != "auto" and (not levels or not set(levels.split("+")) <= set(LEVELS)):
            raise HwprofError(f"unknown blockwise levels '{levels}'",
                              f"use auto, or levels joined by '+' from: {', '.join(LEVELS)} (e.g. effect+kind)")
        self.sources = [str(s) for s in sources]
        self.method = method
        self.levels = levels
        self._source_models: list[LatencyPredictor] | None = None

    def get_params(self) -> dict[str, Any]:
        return {"sources": self.sources, "method": self.method, "levels": self.levels}

    def with_sources(self, models: Sequence[LatencyPredictor]) -> TransferPredictor:
        """Use already loaded source predictors instead of reading ``sources`` (the benchmark does)."""
        self._source_models = list(models)
        return self

    def _models(self) -> list[LatencyPredictor]:
        if self._source_models is None:
            self._source_models = load_sources(self.sources)
        return self._source_models

    def fit(self, archs: Sequence[Arch], latency_ms: np.ndarray,
            block_latency_ms: Mapping[Block, float] | None = None, seed: int = 0) -> TransferPredictor:
        sources = self._models()
        prices_blocks = all(hasattr(s, "predict_blocks") for s in sources)
        method = self.method if self.method != "auto" else ("blockwise" if prices_blocks else "mixture")
        y = np.asarray(latency_ms, dtype=float)
        if len(y) < MIN_ROWS[method]:
            raise HwprofError(f"transfer ({method}) needs at least {MIN_ROWS[method]} measured networks "
                              f"of the new device, got {len(y)}", "measure more networks (e.g. --samples 20)")
        for space_name in sorted({a.space for a in archs}):
            check_space(sources, space_name, self.sources)
        x = _source_features(sources, archs)
        self.columns_: list[str] = []
        self.column_levels_: list[str] = []
        self.kind_coef_ = np.zeros(0)
        self.ridge_: tuple[float, ...] = ()
        self.levels_ = ""
        self.loo_mape_: dict[str, float] = {}
        if self.method in LINEAR_FITS:
            coef = LINEAR_FITS[method](x, y)
        else:  # blockwise, or auto: chosen by leave-one-out error over the measured rows
            if not prices_blocks and self.method == "blockwise":
                missing = [s.name for s in sources if not hasattr(s, "predict_blocks")]
                raise HwprofError(f"the blockwise transfer needs sources that price single blocks; "
                                  f"{', '.join(missing)} does not", "use lut or kernel-rf sources, or "
                                  "--param method=mixture")
            candidates: dict[str, str] = {}
            if prices_blocks:
                labels = sorted({label for a in archs for b in a.blocks for label in block_labels(b)})
                group = np.array([level for level, _ in labels], dtype=int)
                names = [label for _, label in labels]
                counted = _count_columns(names)
                blocks, owner, kind_of = _kind_membership(archs, names)
                per_source = _priced_by_kind(sources, blocks, owner, kind_of, names)  # priced once; weights change
                searched = ~np.all(owner @ kind_of == 1, axis=0)  # not a one-off block every network has
                choices = LEVEL_CHOICES if self.levels == "auto" else (self.levels,)
                masks = {lv: np.isin(group, [LEVELS.index(level) for level in lv.split("+")]) for lv in choices}
                candidates = {f"blockwise ({lv})": lv for lv in choices}
            if self.method == "auto" or len(candidates) > 1:
                if self.method == "auto":  # blockwise only where it predicts held-out rows better
                    for name, fit_linear in LINEAR_FITS.items():
                        self.loo_mape_[name] = _loo_mape(lambda rows, f=fit_linear: f(x[rows], y[rows]),
                                                         lambda c, j: float(x[j] @ c), len(y), y)
                for name, lv in candidates.items():
                    ps, m = per_source[:, :, masks[lv]], masks[lv]
                    self.loo_mape_[name] = _loo_mape(
                        lambda rows, ps=ps, m=m: _fit_blockwise(x[rows], ps[:, rows], y[rows], searched[m], group[m],
                                                                counted[m]),
                        lambda f, j, ps=ps, m=m: _blockwise_value(f, x[j], ps[:, j], counted[m]), len(y), y)
                order = list(self.loo_mape_)  # ties: the simpler model (mixture, then nearest)
                best = min(self.loo_mape_, key=lambda k: (self.loo_mape_[k], order.index(k)))
                method = best.split(" ")[0]
                chosen = candidates.get(best, "")
            else:
                chosen = next(iter(candidates.values()))
            if method == "blockwise":
                m = masks[chosen]
                coef, self.kind_coef_, self.ridge_ = _fit_blockwise(x, per_source[:, :, m], y, searched[m], group[m],
                                                                    counted[m])
                self.columns_ = [label for (_, label), keep in zip(labels, m) if keep]
                self.column_levels_ = [LEVELS[level] for (level, _), keep in zip(labels, m) if keep]
                self.levels_ = chosen
            else:
                coef = LINEAR_FITS[method](x, y)
        self.method_ = method
        self.coef_ = np.asarray(coef, dtype=float)
        self.source_info_ = [{"file": path, "device": _device_token(src),
                              "space": _space_of(src), "predictor": src.name,
                              "sha256": hashlib.sha256(_dumps(src)).hexdigest()}
                             for path, src in zip(self.sources or [""] * len(sources), sources)]
        return self

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        self._check_fitted()
        sources = self._models()
        out = _source_features(sources, archs) @ self.coef_
        if len(self.columns_) and np.any(self.kind_coef_):
            z = _corrected_columns(self.coef_, _kind_costs(sources, archs, self.columns_),
                                   _count_columns(self.columns_))
            out = out + z @ self.kind_coef_
        return out

    def weights(self) -> dict[str, float]:
        """The fitted coefficient of each source (by device), of MACs (per G) and the constant."""
        self._check_fitted()
        names = [f"{i['device'] or 'source'} ({i['predictor']})" for i in self.source_info_]
        return dict(zip([*names, "macs_g", "per_layer_ms", "constant_ms"], self.coef_.tolist()))

    def corrections(self, level: str | None = None) -> dict[str, float]:
        """Blockwise method: the fitted correction of each column (0: as the mixture prices it).

        A block's relative correction is the sum over its ``effect``, ``kind`` and ``subkind`` columns
        (:func:`block_labels`); a ``count`` column's correction is in ms per block (COUNT_PREFIX labels).

        Args:
            level: Only the columns of this level (``effect``, ``kind``, ``subkind``, ``count``); default all.
        """
        self._check_fitted()
        return {label: float(c) for label, lv, c in zip(self.columns_, self.column_levels_, self.kind_coef_)
                if level in (None, lv)}

    def block_corrections(self, blocks: Sequence[Block]) -> np.ndarray:
        """Blockwise method: each block's relative correction, the sum over its columns (0: as the mixture prices it;
        0.5: 50 % dearer)."""
        return self._summed_per_block(blocks, ("effect", "kind", "subkind"))

    def block_overheads_ms(self, blocks: Sequence[Block]) -> np.ndarray:
        """Blockwise method with level ``count``: the fixed time in ms each block adds on this device beyond
        what the mixture prices (the sum over its per-occurrence columns; 0 without them)."""
        return self._summed_per_block(blocks, ("count",))

    def _summed_per_block(self, blocks: Sequence[Block], levels: Sequence[str]) -> np.ndarray:
        """Each block's sum of the fitted corrections of its columns (:func:`block_labels`) at ``levels``."""
        corrections = self.corrections()
        return np.array([sum(corrections.get(label, 0.0) for level, label in block_labels(b) if LEVELS[level] in levels)
                         for b in blocks])

    def get_state(self):
        arrays = {"coef": self.coef_, "kind_coef": self.kind_coef_}
        for i, src in enumerate(self._models()):
            arrays[f"source_{i}"] = np.frombuffer(_dumps(src), dtype=np.uint8)
        return {"sources": self.source_info_, "method": self.method_, "columns": self.columns_,
                "column_levels": self.column_levels_, "levels": self.levels_, "loo_mape": self.loo_mape_,
                "ridge": [float(t) if np.isfinite(t) else None for t in self.ridge_]}, arrays, {}

    def set_state(self, meta, arrays, models) -> None:
        from hwprof.predictors import store

        self.coef_ = arrays["coef"]
        self.columns_ = list(meta.get("columns", meta.get("block_kinds", [])))  # block_kinds: one level, kinds
        self.column_levels_ = list(meta.get("column_levels", ["kind"] * len(self.columns_)))
        self.levels_ = meta.get("levels", "kind" if self.columns_ else "")
        self.method_ = meta.get("method", "mixture" if self.method == "auto" else self.method)
        self.loo_mape_ = dict(meta.get("loo_mape", {}))
        self.kind_coef_ = arrays.get("kind_coef", np.zeros(0))
        ridge = meta.get("ridge")
        ridge = ridge if isinstance(ridge, list) else [ridge]  # one strength before subkinds
        self.ridge_ = tuple(np.inf if t is None else float(t) for t in ridge)
        self.source_info_ = list(meta.get("sources", []))
        count = len([k for k in arrays if k.startswith("source_")])
        self._source_models = [store.loads(arrays[f"source_{i}"].tobytes(), f"embedded source {i}")
                               for i in range(count)]
        if len(self.coef_) == count + 2:  # saved before the layer-count term: it had none
            self.coef_ = np.insert(self.coef_, count + 1, 0.0)


_SERIALISED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _dumps(predictor: LatencyPredictor) -> bytes:
    """A source's saved bytes, serialised once per source object: a source's fitted state does not change once
    it is a source, and serialising a forest fallback took 80 % of a 20-network fit."""
    from hwprof.predictors import store

    if predictor not in _SERIALISED:
        _SERIALISED[predictor] = store.dumps(predictor)
    return _SERIALISED[predictor]


#: How many of an informative sample's networks are chosen for the mixture (the sources' whole-network predictions)
#: before the rest are chosen for the blockwise corrections (at least the mixture's own column count).
SOURCE_DESIGN_PICKS = 10


def _greedy_d_optimal(x: np.ndarray, n: int, chosen: Sequence[int] = ()) -> list[int]:
    """Add rows of ``x`` to ``chosen`` one at a time, each the one that most increases the log determinant of
    the chosen rows' information matrix, until there are ``n``."""
    chosen = list(chosen)
    info = 1e-6 * np.eye(x.shape[1]) + (x[chosen].T @ x[chosen] if chosen else 0.0)
    while len(chosen) < n:
        gain = np.einsum("ij,jk,ik->i", x, np.linalg.inv(info), x)  # log det increase is log(1 + x inv x^T)
        gain[chosen] = -np.inf
        pick = int(np.argmax(gain))
        chosen.append(pick)
        info = info + np.outer(x[pick], x[pick])
    return chosen


def _on_one_scale(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.median(np.abs(x), axis=0), 1e-12)


def _mixture_design_rows(sources: Sequence[LatencyPredictor], candidates: Sequence[Arch]) -> np.ndarray:
    """The mixture's columns for ``candidates`` (:func:`_source_features`), each on one scale, each row divided
    by its mean normalised prediction: the rows as the mixture's fit on relative error weighs them."""
    x = _on_one_scale(_source_features(sources, candidates))
    return x / x[:, :len(sources)].mean(axis=1, keepdims=True)


def informative_sample(space, sources: Sequence[LatencyPredictor], n: int, seed: int = 0,
                       pool: int = 2000, candidates: Sequence[Arch] | None = None) -> list[Arch]:
    """``n`` networks chosen by a two-stage greedy D-optimal design (module docstring).

    The first SOURCE_DESIGN_PICKS (or as many as the mixture has columns) make
    the mixture best determined: a D-optimal design over the sources'
    normalised whole-network predictions, MACs and layer count, each network's
    row divided by its mean normalised prediction, as the mixture's fit on
    relative error divides it by its latency (so the design does not favour
    the largest networks). The rest, where every source prices single blocks,
    make the blockwise corrections best determined: the design continues over
    the sources' mean cost of each network's blocks of each kind, counting the
    networks already chosen.

    ``bench_transfer --seeds 20``, simulated chips, within 10 % against random
    picks: kirin-npu 87.5 % against 79.4 % at N = 10, 98.9 % against 97.9 %
    at N = 20, and better MAPE and Kendall tau on all four chips at both. Not
    kept: the first stage on unweighted rows (kirin-npu N = 10: 83.5 %),
    continuing over the sources' predictions (hexagon-dsp N = 20: tau 0.932,
    under random picks' 0.939), starting with the kinds (kirin-npu N = 10:
    70.9 %), and representative picks (k-medoids, kernel herding: 67-73 %).

    Args:
        space: The space to sample from (the sources' space).
        sources: Source predictors.
        n: Networks to choose.
        seed: Seed of the candidate pool.
        pool: Random candidates to choose from.
        candidates: Choose from these networks instead of a random pool.
    """
    check_space(sources, space.name)
    if candidates is None:
        rng = np.random.default_rng(seed)
        candidates = [space.sample(rng) for _ in range(max(pool, n))]
    x = _mixture_design_rows(sources, candidates)
    first = min(n, max(SOURCE_DESIGN_PICKS, x.shape[1]))
    chosen = _greedy_d_optimal(x, first)
    if n > first and all(hasattr(s, "predict_blocks") for s in sources):
        kinds = sorted({label for a in candidates for b in a.blocks for level, label in block_labels(b)
                        if LEVELS[level] == "kind"})
        costs = _kind_costs(sources, candidates, kinds).mean(axis=0)  # candidates x kinds
        x = _on_one_scale(costs[:, varying_kinds(costs)])
    return [candidates[i] for i in _greedy_d_optimal(x, n, chosen)]


def few_shot_predictor(device, space, source_paths: Sequence[str], n: int, data_dir, seed: int = 0,
                       method: str = "auto", status=lambda _m: None) -> TransferPredictor:
    """Bring up a new device: measure ``n`` informative networks on it, fit a transfer predictor.

    The networks are measured into ``data_dir`` (resumable, drift reference on
    real devices) and the fitted predictor records them in its provenance.
    """


    archs = informative_sample(space, load_sources(source_paths), n, seed)
    status(f"measuring {n} informative {space.name} networks on {device.label} into {data_dir}")
    return fit_few_shot(device, space, source_paths, archs, data_dir, seed, method, status)[0]


def fit_few_shot(device, space, source_paths: Sequence[str], archs: Sequence[Arch], data_dir, seed: int = 0,
                 method: str = "auto", status=lambda _m: None):
    """Measure ``archs`` on ``device`` into ``data_dir`` (networks already there are not measured again), then
    fit a transfer predictor from ``source_paths`` on every network ``data_dir`` holds for the device.

    Returns:
        (the fitted :class:`TransferPredictor`, the measurements it was fitted on).
    """
    from hwprof.dataset import Dataset
    from hwprof.predictors.data import load_measurements
    from hwprof.predictors.fitting import fit_on
    from hwprof.profiling import measure_into

    measure_into(Dataset(data_dir), device, list(archs), mode="e2e",
                 reference_every_s=device.reference_every_s)
    data = load_measurements(data_dir, device=device.name, space=space.name)
    status(f"fitting a transfer predictor ({method}) from {len(source_paths)} source predictors and "
           f"{len(data.archs)} networks")
    return fit_on("transfer", data, seed=seed, sources=list(source_paths), method=method), data


def sample_networks(space, samples: int, seed: int, select: str | None, from_paths: str | None) -> list[Arch]:
    """The networks ``hwprof measure --space`` measures: ``random`` (default) or ``informative`` (needs sources)."""
    select = select or ("informative" if from_paths else "random")
    if select not in ("random", "informative"):
        raise HwprofError(f"unknown --select '{select}'", "use random or informative")
    if select == "random":
        rng = np.random.default_rng(seed)
        return [space.sample(rng) for _ in range(samples)]
    if not from_paths:
        raise HwprofError("--select informative needs the predictors of other devices", "add --from a.pred,b.pred")
    return informative_sample(space, load_sources([p.strip() for p in from_paths.split(",") if p.strip()]),
                              samples, seed)
