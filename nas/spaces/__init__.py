"""Search spaces. Each registers by name in :data:`hwprof.registry.SPACES`."""

from __future__ import annotations

from nas.spaces.base import SearchSpace, Variable

__all__ = ["SearchSpace", "Variable", "get_space", "space_names"]


def get_space(name: str, **params) -> SearchSpace:
    """Instantiate a registered search space by name (e.g. ``"ofa"``)."""
    from hwprof.registry import SPACES

    return SPACES.create(name, **params)


def space_names() -> list[str]:
    """Names of all registered search spaces."""
    from hwprof.registry import SPACES

    return SPACES.names()
