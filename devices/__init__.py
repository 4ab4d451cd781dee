"""Device adapters (CPU, GPU, simulated NPU/DSP/VPU) and their profiles.

:func:`resolve` turns a target token (``cpu``, ``cpu:int8``, ``kirin-npu``,
``my-chip.toml``) into its :class:`~hwprof.device.Device`
(:mod:`devices.targets`).
"""

from devices.targets import resolve

__all__ = ["resolve"]
