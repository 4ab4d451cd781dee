"""The search-space interface shared by every space.

A space is an ordered list of categorical :class:`Variable` s. A *genotype* is
one option index per variable. Layer variables may include a ``"skip"``
option; within a *skip group* (interchangeable positions of a stage, same
shapes) skips are moved to the end, so each network has one canonical
genotype. Sampling, mutation, crossover, encoding and decoding are generic;
a space only defines its variables and how a genotype becomes blocks.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, Sequence

import numpy as np

from hwprof.arch import SKIP, Arch, Block
from hwprof.errors import HwprofError


@dataclass(frozen=True)
class Variable:
    """One categorical choice of a space.

    Attributes:
        name: Unique name, e.g. ``"s2.b1"`` (stage 2, block 1) or ``"resolution"``.
        options: Option values the space interprets (hashable, JSON-able).
        labels: Human-readable label per option, e.g. ``"k5_e6"``.
        kind: ``"layer"`` for a position in the network (single-path and
            two-stage searchers work per layer), ``"global"`` otherwise.
    """

    name: str
    options: tuple[Any, ...]
    labels: tuple[str, ...]
    kind: str = "layer"

    @property
    def skip_index(self) -> int | None:
        """Index of the ``skip`` option, or None if the layer cannot be skipped."""
        return self.options.index(SKIP) if SKIP in self.options else None


@lru_cache(maxsize=131072)
def _make_block(op: str, c_in: int, c_out: int, resolution: int, kwargs: tuple) -> Block:
    """Blocks are immutable and validated on creation: build each configuration once."""
    return Block(op, c_in, c_out, resolution, **dict(kwargs))


class Chain:
    """Helper that appends blocks while tracking channels and resolution."""

    def __init__(self, channels: int, resolution: int) -> None:
        self.blocks: list[Block] = []
        self.channels = channels
        self.resolution = resolution

    def add(self, op: str, c_out: int, **kwargs: Any) -> None:
        block = _make_block(op, self.channels, c_out, self.resolution, tuple(sorted(kwargs.items())))
        self.blocks.append(block)
        self.channels, self.resolution = c_out, block.out_resolution


GELU_FORMS = {"erf": "gelu", "tanh": "gelu_tanh"}


def gelu_activation(form: str) -> str:
    """The IR activation of a GELU form: ``erf`` (exact, nn.GELU()) or ``tanh`` (nn.GELU(approximate="tanh"),
    GPT-2/BERT code's ``gelu_new``); the two export to different graphs (onnxruntime fuses only the erf one)."""
    if form not in GELU_FORMS:
        raise HwprofError(f"unknown GELU form '{form}'", f"use one of: {', '.join(GELU_FORMS)}")
    return GELU_FORMS[form]


class SearchSpace(ABC):
    """Base class of search spaces.

    Subclasses set ``name``, ``description`` and ``reference`` and implement
    :meth:`_variables`, :meth:`_build` and optionally :meth:`_skip_groups`.
    """

    name: str = ""
    description: str = ""
    reference: str = ""
    # Values a variable is held at when the search's estimator cannot judge it (see nas.dimensions)
    deployment_values: dict[str, Any] = {}
    #: Variables that set how finely the input is sampled (resolution, a ViT's patch size): a score
    #: computed at one fixed input resolution cannot judge them (see ZeroCostProxy.sees)
    input_grid_variables: tuple[str, ...] = ("resolution",)
    #: Global variables ``hwprof profile-space`` sweeps option by option, everything else equal
    #: (e.g. how many blocks are attention blocks: where attention stops paying on a chip)
    profile_sweeps: tuple[str, ...] = ()
    #: True when a layer's block depends only on its own choice and the global
    #: choices (not on neighbouring layers' widths): then per-(layer, choice)
    #: cost tables of block-additive predictors are exact.
    separable: bool = True

    @property
    def params(self) -> dict[str, Any]:
        """Constructor arguments that differ from their defaults (``get_space(name, **params)`` rebuilds it)."""
        out = {}
        for name, p in inspect.signature(type(self).__init__).parameters.items():
            if name != "self" and p.default is not inspect.Parameter.empty and hasattr(self, name):
                if getattr(self, name) != p.default:
                    out[name] = getattr(self, name)
        return out

    @property
    def spec(self) -> str:
        """Name and non-default constructor arguments, as ``--space`` takes them (``vit:gelu=tanh``)."""
        params = self.params
        return self.name + (":" + ",".join(f"{k}={v}" for k, v in sorted(params.items())) if params else "")

    # --- what a space defines ---------------------------------------------------------

    @abstractmethod
    def _variables(self) -> list[Variable]:
        """The space's variables in genotype order."""

    @abstractmethod
    def _build(self, choice: dict[str, Any]) -> list[Block]:
        """Blocks of the network for a canonical choice (variable name -> option value)."""

    def _skip_groups(self) -> list[tuple[str, ...]]:
        """Groups of interchangeable skippable layer variables (by name)."""
        return []

    # --- derived structure ------------------------------------------------------------

    @cached_property
    def variables(self) -> tuple[Variable, ...]:
        """All variables, in genotype order."""
        return tuple(self._variables())

    @cached_property
    def _index(self) -> dict[str, int]:
        return {v.name: i for i, v in enumerate(self.variables)}

    @cached_property
    def skip_groups(self) -> tuple[tuple[int, ...], ...]:
        """Skip groups as tuples of variable indices."""
        return tuple(tuple(self._index[n] for n in g) for g in self._skip_groups())

    def layer_choices(self) -> list[Variable]:
        """Per-layer choice sets, in network order (for single-path and two-stage search)."""
        return [v for v in self.variables if v.kind == "layer"]

    def layer_variants(self, genes: Sequence[int]) -> list[tuple[int, ...]]:
        """``genes`` followed by every single-layer change of it (each layer variable x each option).

        Not canonicalised: the point is to vary one position at a time.
        """
        base = tuple(int(g) for g in genes)
        out = [base]
        for i, v in enumerate(self.variables):
            if v.kind == "layer":
                out.extend(base[:i] + (o,) + base[i + 1:] for o in range(len(v.options)))
        return out

    def layer_deltas(self, values: Sequence[float]) -> list[np.ndarray]:
        """Split values computed on :meth:`layer_variants` into per-layer changes from the first value."""
        values = np.asarray(values, dtype=float)
        out, k = [], 1
        for v in self.variables:
            if v.kind == "layer":
                out.append(values[k:k + len(v.options)] - values[0])
                k += len(v.options)
        return out

    @property
    def n_variables(self) -> int:
        """Length of a genotype and of :meth:`encode` vectors."""
        return len(self.variables)

    def size(self) -> int:
        """Number of distinct canonical genotypes (architectures) the space's search may visit.

        Counts the options of :meth:`option_mask` (all of them, unless the space is reduced).
        """
        mask = self.option_mask()
        grouped = {i for g in self.skip_groups for i in g}
        total = math.prod(len(m) for i, m in enumerate(mask) if i not in grouped)
        for group in self.skip_groups:
            skip = self.variables[group[0]].skip_index
            n_opts = len([j for j in mask[group[0]] if j != skip])
            depth_free = skip in mask[group[0]]
            total *= sum(n_opts**m for m in range(len(group) + 1)) if depth_free else n_opts ** len(group)
        return total

    def info(self) -> dict[str, Any]:
        """Summary for ``nas spaces``."""
        size = self.size()
        return {"name": self.name, "size": size, "size_log10": round(math.log10(size), 2),
                "variables": self.n_variables, "layers": len(self.layer_choices()),
                "description": self.description, "reference": self.reference}

    # --- genotypes --------------------------------------------------------------------

    def canonical(self, genes: tuple[int, ...]) -> tuple[int, ...]:
        """Move skips to the end of each skip group (same network, one genotype)."""
        out = list(genes)
        for group in self.skip_groups:
            skip = self.variables[group[0]].skip_index
            kept = [out[i] for i in group if out[i] != skip]
            kept += [skip] * (len(group) - len(kept))
            for i, g in zip(group, kept):
                out[i] = g
        return tuple(out)

    def _check_genes(self, genes: Any) -> tuple[int, ...]:
        genes = tuple(int(g) for g in genes)
        if len(genes) != self.n_variables:
            raise HwprofError(f"space '{self.name}' expects {self.n_variables} genes, got {len(genes)}")
        for g, v in zip(genes, self.variables):
            if not 0 <= g < len(v.options):
                raise HwprofError(f"gene {g} out of range for '{v.name}' ({len(v.options)} options)")
        return genes

    def to_arch(self, genes: Any) -> Arch:
        """Build the architecture of a genotype (canonicalised first)."""
        genes = self.canonical(self._check_genes(genes))
        choice = {v.name: v.options[g] for v, g in zip(self.variables, genes)}
        return Arch(tuple(self._build(choice)), self.name, genes)

    def genes_of(self, arch: Arch) -> tuple[int, ...]:
        """The genotype of an architecture from this space.

        Raises:
            HwprofError: if the arch was not built by this space.
        """
        if arch.space != self.name or len(arch.genes) != self.n_variables:
            raise HwprofError(
                f"architecture {arch.hash} is not from space '{self.name}' (it says '{arch.space}')",
                f"use `--space {arch.space}`" if arch.space else "sample it from a space")
        return self._check_genes(arch.genes)

    def describe(self, arch: Arch) -> dict[str, str]:
        """Variable name -> option label of an architecture of this space."""
        return {v.name: v.labels[g] for v, g in zip(self.variables, self.genes_of(arch))}

    # --- search operators -------------------------------------------------------------

    def option_mask(self) -> list[list[int]]:
        """Option indices a search may use, per variable: all of them (a reduced space keeps fewer)."""
        return [list(range(len(v.options))) for v in self.variables]

    def share_within_skip_groups(self, mask: list[list[int]]) -> list[list[int]]:
        """``mask`` with the interchangeable positions of each skip group given the union of their options."""
        for group in self.skip_groups:
            shared = sorted(set().union(*(mask[i] for i in group)))
            for i in group:
                mask[i] = list(shared)
        return mask

    def _allowed(self, allowed: Sequence[Sequence[int]] | None) -> list[list[int]]:
        if allowed is None:
            return self.option_mask()
        if len(allowed) != self.n_variables or any(len(a) == 0 for a in allowed):
            raise HwprofError(f"an option mask for space '{self.name}' needs a non-empty list per variable")
        return [list(a) for a in allowed]

    def sample_genes(self, rng: np.random.Generator, allowed: Sequence[Sequence[int]] | None = None) -> tuple[int, ...]:
        """A canonical genotype drawn uniformly per choice; depth of each skip group uniform.

        Args:
            rng: Random generator.
            allowed: Optional option indices allowed per variable (a reduced space).
        """
        allow = self._allowed(allowed)
        genes = [allow[i][int(rng.integers(len(allow[i])))] for i in range(self.n_variables)]
        for group in self.skip_groups:
            skip = self.variables[group[0]].skip_index
            if any(skip not in allow[i] for i in group):
                continue  # depth is not free in this reduced space
            kept = int(rng.integers(len(group) + 1))
            for pos, i in enumerate(group):
                non_skip = [j for j in allow[i] if j != skip]
                if pos < kept and non_skip:
                    genes[i] = non_skip[int(rng.integers(len(non_skip)))]
                else:
                    genes[i] = skip
        return self.canonical(tuple(genes))

    def sample(self, rng: np.random.Generator, allowed: Sequence[Sequence[int]] | None = None) -> Arch:
        """Draw an architecture uniformly per choice; depth of each skip group uniform."""
        return self.to_arch(self.sample_genes(rng, allowed))

    def mutate_genes(self, genes: Sequence[int], rng: np.random.Generator, p: float = 0.1,
                     allowed: Sequence[Sequence[int]] | None = None) -> tuple[int, ...]:
        """Resample each choice with probability ``p`` (within ``allowed``); canonical result."""
        allow = self._allowed(allowed)
        out = list(genes)
        for i in range(self.n_variables):
            if rng.random() < p:
                out[i] = allow[i][int(rng.integers(len(allow[i])))]
        return self.canonical(tuple(out))

    def mutate(self, arch: Arch, rng: np.random.Generator, p: float = 0.1) -> Arch:
        """Resample each choice with probability ``p``."""
        return self.to_arch(self.mutate_genes(self.genes_of(arch), rng, p))

    def crossover_genes(self, a: Sequence[int], b: Sequence[int], rng: np.random.Generator) -> tuple[int, ...]:
        """Uniform crossover of two genotypes (canonical result)."""
        pick = rng.random(self.n_variables) < 0.5
        return self.canonical(tuple(int(x) if p else int(y) for x, y, p in zip(a, b, pick)))

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator) -> Arch:
        """Uniform crossover: each choice from either parent with equal probability."""
        return self.to_arch(self.crossover_genes(self.genes_of(a), self.genes_of(b), rng))

    def encode(self, arch: Arch) -> np.ndarray:
        """Fixed-length integer vector (option index per variable)."""
        return np.asarray(self.genes_of(arch), dtype=np.int64)

    def decode(self, vector: Any) -> Arch:
        """Inverse of :meth:`encode`."""
        return self.to_arch(np.asarray(vector).astype(np.int64).tolist())


def option_variable(name: str, options: list[Any], labels: list[str], skippable: bool,
                    kind: str = "layer") -> Variable:
    """A variable whose options are ``options`` plus ``skip`` when ``skippable``."""
    if skippable:
        options, labels = [*options, SKIP], [*labels, SKIP]
    return Variable(name, tuple(options), tuple(labels), kind)
