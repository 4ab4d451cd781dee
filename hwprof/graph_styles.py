"""Graph styles: the ONNX forms one architecture is shipped in.

The same network runs at different speeds depending on how its graph is
spelled, because runtimes fuse some spellings and not others (see
:mod:`hwprof.runtime_graph`). A graph style is therefore a measurement
setting, like threads and dtype: it is recorded in every row's ``settings``
(when it is not the default ``hwprof``), is part of the settings hash, and a
predictor records the styles it was fitted on.

Styles:

- ``hwprof``: hwprof's own builder (:mod:`hwprof.build_onnx`), one op per
  activation (HardSwish, HardSigmoid), GlobalAveragePool, Conv -> BatchNorm.
- ``torch``: hwprof's torch module with torch's activation modules
  (``nn.Hardswish``, ``nn.AdaptiveAvgPool2d``), exported by torch's own
  exporter (BatchNorm folded into the convolutions).
- ``torch-manual``: the same module with activations and pooling written out,
  as in the Once-for-All code base (``x * relu6(x + 3) / 6``, ``relu6(x + 3) /
  6``, SE pooling ``x.mean(3, keepdim=True).mean(2, keepdim=True)``, final
  pooling ``x.mean((2, 3), keepdim=True)``), exported by torch:
  Add/Clip/Mul/Div chains and ReduceMean.
- ``torch-timm``: the ``torch`` module with a SE block's pooling written as the
  timm library writes it (``x.mean((2, 3), keepdim=True)``), exported by
  torch: one ReduceMean over H and W where ``torch`` has GlobalAveragePool.
"""

from __future__ import annotations

from typing import Sequence

import onnx

from hwprof.arch import Arch, Block
from hwprof.errors import HwprofError

DEFAULT_STYLE = "hwprof"
GRAPH_STYLES = {
    "hwprof": "hwprof's builder: fused-op form (HardSwish, GlobalAveragePool, Conv->BN)",
    "torch": "our torch module (nn.Hardswish, AdaptiveAvgPool2d) exported by torch.onnx.export",
    "torch-manual": "our torch module with activations and pooling written out (x*relu6(x+3)/6, mean), "
                    "exported by torch.onnx.export",
    "torch-timm": "our torch module (nn.Hardswish) with SE pooling as timm writes it (x.mean((2, 3))), "
                  "exported by torch.onnx.export",
}
_SPELLING = {"torch": "module", "torch-manual": "manual", "torch-timm": "timm"}


def check_style(style: str) -> str:
    """``style`` if it is a known graph style.

    Raises:
        HwprofError: naming the known styles.
    """
    if style not in GRAPH_STYLES:
        raise HwprofError(f"unknown graph style '{style}'", f"use one of: {', '.join(GRAPH_STYLES)}")
    return style


def styles_of(settings: dict) -> str:
    """The graph style a row's settings record (``hwprof`` when absent)."""
    return str(settings.get("graph_style", DEFAULT_STYLE))


def input_shape_of(target: Arch | Block) -> tuple[int, ...]:
    """Input shape (NCHW, batch 1; (1, C) for a linear block) of a network or block."""
    if isinstance(target, Arch):
        return tuple(target.input_shape)
    if target.op == "linear":
        return (1, target.c_in)
    return (1, target.c_in, target.resolution, target.resolution)


def build_model(target: Arch | Block, style: str = DEFAULT_STYLE, dtype: str = "float32") -> onnx.ModelProto:
    """The ONNX model of a network or block in a graph style.

    Args:
        target: An :class:`Arch` or a single :class:`Block`.
        style: A key of :data:`GRAPH_STYLES`.
        dtype: ``float32`` or (``hwprof`` style only) ``float16``.

    Raises:
        HwprofError: for an unknown style, or float16 with a torch style.
    """
    check_style(style)
    if style == DEFAULT_STYLE:
        from hwprof.build_onnx import build_onnx

        return build_onnx(target, dtype=dtype)
    if dtype != "float32":
        raise HwprofError(f"graph style '{style}' is exported by torch in float32 only, not {dtype}",
                          "use --graph-style hwprof for float16")
    from hwprof.build_torch import build_torch
    from hwprof.torch_export import export_module

    model = export_module(build_torch(target, _SPELLING[style]), input_shape_of(target))
    model.graph.name = f"{style}_{target.hash if isinstance(target, Arch) else target.key()}"
    onnx.helper.set_model_props(model, {"hwprof.graph_style": style})
    return model


def style_names() -> Sequence[str]:
    """The graph styles, default first."""
    return tuple(GRAPH_STYLES)
