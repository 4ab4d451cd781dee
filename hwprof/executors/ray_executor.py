"""Ray executor: measurement batches run on the cluster nodes that host the device.

Each node advertises the devices it hosts as Ray custom resources
(``hwprof-device:kirin-npu``; see ``hwprof worker``). A measurement batch asks
for one unit of its device's resource, so it runs only on a node that has the
device, and a node that hosts one physical device (one unit) runs one batch at
a time: measurements do not disturb each other. Simulated devices are pure
computation and a node may offer several units of them.

Batches stream back to the driver as they finish and the driver alone writes
the dataset. Ray retries a batch whose worker process or node died
(``max_retries``); a batch that still fails, or that no live node can run any
more, is reported and left for a rerun, which resumes as the local path does.

Ray is an optional extra: ``pip install 'hwprof[ray]'``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable, Iterator, Sequence

from hwprof.errors import HwprofError
from hwprof.executors.base import DEVICE_RESOURCE_PREFIX, Executor, batched, device_resource
from hwprof.registry import EXECUTORS


def require_ray():
    """Import Ray or fail clearly, naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise HwprofError("--executor ray needs Ray, which is not installed",
                          "install the extra: pip install 'hwprof[ray]' (from a checkout: pip install -e '.[ray]')") from None
    return ray


def local_device_resources(slots: int | None = None) -> dict[str, float]:
    """Device resources a Ray node on this machine offers: every available device.

    Real devices get one unit (one measurement at a time); simulated ones
    ``slots`` units (default: the CPU count), since they only compute.
    """
    from devices import resolve
    from hwprof.registry import DEVICES

    out = {}
    for name in DEVICES.names():
        try:
            dev = resolve(name)
            if dev.is_available():
                out[device_resource(name)] = float(slots or os.cpu_count() or 1) if dev.simulated else 1.0
        except Exception:  # noqa: BLE001 - a device that cannot even be created is not offered
            continue
    return out


class NoWorkerForDevice(RuntimeError):
    """No live node of the cluster hosts the device any more."""


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """Runs measurement batches and mapped functions on a Ray cluster.

    Args:
        address: Cluster address (``HOST:PORT`` of ``ray start --head``);
            None starts a Ray instance on this machine offering every
            available device (see :func:`local_device_resources`).
        max_retries: Times Ray reruns a batch whose worker died.
        no_worker_timeout_s: How long batches may wait while no live node
            offers their device before they are reported as not measured
            (default: ``HWPROF_RAY_NO_WORKER_TIMEOUT_S`` or 30).
        slots: Units of each simulated device a local instance offers.
    """

    name = "ray"
    default_batch = 16

    def __init__(self, address: str | None = None, max_retries: int = 2, no_worker_timeout_s: float | None = None,
                 slots: int | None = None) -> None:
        self.ray = require_ray()
        self.address = address
        self.max_retries = int(max_retries)
        if no_worker_timeout_s is None:
            no_worker_timeout_s = float(os.environ.get("HWPROF_RAY_NO_WORKER_TIMEOUT_S", 30.0))
        self.no_worker_timeout_s = float(no_worker_timeout_s)
        self._started = False
        if address and not self.ray.is_initialized():
            _check_reachable(address)
        # Ray prints cluster events (a node died, ...) to stdout; they are diagnostics, and stdout is kept for
        # results (--json), so they go to stderr while the executor is open
        self._stdout = sys.stdout
        sys.stdout = sys.stderr
        if not self.ray.is_initialized():
            kwargs: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False, "configure_logging": True}
            try:
                if address:
                    self.ray.init(address=address, **kwargs)
                else:
                    self.ray.init(resources=local_device_resources(slots), include_dashboard=False, **kwargs)
                self._started = True
            except (ConnectionError, RuntimeError, ValueError) as exc:
                sys.stdout = self._stdout
                raise HwprofError(f"cannot connect to the Ray cluster at {address or 'this machine'}: {exc}",
                                  "start it with `ray start --head` and pass --ray-address HOST:PORT") from None

    def describe(self) -> dict[str, Any]:
        resources = self.ray.cluster_resources()
        devices = {k[len(DEVICE_RESOURCE_PREFIX):]: v for k, v in resources.items()
                   if k.startswith(DEVICE_RESOURCE_PREFIX)}
        return {"executor": self.name, "address": self.address or "local instance",
                "nodes": len([n for n in self.ray.nodes() if n.get("Alive")]), "device_slots": devices}

    def _offered(self, resource: str) -> float:
        return float(self.ray.cluster_resources().get(resource, 0.0))

    def measure(self, device_name: str, device_options: dict, tasks: list, protocol,
                reference_every_s: float | None, per_op_runs: int,
                batch_size: int | None = None, prepare_workers: int | None = 0) -> Iterator[tuple[list, Any]]:
        if not tasks:
            return
        ray = self.ray
        resource = device_resource(device_name)
        if self._offered(resource) <= 0:
            raise HwprofError(f"no node of the Ray cluster hosts device '{device_name}'",
                              f"start one there: hwprof worker --devices {device_name} --address "
                              f"{self.address or 'HOST:PORT'}")
        remote = ray.remote(_measure_on_node).options(resources={resource: 1}, num_cpus=0,
                                                   max_retries=self.max_retries, retry_exceptions=False)
        pending = {remote.remote(device_name, device_options, batch, protocol, reference_every_s, per_op_runs,
                                 prepare_workers): batch
                   for batch in batched(tasks, batch_size or self.default_batch)}
        unhosted_since = None
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                batch = pending.pop(ref)
                try:
                    yield batch, ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a batch's failure is reported, the rest go on
                    yield batch, _short(exc)
            if done:
                unhosted_since = None
                continue
            if self._offered(resource) > 0:
                unhosted_since = None
            elif unhosted_since is None:
                unhosted_since = time.monotonic()
            elif time.monotonic() - unhosted_since > self.no_worker_timeout_s:
                for ref, batch in list(pending.items()):
                    ray.cancel(ref, force=True)
                    yield batch, NoWorkerForDevice(f"no live worker hosts '{device_name}' any more")
                pending.clear()

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        remote = self.ray.remote(_apply).options(num_cpus=1, max_retries=self.max_retries)
        shared = self.ray.put(fn)  # sent once, not with every item
        try:
            return self.ray.get([remote.remote(shared, item) for item in items])
        except self.ray.exceptions.RayError as exc:
            raise HwprofError(f"a task on the Ray cluster failed: {_short(exc)}",
                              "check the workers (`ray status`), or use --executor local") from None

    def close(self) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()  # this process started or joined the cluster: leave it
            self._started = False
        sys.stdout = self._stdout


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, with one line, when nothing listens at a cluster address (Ray itself retries for minutes)."""
    import socket

    host, _, port = address.rpartition(":")
    fix = "start the head with `ray start --head --port PORT` and pass --ray-address HOST:PORT"
    if not host or not port.isdigit():
        raise HwprofError(f"--ray-address '{address}' is not HOST:PORT", fix)
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise HwprofError(f"no Ray cluster answers at {address} ({exc.strerror or exc})", fix) from None


def _apply(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


def _measure_on_node(*args) -> tuple[list, Any]:
    """:func:`hwprof.profiling.measure_batch` on a Ray node; each row's ``host`` names the node."""
    import ray

    from hwprof.profiling import measure_batch

    rows, stats = measure_batch(*args)
    node = ray.get_runtime_context().get_node_id()
    for row in rows:
        row["host"] = json.dumps({**json.loads(row["host"]), "ray_node_id": node}, sort_keys=True)
    return rows, stats


def _short(exc: BaseException) -> BaseException:
    """A one-line exception for reports (Ray's task errors carry the remote traceback)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return cause
    text = str(exc).strip().splitlines()
    return RuntimeError(f"{type(exc).__name__}: {text[-1] if text else ''}")


def worker_command(device_names: str, address: str, slots: int | None = None,
                   num_cpus: int | None = None) -> tuple[list[str], list[str]]:
    """The ``ray start`` command that joins this host to a cluster as a measurement host (``hwprof worker``).

    Each device is advertised as the custom resource ``hwprof-device:NAME``: one
    unit for a real device (one measurement at a time), ``slots`` (default the
    CPU count) for a simulated one.

    Returns:
        The command, and one line per hosted device saying its slots.

    Raises:
        HwprofError: without Ray, for an empty device list, bad slots, or a device not available here.
    """
    import shutil
    from pathlib import Path

    from devices import resolve

    require_ray()
    names = [d.strip() for d in device_names.split(",") if d.strip()]
    if not names:
        raise HwprofError("--devices is empty", "e.g. --devices cpu,kirin-npu")
    if slots is not None and slots < 1:
        raise HwprofError(f"--slots must be at least 1, got {slots}")
    resources, lines = {}, []
    for name in names:
        dev = resolve(name)
        dev.require_available()
        resources[device_resource(dev.name)] = float(slots or os.cpu_count() or 1) if dev.simulated else 1.0
        lines.append(f"hosting {dev.label}: {resources[device_resource(dev.name)]:g} slot(s)")
    ray_cli = Path(sys.executable).parent / "ray"
    command = [str(ray_cli) if ray_cli.exists() else (shutil.which("ray") or "ray"), "start", "--address", address,
               "--resources", json.dumps(resources), "--block"]
    if num_cpus is not None:
        command += ["--num-cpus", str(num_cpus)]
    return command, lines
