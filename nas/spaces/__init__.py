"""Search spaces. Each registers by name in :data:`hwprof.registry.SPACES`."""

from __future__ import annotations

from nas.spaces.base import SearchSpace, Variable
from nas.spaces.factory import create_space

__all__ = ["SearchSpace", "Variable", "get_space", "space_names"]


def get_space(name: str, **params) -> SearchSpace:
    """Instantiate a registered search space by name (e.g. ``"ofa"``), or load a reduced space.

    Args:
        name: A registered name, optionally with constructor arguments
            (``"vit:gelu=tanh"``, ``"ofa:width_mult=1.2"``), or the path of a
            reduced-space JSON file written by ``hwprof reduce-space`` (see
            :mod:`nas.spaces.reduced`).
        **params: Constructor arguments of a registered space.

    Raises:
        HwprofError: for an unknown space or an argument the space does not take.
    """
    from hwprof.registry import SPACES
    from nas.spaces.reduced import is_space_file, load_reduced_space

    if is_space_file(name) and name not in SPACES.names():
        return load_reduced_space(name)
    return create_space(name, **params)


def space_names() -> list[str]:
    """Names of all registered search spaces."""
    from hwprof.registry import SPACES

    return SPACES.names()
