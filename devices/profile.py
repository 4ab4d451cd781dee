"""Simulated-chip profiles: TOML data files that give each chip its character."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwprof.errors import HwprofError

PROFILE_DIR = Path(__file__).parent / "profiles"
_BYTES = {"int8": 1, "fp16": 2, "fp32": 4}
_CLASSES = ("conv", "pwconv", "dwconv", "gconv", "fc", "pool", "elementwise", "move")


@dataclass(frozen=True)
class Profile:
    """Parameters of a simulated chip (see ``devices/profiles/*.toml`` for meanings)."""

    name: str
    kind: str
    dtype: str
    imitates: str
    sources: tuple[str, ...]
    lane: int
    peaks: dict[str, float]
    kernel_eff: dict[str, dict[int, float]]
    sram_mb: float
    sram_gbps: float
    dram_gbps: float
    host_link_gbps: float
    host_cpu_gops: float
    fallback_sync_us: float
    dispatch_us: float
    fixed_overhead_us: float
    unsupported_ops: frozenset[str]
    noise_sigma: float
    outlier_prob: float
    outlier_factor: tuple[float, float]
    warmup_runs: int
    warmup_factor: float
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def bytes_per_element(self) -> int:
        return _BYTES[self.dtype]

    @property
    def sram_bytes(self) -> float:
        return self.sram_mb * 1024 * 1024

    def peak_gmacs(self, op_class: str) -> float:
        """Effective peak in G(MAC or op)/s for an op class."""
        return self.peaks[op_class]

    def kernel_efficiency(self, op_class: str, kernel: int) -> float:
        """Efficiency factor for a kernel size (1.0 when not listed)."""
        return self.kernel_eff.get(op_class, {}).get(kernel, 1.0)

    @property
    def hash(self) -> str:
        """Hash of the profile's content: measurements record it."""
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True).encode()).hexdigest()[:12]

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        """Read and validate a profile TOML file.

        Raises:
            HwprofError: naming the file and the missing or invalid key.
        """
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise HwprofError(f"device profile not found: {path}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise HwprofError(f"device profile {path} is not valid TOML: {exc}") from None
        try:
            chip, mem, cost, noise = raw["chip"], raw["memory"], raw["overhead"], raw["noise"]
            peaks = {c: float(raw["peak_gops"][c]) for c in _CLASSES}
            # activation x activation products (attention); profiles written before it had none
            peaks["matmul"] = float(raw["peak_gops"].get("matmul", peaks["conv"] / 3))
            kernel_eff = {cls_: {int(k.lstrip("k")): float(v) for k, v in table.items()}
                          for cls_, table in raw.get("kernel_efficiency", {}).items()}
            profile = cls(
                name=chip["name"], kind=chip["kind"], dtype=chip["dtype"], imitates=chip["imitates"],
                sources=tuple(chip.get("sources", ())), lane=int(chip["lane"]), peaks=peaks,
                kernel_eff=kernel_eff, sram_mb=float(mem["sram_mb"]), sram_gbps=float(mem["sram_gbps"]),
                dram_gbps=float(mem["dram_gbps"]), host_link_gbps=float(mem["host_link_gbps"]),
                host_cpu_gops=float(cost["host_cpu_gops"]), fallback_sync_us=float(cost["fallback_sync_us"]),
                dispatch_us=float(cost["dispatch_us"]), fixed_overhead_us=float(cost["fixed_us"]),
                unsupported_ops=frozenset(raw.get("unsupported", {}).get("ops", ())),
                noise_sigma=float(noise["sigma"]), outlier_prob=float(noise["outlier_prob"]),
                outlier_factor=tuple(noise["outlier_factor"]), warmup_runs=int(noise["warmup_runs"]),
                warmup_factor=float(noise["warmup_factor"]), raw=raw)
        except KeyError as exc:
            raise HwprofError(f"device profile {path} is missing key {exc}") from None
        except (TypeError, ValueError) as exc:
            raise HwprofError(f"device profile {path} has an invalid value: {exc}") from None
        if profile.dtype not in _BYTES:
            raise HwprofError(f"device profile {path}: dtype must be one of {', '.join(_BYTES)}")
        if profile.kind not in ("cpu", "gpu", "npu", "dsp", "vpu"):
            raise HwprofError(f"device profile {path}: kind must be cpu, gpu, npu, dsp or vpu")
        return profile


def builtin_profiles() -> dict[str, Path]:
    """Name -> path of the profiles shipped with hwprof."""
    return {p.stem: p for p in sorted(PROFILE_DIR.glob("*.toml"))}
