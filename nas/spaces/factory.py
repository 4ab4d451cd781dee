"""Registered search spaces by name, with constructor arguments given as ``NAME:KEY=VALUE,...``."""

from __future__ import annotations

import inspect
from typing import Any

from hwprof.errors import HwprofError
from nas.spaces.base import SearchSpace


def create_space(name: str, **params) -> SearchSpace:
    """Instantiate a registered search space by name (e.g. ``"ofa"``).

    Args:
        name: A registered name, optionally with constructor arguments
            (``"vit:gelu=tanh"``, ``"ofa:width_mult=1.2"``).
        **params: Constructor arguments of a registered space.

    Raises:
        HwprofError: for an unknown space or an argument the space does not take.
    """
    from hwprof.registry import SPACES

    name, _, args = name.partition(":")
    params = {**_parse_arguments(name, args), **params}
    if params and name in SPACES:
        signature = {p: v for p, v in inspect.signature(SPACES.factory(name)).parameters.items() if p != "self"}
        accepted = list(signature)
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise HwprofError(f"space '{name}' takes no argument '{unknown[0]}'",
                              f"it takes: {', '.join(accepted) or 'none'} (e.g. --space {name}:{accepted[0]}=VALUE)"
                              if accepted else "give the space name alone")
        for key, value in params.items():
            default = signature[key].default
            if isinstance(default, (int, float)) and not isinstance(default, bool) and isinstance(value, str):
                raise HwprofError(f"space argument '{key}={value}' of '{name}' is not a number",
                                  f"e.g. --space {name}:{key}={default}")
    return SPACES.create(name, **params)


def _parse_arguments(name: str, text: str) -> dict[str, Any]:
    """``"gelu=tanh,num_classes=10"`` as {"gelu": "tanh", "num_classes": 10} (numbers become numbers)."""
    out: dict[str, Any] = {}
    for item in filter(None, text.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise HwprofError(f"space argument '{item}' of '{name}' is not KEY=VALUE", f"e.g. --space {name}:gelu=tanh")
        for convert in (int, float, str):
            try:
                out[key.strip()] = convert(value.strip())
                break
            except ValueError:
                continue
    return out
