"""Device adapters (CPU, GPU, simulated NPU/DSP/VPU) and their profiles.

:func:`resolve` turns a target token (``cpu``, ``cpu:int8``, ``kirin-npu``,
``my-chip.toml``) into its :class:`~hwprof.device.Device`.
"""


def resolve(name: str, **options):
    """The device of a target token; see :func:`devices.targets.resolve`."""
    from devices.targets import resolve as _resolve

    return _resolve(name, **options)
