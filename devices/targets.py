"""A target, resolved once: ``devices.resolve("cpu:int8" | "kirin-npu" | "my-chip.toml", ...)``.

The token a user writes (a registered device name, ``NAME:DTYPE``, or a
simulated chip's profile TOML) becomes the one :class:`~hwprof.device.Device`
object every path takes: it owns its token and display label
(:attr:`~hwprof.device.Device.token`, :attr:`~hwprof.device.Device.label`),
its measurement defaults (:meth:`~hwprof.device.Device.min_time_s`,
:attr:`~hwprof.device.Device.reference_every_s`), its settings and how it
builds models (:meth:`~hwprof.device.Device.build`).
"""

from __future__ import annotations

import inspect

from hwprof.device import Device
from hwprof.errors import HwprofError
from hwprof.registry import DEVICES


def split_target(token: str) -> tuple[str, str | None]:
    """``"litert-cpu:int8"`` -> ``("litert-cpu", "int8")``; a name without ``:dtype`` -> ``(name, None)``."""
    if token.endswith(".toml") or ":" not in token:
        return token, None
    name, dtype = token.rsplit(":", 1)
    from hwprof.quantization import DTYPES

    if dtype not in DTYPES:
        raise HwprofError(f"unknown dtype '{dtype}' in device '{token}'",
                          f"write DEVICE or DEVICE:DTYPE with a dtype among {', '.join(DTYPES)}")
    return name, dtype


def resolve(name: str, **options) -> Device:
    """Create a device by registry name (``NAME`` or ``NAME:DTYPE``, e.g. ``litert-cpu:int8``) or profile TOML.

    Options a device does not take (e.g. ``threads`` for a simulated chip) are ignored;
    ``graph_style`` (see :mod:`hwprof.graph_styles`) is taken by every device. A
    dtype in the name wins over a ``dtype`` option left at None.
    """
    from hwprof.graph_styles import DEFAULT_STYLE, check_style

    style = check_style(options.pop("graph_style", None) or DEFAULT_STYLE)
    token = name
    name, token_dtype = split_target(name)
    if token_dtype is not None:
        if options.get("dtype") not in (None, token_dtype):
            raise HwprofError(f"device '{name}:{token_dtype}' and --dtype {options['dtype']} disagree",
                              "give the dtype once")
        options["dtype"] = token_dtype
    elif options.get("dtype") is None:
        options.pop("dtype", None)
    if name.endswith(".toml"):
        from devices.simulated import SimulatedDevice

        device = SimulatedDevice.from_file(name, seed=options.get("seed", 0))
    else:
        factory = DEVICES.factory(name)
        params = inspect.signature(factory).parameters
        if "dtype" in options and "dtype" not in params and options["dtype"] != "float32":
            raise HwprofError(f"device '{name}' has no dtype setting", "leave out the dtype (it runs its own)")
        options = {k: v for k, v in options.items() if k in params}
        device = factory(**options)
    if style != DEFAULT_STYLE:
        if getattr(device, "dtype", "float32") == "float16":
            raise HwprofError(f"graph style '{style}' is exported by torch in float32 only",
                              "use --graph-style hwprof with --dtype float16")
        device.graph_style = style
    device._token = token if token.endswith(".toml") or device.simulated else device.label
    device._options = {**options, "graph_style": style}
    return device


def device_rows() -> list[dict]:
    """Every registered device: name, kind, simulated, available here, and details (why not, if not)."""
    rows = []
    for name in DEVICES.names():
        device = resolve(name)
        available = device.is_available()
        info = device.info()
        rows.append({"name": name, "kind": device.kind, "simulated": device.simulated, "available": available,
                     "details": info if available or device.simulated
                     else {**info, "reason": device.unavailable_reason()}})
    return rows


def device_detail(row: dict) -> str:
    """One line of details of a :func:`device_rows` row: what a simulated chip imitates, a real one's host."""
    details = row["details"]
    if row["simulated"]:
        return f"{details['imitates']} [profile {details['profile_hash']}]"
    if row["available"]:
        return ", ".join(f"{k}={details[k]}" for k in ("cpu_model", "cores", "onnxruntime", "backend", "gpu_name")
                         if k in details)
    return details.get("reason", "")
