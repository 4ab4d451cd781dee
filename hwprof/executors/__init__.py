"""Where work runs: in this process (``local``) or on a Ray cluster (``ray``).

An executor measures batches of tasks where a device is, and maps a function
over items for search (candidate scoring). Executors register by name in
:data:`hwprof.registry.EXECUTORS` (entry-point group ``hwprof.executors``);
``--executor NAME`` on ``hwprof measure``, ``hwprof profile-space`` and
``nas search`` picks one.
"""

from __future__ import annotations

from hwprof.executors.base import DEVICE_RESOURCE_PREFIX, Executor, device_resource

__all__ = ["DEVICE_RESOURCE_PREFIX", "Executor", "device_resource", "executor_from_options", "get_executor"]


def get_executor(name: str = "local", **options) -> Executor:
    """Create the executor ``name`` (``local`` or ``ray``) with its options (e.g. ``address`` for ray)."""
    from hwprof.registry import EXECUTORS

    return EXECUTORS.create(name, **options)


def executor_from_options(name: str = "local", address: str | None = None) -> Executor:
    """The executor of the ``--executor`` / ``--ray-address`` options: ``local``, or a Ray cluster at ``address``.

    Raises:
        HwprofError: an address given for an executor other than ray.
    """
    from hwprof.errors import HwprofError

    if name != "ray" and address:
        raise HwprofError("--ray-address applies to --executor ray", "add --executor ray or drop --ray-address")
    return get_executor(name, **({"address": address} if name == "ray" else {}))
