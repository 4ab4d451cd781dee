"""A registered space restricted to a subset of its options (a *reduced space*).

``hwprof reduce-space`` writes a reduced space as JSON: the base space, and the
option labels kept per variable. Loaded, it is the base space with the same
variables and genotypes, so predictors fitted on the base space, measurement
datasets and cost tables all apply unchanged, and every network it yields is a
network of the base space (its ``Arch.space`` is the base name). Sampling,
mutation and crossover stay within the kept options; searchers ask
:meth:`~nas.spaces.base.SearchSpace.option_mask` for them.

File format (``format: hwprof-reduced-space``, ``version: 1``)::

    {"format": "hwprof-reduced-space", "version": 1, "base": "ofa", "base_params": {},
     "keep": {"s1.b0": ["k3_e3", "k5_e3", ...], ...}, ...provenance...}

Variables not named in ``keep`` keep every option.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from hwprof.errors import HwprofError
from nas.spaces.base import SearchSpace, Variable

FORMAT = "hwprof-reduced-space"
VERSION = 1


class ReducedSpace(SearchSpace):
    """``base`` with only the options in ``mask`` allowed.

    Args:
        base: The space being reduced.
        mask: Allowed option indices per variable (genotype order), non-empty.
        source: Where the reduction came from (a file path), for outputs.
    """

    def __init__(self, base: SearchSpace, mask: Sequence[Sequence[int]], source: str = "") -> None:
        self.base = base
        self.name = base.name
        self.separable = base.separable
        self.reference = base.reference
        self.source = source
        mask = [sorted({int(j) for j in m}) for m in mask]
        if len(mask) != base.n_variables or any(not m for m in mask):
            raise HwprofError(f"a reduced '{base.name}' space needs at least one option per variable")
        for m, v in zip(mask, base.variables):
            if m[0] < 0 or m[-1] >= len(v.options):
                raise HwprofError(f"option index out of range for '{v.name}' in the reduced space")
        for group in base.skip_groups:  # interchangeable positions must offer the same options
            if len({tuple(mask[i]) for i in group}) > 1:
                raise HwprofError(f"positions {', '.join(base.variables[i].name for i in group)} are "
                                  "interchangeable and must keep the same options")
        self.mask = mask
        kept = sum(len(m) for m in mask)
        total = sum(len(v.options) for v in base.variables)
        self.description = f"{base.name} reduced to {kept} of {total} options" + (f" ({source})" if source else "")

    # the base space's structure, unchanged
    def _variables(self) -> list[Variable]:
        return list(self.base.variables)

    def _build(self, choice: dict[str, Any]):
        return self.base._build(choice)

    def _skip_groups(self) -> list[tuple[str, ...]]:
        return self.base._skip_groups()

    def __getattr__(self, item: str) -> Any:  # space-specific attributes (widths, ...) of the base
        if item == "base":
            raise AttributeError(item)
        return getattr(self.base, item)

    def option_mask(self) -> list[list[int]]:
        return [list(m) for m in self.mask]

    def contains(self, genes: Sequence[int]) -> bool:
        """Whether a genotype uses only kept options."""
        return all(int(g) in m for g, m in zip(genes, self.mask))

    @property
    def params(self) -> dict[str, Any]:
        """The base space's constructor arguments (a reduced space shares its base's predictor)."""
        return self.base.params

    def info(self) -> dict[str, Any]:
        out = super().info()
        out["base_size_log10"] = round(math.log10(self.base.size()), 2)
        out["reduced_from"] = self.source
        return out

    def to_dict(self, **provenance: Any) -> dict[str, Any]:
        """The JSON form (see the module docstring), with ``provenance`` added."""
        keep = {v.name: [v.labels[j] for j in m] for v, m in zip(self.variables, self.mask)}
        removed = {v.name: [lab for j, lab in enumerate(v.labels) if j not in m]
                   for v, m in zip(self.variables, self.mask)}
        return {"format": FORMAT, "version": VERSION, "base": self.base.name,
                "base_params": getattr(self.base, "params", {}), **provenance,
                "size_log10": round(math.log10(self.size()), 3),
                "base_size_log10": round(math.log10(self.base.size()), 3),
                "keep": keep, "removed": {k: v for k, v in removed.items() if v}}


def is_space_file(name: str) -> bool:
    """Whether a ``--space`` value names a reduced-space file rather than a registered space."""
    return name.endswith(".json") or Path(name).is_file()


def load_reduced_space(path: str | Path) -> ReducedSpace:
    """Read a reduced space written by ``hwprof reduce-space``.

    Raises:
        HwprofError: if the file is missing, not JSON, of another format, or
            names options its base space does not have.
    """
    from nas.spaces.factory import create_space

    path = Path(path)
    fix = "write one with `hwprof reduce-space --space SPACE --device DEVICE --out reduced.json`"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise HwprofError(f"space file {path} does not exist", fix) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HwprofError(f"space file {path} is not valid JSON ({exc})", fix) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise HwprofError(f"{path} is not a reduced-space file (format '{FORMAT}' expected)", fix)
    if doc.get("version") != VERSION:
        raise HwprofError(f"{path} has reduced-space format version {doc.get('version')}, this hwprof reads {VERSION}",
                          "write it again with this hwprof")
    base_name = doc.get("base")
    if not isinstance(base_name, str) or is_space_file(base_name):
        raise HwprofError(f"{path} does not name its base space", fix)
    base = create_space(base_name, **(doc.get("base_params") or {}))
    keep = doc.get("keep") or {}
    if not isinstance(keep, dict):
        raise HwprofError(f"{path}: 'keep' must map variable names to option labels", fix)
    names = {v.name for v in base.variables}
    unknown = sorted(set(keep) - names)
    if unknown:
        raise HwprofError(f"{path} names variables that space '{base_name}' does not have: {', '.join(unknown[:5])}",
                          fix)
    mask = []
    for v in base.variables:
        labels = keep.get(v.name, list(v.labels))
        bad = [lab for lab in labels if lab not in v.labels] if isinstance(labels, list) else [labels]
        if bad or not labels:
            raise HwprofError(f"{path}: '{v.name}' keeps {bad or 'no'} option(s) that space '{base_name}' "
                              f"does not offer", f"choose from {list(v.labels)}")
        mask.append([v.labels.index(lab) for lab in labels])
    return ReducedSpace(base, mask, str(path))
