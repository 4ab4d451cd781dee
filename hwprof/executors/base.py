"""The executor interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Iterator, Sequence

DEVICE_RESOURCE_PREFIX = "hwprof-device:"


def device_resource(device_name: str) -> str:
    """The Ray custom resource a node advertises for a device it hosts, e.g. ``hwprof-device:kirin-npu``."""
    return DEVICE_RESOURCE_PREFIX + device_name


def batched(items: Sequence[Any], size: int) -> list[list[Any]]:
    """``items`` in consecutive batches of ``size`` (the last may be shorter)."""
    size = max(1, int(size))
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


class Executor(ABC):
    """Runs measurement batches and mapped functions somewhere.

    Attributes:
        name: Registry name.
        default_batch: Tasks per measurement batch when the caller does not say.
    """

    name: str = ""
    default_batch: int = 1

    @abstractmethod
    def measure(self, device_name: str, device_options: dict, tasks: list, protocol,
                reference_every_s: float | None, per_op_runs: int,
                batch_size: int | None = None, prepare_workers: int | None = 0) -> Iterator[tuple[list, Any]]:
        """Measure ``tasks`` on the device, in batches, where the device is.

        ``prepare_workers``: processes that prepare upcoming models off the timed core where the device is
        (:mod:`hwprof.prepare`; None: the default for that machine's cores).

        Yields:
            ``(batch, outcome)`` as batches finish, in any order: ``outcome`` is
            ``(rows, TaskStats)`` or the exception that ended the batch.
        """

    @abstractmethod
    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``[fn(item) for item in items]``, in order, computed wherever the executor runs work."""

    def describe(self) -> dict[str, Any]:
        """What the executor runs on, for outputs."""
        return {"executor": self.name}

    def close(self) -> None:
        """Release what the executor holds (connections, local clusters it started)."""
