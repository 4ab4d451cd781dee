"""The search-space interface shared by every space.

A space is an ordered list of categorical :class:`Variable` s. A *genotype* is
one option index per variable. Layer variables may include a ``"skip"``
option; within a *skip group* (interchangeable positions of a stage, same
shapes) skips are moved to the end, so each network has one canonical
genotype. Sampling, mutation, crossover, encoding and decoding are generic;
a space only defines its variables and how a genotype becomes blocks.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from hwprof.arch import Arch, Block
from hwprof.errors import HwprofError

SKIP = "skip"


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


class Chain:
    """Helper that appends blocks while tracking channels and resolution."""

    def __init__(self, channels: int, resolution: int) -> None:
        self.blocks: list[Block] = []
        self.channels = channels
        self.resolution = resolution

    def add(self, op: str, c_out: int, **kwargs: Any) -> None:
        block = Block(op, self.channels, c_out, self.resolution, **kwargs)
        self.blocks.append(block)
        self.channels, self.resolution = c_out, block.out_resolution


class SearchSpace(ABC):
    """Base class of search spaces.

    Subclasses set ``name``, ``description`` and ``reference`` and implement
    :meth:`_variables`, :meth:`_build` and optionally :meth:`_skip_groups`.
    """

    name: str = ""
    description: str = ""
    reference: str = ""

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

    @property
    def n_variables(self) -> int:
        """Length of a genotype and of :meth:`encode` vectors."""
        return len(self.variables)

    def size(self) -> int:
        """Number of distinct canonical genotypes (architectures) in the space."""
        grouped = {i for g in self.skip_groups for i in g}
        total = math.prod(len(v.options) for i, v in enumerate(self.variables) if i not in grouped)
        for group in self.skip_groups:
            n_opts = len(self.variables[group[0]].options) - 1
            total *= sum(n_opts**m for m in range(len(group) + 1))
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

    def sample(self, rng: np.random.Generator) -> Arch:
        """Draw an architecture uniformly per choice; depth of each skip group uniform."""
        genes = [int(rng.integers(len(v.options))) for v in self.variables]
        for group in self.skip_groups:
            kept = int(rng.integers(len(group) + 1))
            for pos, i in enumerate(group):
                v = self.variables[i]
                if pos < kept:
                    non_skip = [j for j in range(len(v.options)) if j != v.skip_index]
                    genes[i] = non_skip[int(rng.integers(len(non_skip)))]
                else:
                    genes[i] = v.skip_index
        return self.to_arch(genes)

    def mutate(self, arch: Arch, rng: np.random.Generator, p: float = 0.1) -> Arch:
        """Resample each choice with probability ``p``."""
        genes = list(self.genes_of(arch))
        for i, v in enumerate(self.variables):
            if rng.random() < p:
                genes[i] = int(rng.integers(len(v.options)))
        return self.to_arch(genes)

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator) -> Arch:
        """Uniform crossover: each choice from either parent with equal probability."""
        ga, gb = self.genes_of(a), self.genes_of(b)
        pick = rng.random(self.n_variables) < 0.5
        return self.to_arch([x if p else y for x, y, p in zip(ga, gb, pick)])

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
