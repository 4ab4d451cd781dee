"""What a fitted predictor needs of its search space, carried in the predictor itself.

A predictor that works on genotypes (``additive``, ``gbm``) needs the names,
options and kinds of its space's variables and its skip groups, never how the
space builds networks. It keeps them as a :class:`SpaceSchema` and saves it
with its state, so a saved predictor predicts without the space's code (and
hwprof's core never imports the search layer). Older predictor files without
a schema get it from the space registered under their space's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hwprof.arch import Arch
from hwprof.errors import HwprofError


def _hashable(value: Any) -> Any:
    """JSON lists back to tuples (options are compared and hashed)."""
    return tuple(_hashable(v) for v in value) if isinstance(value, list) else value


@dataclass(frozen=True)
class SchemaVariable:
    """One categorical choice: its name, option values and kind (``layer`` or ``global``)."""

    name: str
    options: tuple[Any, ...]
    kind: str = "layer"


@dataclass(frozen=True)
class SpaceSchema:
    """A search space as a predictor sees it.

    Attributes:
        name: The space's name, as architectures record it.
        variables: Its variables in genotype order.
        skip_groups: Indices of interchangeable positions (see ``SearchSpace.skip_groups``).
    """

    name: str
    variables: tuple[SchemaVariable, ...]
    skip_groups: tuple[tuple[int, ...], ...] = ()

    @classmethod
    def of(cls, space) -> SpaceSchema:
        """The schema of a search space object (anything with ``name``, ``variables``, ``skip_groups``)."""
        return cls(space.name, tuple(SchemaVariable(v.name, tuple(v.options), v.kind) for v in space.variables),
                   tuple(tuple(int(i) for i in g) for g in getattr(space, "skip_groups", ())))

    @classmethod
    def registered(cls, name: str) -> SpaceSchema:
        """The schema of the space registered under ``name`` (through the plugin registry).

        Raises:
            HwprofError: if no such space is registered.
        """
        from hwprof.registry import SPACES

        return cls.of(SPACES.create(name))

    @property
    def n_variables(self) -> int:
        return len(self.variables)

    def genes_of(self, arch: Arch) -> tuple[int, ...]:
        """The genotype of an architecture from this space.

        Raises:
            HwprofError: if the arch was not built by this space, or a gene is out of range.
        """
        if arch.space != self.name or len(arch.genes) != self.n_variables:
            raise HwprofError(f"architecture {arch.hash} is not from space '{self.name}' (it says '{arch.space}')",
                              f"use `--space {arch.space}`" if arch.space else "sample it from a space")
        for g, v in zip(arch.genes, self.variables):
            if not 0 <= g < len(v.options):
                raise HwprofError(f"gene {g} out of range for '{v.name}' ({len(v.options)} options)")
        return tuple(int(g) for g in arch.genes)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (saved with a predictor's state)."""
        return {"name": self.name, "skip_groups": [list(g) for g in self.skip_groups],
                "variables": [{"name": v.name, "options": list(v.options), "kind": v.kind} for v in self.variables]}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> SpaceSchema:
        """Inverse of :meth:`to_dict`."""
        return cls(doc["name"], tuple(SchemaVariable(v["name"], tuple(_hashable(o) for o in v["options"]), v["kind"])
                                      for v in doc["variables"]),
                   tuple(tuple(g) for g in doc.get("skip_groups", ())))
