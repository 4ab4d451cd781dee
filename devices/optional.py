"""Shared parts of the adapters for optional runtimes (installed as extras): availability, threads, dtype."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from devices.base import Device
from hwprof.errors import HwprofError
from hwprof.quantization import check_dtype


def package_version(distribution: str) -> str | None:
    """The installed version of a PyPI distribution, or None."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


class OptionalRuntimeDevice(Device):
    """A real CPU device whose runtime is an optional extra of hwprof.

    Subclasses set ``distribution`` (the PyPI package), ``runtime`` (its name
    for messages), ``extra`` (hwprof's extra that installs it) and ``dtypes``.

    Args:
        threads: Runtime threads (default 1: stable, comparable numbers).
        dtype: One of the subclass's ``dtypes``.
    """

    kind = "cpu"
    simulated = False
    distribution = ""
    runtime = ""
    extra = ""
    dtypes: tuple[str, ...] = ("float32",)

    def __init__(self, threads: int = 1, dtype: str = "float32", seed: int = 0) -> None:
        check_dtype(dtype, self.dtypes, self.name)
        if threads < 1:
            raise HwprofError(f"threads must be at least 1, got {threads}")
        self.threads = threads
        self.dtype = dtype

    @property
    def install(self) -> str:
        return f"pip install 'hwprof[{self.extra}]' (from a checkout: pip install -e '.[{self.extra}]')"

    def runtime_version(self) -> str | None:
        return package_version(self.distribution)

    def is_available(self) -> bool:
        return self.runtime_version() is not None

    def unavailable_reason(self) -> str:
        return f"{self.runtime} is not installed: {self.install}"

    def require_available(self) -> None:
        if not self.is_available():
            raise HwprofError(f"device '{self.name}' needs {self.runtime}, which is not installed", self.install)
