"""Exporting torch modules to ONNX with torch's own exporter, as users do."""

from __future__ import annotations

import io
import warnings
from typing import Any, Sequence

import onnx

from hwprof.errors import HwprofError

EXPORTERS = ("torchscript", "dynamo")


def export_module(module: Any, input_shape: Sequence[int], exporter: str = "torchscript",
                  opset: int | None = None, seed: int = 0) -> onnx.ModelProto:
    """Export ``module`` (in eval mode) with ``torch.onnx.export``.

    Args:
        module: A ``torch.nn.Module``.
        input_shape: Static input shape, e.g. ``(1, 3, 224, 224)``.
        exporter: ``torchscript`` (torch's tracing exporter, fast; BatchNorm folded
            into the convolution) or ``dynamo`` (``dynamo=True``; needs onnxscript).
        opset: ONNX opset to export (default 17 for torchscript, 18 for dynamo, the
            lowest each writes without conversion).
        seed: Seed of the example input.

    Returns:
        The exported model, with input ``input`` and output ``output``.

    Raises:
        HwprofError: if the exporter is unknown, missing, or fails on the module.
    """
    import torch

    if exporter not in EXPORTERS:
        raise HwprofError(f"unknown torch exporter '{exporter}'", f"use one of: {', '.join(EXPORTERS)}")
    opset = opset or (18 if exporter == "dynamo" else 17)
    module = module.eval()
    example = torch.randn(*input_shape, generator=torch.Generator().manual_seed(seed))
    buf = io.BytesIO()
    # nn.TransformerEncoderLayer's fused inference fast path has no ONNX export: trace the plain ops
    mha = getattr(torch.backends, "mha", None)
    fastpath = mha.get_fastpath_enabled() if mha is not None else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if mha is not None:
            mha.set_fastpath_enabled(False)
        try:
            if exporter == "dynamo":
                program = torch.onnx.export(module, (example,), dynamo=True, opset_version=opset,
                                            input_names=["input"], output_names=["output"], verbose=False)
                return program.model_proto
            torch.onnx.export(module, example, buf, dynamo=False, opset_version=opset,
                              input_names=["input"], output_names=["output"])
        except ModuleNotFoundError as exc:
            raise HwprofError(f"torch's {exporter} exporter needs the missing module '{exc.name}'",
                              "pip install onnxscript") from None
        except Exception as exc:  # torch raises many exception types while exporting
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise HwprofError(f"torch could not export the module: {first}",
                              "check that the module runs on the given input shape") from None
        finally:
            if mha is not None:
                mha.set_fastpath_enabled(fastpath)
    return onnx.load_from_string(buf.getvalue())
