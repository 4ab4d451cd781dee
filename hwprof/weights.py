"""Trained weights of hwprof's torch module written into hwprof's own ONNX form.

A network trained as :func:`hwprof.build_torch.build_torch` builds it has a
state dict whose names follow the primitive layers; :func:`apply_weights`
copies those tensors into the initializers of :func:`hwprof.build_onnx.build_onnx`
(Conv -> BatchNormalization -> activation kept as the runtime fuses them), so
the graph form hwprof measured is the form a user ships.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from hwprof.arch import Arch
from hwprof.errors import HwprofError

_IGNORED_SUFFIXES = ("num_batches_tracked",)


def tensor_map(arch: Arch) -> dict[str, str]:
    """torch state-dict name -> ONNX initializer name, for every trained tensor of ``arch``."""
    layers, _ = arch.graph
    out: dict[str, str] = {}
    for layer in layers:
        key, name = layer.name.replace(".", "_"), layer.name
        if layer.kind == "conv":
            out[f"mods.{key}.0.weight"] = f"{name}.weight"
            if layer.bias:
                out[f"mods.{key}.0.bias"] = f"{name}.bias"
            if layer.bn:
                for torch_name, onnx_name in (("weight", "scale"), ("bias", "bias"), ("running_mean", "mean"),
                                              ("running_var", "var")):
                    out[f"mods.{key}.1.{torch_name}"] = f"{name}.bn.{onnx_name}"
        elif layer.kind == "linear":
            out[f"mods.{key}.1.weight"] = f"{name}.weight"
            out[f"mods.{key}.1.bias"] = f"{name}.bias"
        elif layer.kind == "layernorm":
            out[f"mods.{key}.weight"] = f"{name}.weight"
            out[f"mods.{key}.bias"] = f"{name}.bias"
        elif layer.kind == "posembed":
            out[f"mods.{key}.weight"] = f"{name}.weight"
    return out


def transposed_in_onnx(arch: Arch) -> set[str]:
    """ONNX initializers stored transposed relative to torch: per-token linears (MatMul takes (in, out))."""
    return {f"{layer.name}.weight" for layer in arch.layers if layer.kind == "linear" and layer.tokens}


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """Tensors of a ``.safetensors`` file as numpy arrays.

    Raises:
        HwprofError: if the file is missing or not a safetensors file.
    """
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.is_file():
        raise HwprofError(f"weights file {path} does not exist", "save the trained state dict with "
                          "safetensors.torch.save_file(model.state_dict(), PATH)")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise HwprofError(f"{path} is not a valid safetensors file ({str(exc).splitlines()[0]})",
                          "save it with safetensors.torch.save_file(model.state_dict(), PATH)") from None


def apply_weights(model: onnx.ModelProto, arch: Arch, tensors: dict[str, np.ndarray],
                  source: str = "the weights") -> onnx.ModelProto:
    """``model`` (built from ``arch`` by build_onnx) with its initializers replaced by ``tensors``.

    Raises:
        HwprofError: naming the first tensor that is missing, unexpected or of the wrong shape.
    """
    mapping = tensor_map(arch)
    transposed = transposed_in_onnx(arch)
    tensors = {k: (np.asarray(v).T if mapping.get(k) in transposed else v) for k, v in tensors.items()}
    inits = {i.name: i for i in model.graph.initializer}
    for torch_name, onnx_name in mapping.items():
        if torch_name not in tensors:
            raise HwprofError(f"{source} lack tensor '{torch_name}' of network {arch.hash}",
                              "save the state dict of the torch module hwprof builds for this arch "
                              "(hwprof.build_torch.build_torch)")
        want = tuple(inits[onnx_name].dims)
        got = tuple(tensors[torch_name].shape)
        if got != want:
            raise HwprofError(f"tensor '{torch_name}' in {source} has shape {list(got)}, but network {arch.hash} "
                              f"needs {list(want)}", "export the arch the weights were trained for")
    unexpected = [k for k in tensors if k not in mapping and not k.endswith(_IGNORED_SUFFIXES)]
    if unexpected:
        raise HwprofError(f"{source} hold tensor '{unexpected[0]}' that network {arch.hash} has no place for "
                          f"({len(unexpected)} such)", "export the arch the weights were trained for")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for init in out.graph.initializer:
        torch_name = next((t for t, o in mapping.items() if o == init.name), None)
        if torch_name is None:
            continue
        dtype = onnx.helper.tensor_dtype_to_np_dtype(init.data_type)
        init.CopyFrom(numpy_helper.from_array(np.asarray(tensors[torch_name], dtype=dtype), init.name))
    return out


def export_with_weights(arch: Arch, weights: str | Path, out: str | Path, dtype: str = "float32") -> None:
    """Write ``arch`` in hwprof's graph form with the trained weights of a ``.safetensors`` file (atomically).

    Raises:
        HwprofError: for an unreadable file or tensors that do not fit the arch (the first one is named).
    """
    from hwprof.build_onnx import build_onnx, save_onnx

    model = apply_weights(build_onnx(arch, dtype=dtype), arch, read_safetensors(weights), str(weights))
    save_onnx(model, out)
