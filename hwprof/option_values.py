"""Values written on a command line, parsed: input shapes and plugin settings.

Shared by the ``hwprof``/``nas`` commands and anything else that takes the
same text (a config file, a notebook), so one spelling means one thing.
"""

from __future__ import annotations

import json
from typing import Sequence

from hwprof.errors import HwprofError


def parse_input_shapes(items: Sequence[str] | None) -> tuple[int, ...] | dict[str, tuple[int, ...]] | None:
    """``--input-shape`` values: ``1,3,224,224`` for a single-input model, or ``NAME=1,128`` per input.

    Returns:
        None (nothing given), one shape, or a shape per input name.

    Raises:
        HwprofError: for sizes that are not positive integers, or several shapes without names.
    """
    if not items:
        return None
    shapes = {}
    for text in items:
        name, _, sizes = text.rpartition("=")
        try:
            shape = tuple(int(x) for x in sizes.replace("x", ",").split(","))
        except ValueError:
            raise HwprofError(f"--input-shape '{text}' is not a list of integers",
                              "e.g. --input-shape 1,3,224,224, or --input-shape input_ids=1,128") from None
        if len(shape) < 1 or any(d < 1 for d in shape):
            raise HwprofError(f"--input-shape '{text}' needs positive sizes", "e.g. --input-shape 1,3,224,224")
        shapes[name] = shape
    if "" in shapes and len(items) > 1:
        raise HwprofError("several --input-shape values need input names", "write NAME=SIZES, e.g. input_ids=1,128")
    return shapes[""] if "" in shapes else shapes


def parse_params(pairs: Sequence[str]) -> dict:
    """``--param KEY=VALUE`` values -> a dict; values are parsed as JSON where they can be, else kept as text.

    Raises:
        HwprofError: for an item that is not KEY=VALUE.
    """
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise HwprofError(f"--param '{pair}' is not KEY=VALUE", "e.g. --param n_estimators=100")
        try:
            params[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            params[key.replace("-", "_")] = value
    return params
