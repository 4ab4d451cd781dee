"""The default executor: everything runs in this process, one task after another."""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

from hwprof.executors.base import Executor, batched
from hwprof.registry import EXECUTORS


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """Runs work in-process (no cluster)."""

    name = "local"
    default_batch = 1_000_000  # one batch: nothing to amortise

    def measure(self, device_name: str, device_options: dict, tasks: list, protocol,
                reference_every_s: float | None, per_op_runs: int,
                batch_size: int | None = None, prepare_workers: int | None = 0) -> Iterator[tuple[list, Any]]:
        from hwprof.profiling import measure_batch

        for batch in batched(tasks, batch_size or self.default_batch):
            try:
                yield batch, measure_batch(device_name, device_options, batch, protocol, reference_every_s,
                                           per_op_runs, prepare_workers)
            except Exception as exc:  # noqa: BLE001 - reported per batch, as the ray executor does
                yield batch, exc

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return [fn(item) for item in items]
