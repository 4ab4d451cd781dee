"""The Python API for notebooks and scripts: measure, load a predictor, predict.

    import hwprof
    row = hwprof.measure("model.onnx", device="cpu")          # dict of statistics
    pred = hwprof.load_predictor("npu.pred")
    pred.predict([arch])                                       # milliseconds
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping, Sequence

import onnx

from hwprof.arch import Arch
from hwprof.errors import HwprofError


def to_onnx(model: Any, input_shape: Sequence[int] | None = None) -> onnx.ModelProto:
    """An ONNX model from an :class:`Arch` (or its ``.json`` path), an ONNX model or path, or a torch module.

    Args:
        model: What to convert.
        input_shape: Input shape (NCHW); needed for torch modules and ONNX models
            with dynamic dimensions.

    Raises:
        HwprofError: for unreadable files or a torch module without ``input_shape``.
    """
    if isinstance(model, Arch):
        from hwprof.build_onnx import build_onnx

        return build_onnx(model)
    if isinstance(model, onnx.ModelProto):
        proto = model
    elif isinstance(model, (str, Path)) and str(model).endswith(".json"):
        from hwprof.io import read_archs

        return to_onnx(read_archs(model)[0], input_shape)
    elif isinstance(model, (str, Path)):
        proto = load_onnx_file(model)
    else:
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency
            torch = None
        if torch is None or not isinstance(model, torch.nn.Module):
            raise HwprofError(f"cannot measure a {type(model).__name__}",
                              "give an Arch, an ONNX model or path, or a torch.nn.Module")
        if input_shape is None:
            raise HwprofError("a torch module needs input_shape, e.g. (1, 3, 224, 224)")
        buf = io.BytesIO()
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model.eval(), torch.randn(*input_shape), buf, dynamo=False, opset_version=17,
                              input_names=["input"], output_names=["output"])
        proto = onnx.load_from_string(buf.getvalue())
    return with_static_input(proto, input_shape) if input_shape is not None else proto


def to_model(model: Any, input_shape: Sequence[int] | None = None, device=None):
    """What ``device`` loads for ``model``: a ``.tflite`` path as a LiteRT model, anything else as :func:`to_onnx`.

    Raises:
        HwprofError: for a ``.tflite`` file and a device that runs only ONNX.
    """
    if isinstance(model, (str, Path)) and str(model).endswith(".tflite"):
        from hwprof.build_tflite import TfliteModel

        if device is not None and "tflite" not in getattr(device, "model_formats", ("onnx",)):
            raise HwprofError(f"device '{device.name}' runs ONNX models, not .tflite files",
                              "measure .tflite files with --device litert-cpu")
        if not Path(model).is_file():
            raise HwprofError(f"model file {model} does not exist")
        return TfliteModel.from_file(model)
    return to_onnx(model, input_shape)


def load_onnx_file(path: str | Path) -> onnx.ModelProto:
    """Read and check an ONNX file.

    Raises:
        HwprofError: if missing, truncated or not a valid ONNX model.
    """
    path = Path(path)
    if not path.is_file():
        raise HwprofError(f"model file {path} does not exist")
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:  # onnx raises DecodeError, ValidationError and others
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HwprofError(f"{path} is not a valid ONNX model: {first}",
                          "re-export it (opset >= 13) or check it with onnx.checker") from None
    return proto


def with_static_input(model: onnx.ModelProto, shape: Sequence[int] | Mapping[str, Sequence[int]]) -> onnx.ModelProto:
    """A copy of ``model`` with input shapes fixed: ``shape`` for a single-input model, or name -> shape.

    Raises:
        HwprofError: for an unknown input name, a rank mismatch, a size the model fixes
            otherwise, or one shape for a model with several inputs.
    """
    inits = {i.name for i in model.graph.initializer}
    inputs = {i.name: i for i in model.graph.input if i.name not in inits}
    if not isinstance(shape, Mapping):
        if len(inputs) != 1:
            raise HwprofError(f"the model has {len(inputs)} inputs ({', '.join(inputs)}); give one shape per input",
                              f"e.g. --input-shape {next(iter(inputs), 'name')}=1,128 (repeatable)")
        shape = {next(iter(inputs)): shape}
    unknown = sorted(set(shape) - set(inputs))
    if unknown:
        raise HwprofError(f"the model has no input '{unknown[0]}'", f"its inputs are: {', '.join(inputs)}")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for name, sizes in shape.items():
        dims = inputs[name].type.tensor_type.shape.dim
        if len(dims) != len(sizes):
            raise HwprofError(f"input '{name}' has {len(dims)} dimensions but --input-shape gives {len(sizes)}")
        target = next(i for i in out.graph.input if i.name == name).type.tensor_type.shape.dim
        for d, size in zip(target, sizes):
            if d.HasField("dim_value") and d.dim_value not in (0, size):
                raise HwprofError(f"input '{name}' is fixed at {[x.dim_value for x in dims]}, not {list(sizes)}",
                                  "leave out --input-shape or match the model")
            d.Clear()
            d.dim_value = int(size)
    return out


def measure(model: Any, device: str = "cpu", input_shape: Sequence[int] | None = None, seed: int = 0,
            min_time_s: float | None = None, per_op: bool = False, **device_options: Any) -> dict[str, Any]:
    """Measure one model's latency with hwprof's protocol.

    On real devices the reference network (:mod:`hwprof.drift`) is timed just
    before and after, and its mean is returned as ``ref_ms``: a predictor's
    ``provenance_["reference_ms"]`` over it converts ``median_ms`` to the
    predictor's nominal machine speed.

    Args:
        model: An Arch, ONNX model or path, a ``.tflite`` path (``litert-cpu``), or a torch
            module (exported to ONNX on the way).
        device: Device name (see ``hwprof devices``) or a profile ``.toml``.
        input_shape: Input shape for torch modules and dynamic ONNX inputs.
        seed: Seed of simulated noise.
        min_time_s: Inference time to record at least (default 0.25 s real, 0 simulated).
        per_op: Also break the latency down per layer (``layers``: fused kernels with their ms).
        **device_options: e.g. ``threads=4``.

    Returns:
        A dict: device, simulated, median/mean/std/p10/p90/IQR in ms, n, rejected, samples,
        ref_ms (None on simulated devices), on real devices how disturbed the measurement was
        (quiet, chunks, chunks_quiet, slowdown, foreign_load, verdict: the chunked protocol of
        :mod:`hwprof.interleave`) and, with ``per_op``, layers.
    """
    from devices import resolve
    from hwprof.interleave import measure_one

    dev = resolve(device, seed=seed, **device_options)
    dev.require_available()
    proto = to_model(model, input_shape, dev)
    one = measure_one(dev, proto, min_time_s, seed)
    m, ref_ms = one.measurement, one.ref_ms
    noise = {**one.noise.columns(), "verdict": one.verdict.line()} if one.noise else {}
    row = {"device": dev.name, "simulated": dev.simulated, "median_ms": m.median_ms, "mean_ms": m.mean_ms,
           "std_ms": m.std_ms, "p10_ms": m.p10_ms, "p90_ms": m.p90_ms, "iqr_ms": m.iqr_ms, "n": m.n,
           "n_rejected": m.n_rejected, "samples_ms": m.samples_ms.tolist(), "ref_ms": ref_ms, **noise}
    if per_op:
        from hwprof.per_op import breakdown

        row["layers"] = breakdown(dev, proto)["kernels"]
    return row


def load_predictor(path: str | Path):
    """Load a predictor file written by ``hwprof fit-predictor`` (no pickle involved)."""
    from hwprof.predictors import store

    return store.load(path)


def predict_files(predictor_path: str | Path, models: Sequence[str | Path] = (), arch: str | Path | None = None,
                  archs: str | Path | None = None, input_shape=None, graph_style: str | None = None) -> dict:
    """What ``hwprof predict`` prints: a predictor's latency for ONNX files or architecture files.

    Give exactly one of ``models`` (ONNX files; kernel-rf and flops-linear
    predictors), ``arch`` (one architecture JSON) or ``archs`` (JSON Lines).

    Returns:
        ``{"predictor", "device", "simulated", "graph_style", "predictions": [{"name", "predicted_ms", ...}]}``;
        a kernel-rf prediction of an ONNX model carries ``extrapolates``: where the model lies outside
        what the predictor was trained on, in words (empty when inside).

    Raises:
        HwprofError: for not exactly one input, or networks outside a space-bound predictor's space.
    """
    from hwprof.io import read_archs

    given = [x for x in (models, arch, archs) if x]
    if len(given) != 1:
        raise HwprofError("give exactly one of --model, --arch or --archs")
    predictor = load_predictor(predictor_path)
    if graph_style is not None:
        from hwprof.graph_styles import check_style

        predictor.use_style(check_style(graph_style))
    prov = predictor.provenance_
    rows = []
    if models:
        protos = [to_onnx(m, input_shape) for m in models]
        if hasattr(predictor, "predict_onnx_with_coverage"):  # kernel-rf: also where a model lies outside its data
            predicted, notes = predictor.predict_onnx_with_coverage(protos)
        else:
            predicted, notes = predictor.predict_onnx(protos), None
        rows = [{"name": str(m), "predicted_ms": float(ms), **({"extrapolates": notes[i]} if notes else {})}
                for i, (m, ms) in enumerate(zip(models, predicted))]
    else:
        networks = read_archs(arch or archs)
        space = prov.get("space")
        if predictor.name in ("lut", "additive", "gbm") and space:
            outside = [a for a in networks if a.space != space]
            if outside:
                raise HwprofError(f"network {outside[0].hash} is from space '{outside[0].space or 'none'}', outside "
                                  f"the {predictor.name} predictor's space '{space}'",
                                  "use a kernel-rf or flops-linear predictor for networks outside its space")
        rows = [{"name": a.hash, "predicted_ms": float(ms), "macs": a.macs, "params": a.params}
                for a, ms in zip(networks, predictor.predict(networks))]
    return {"predictor": predictor.name, "device": prov.get("device", "?"),
            "simulated": bool(prov.get("simulated", False)),
            "graph_style": None if models else predictor.graph_style, "predictions": rows}


def versions() -> dict[str, str]:
    """Versions of hwprof and of the libraries it measures with (``hwprof version``)."""
    import sys

    import onnxruntime
    import torch

    import hwprof

    return {"hwprof": hwprof.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "torch": torch.__version__, "python": sys.version.split()[0]}
