"""Simulated NPU/DSP/VPU/CPU devices driven by TOML profiles.

Latency comes from the analytic graph walk in :mod:`devices.graph_cost`; each
run adds seeded log-normal noise, rare outliers and slower warm-up runs. The
noise stream depends only on (seed, model), so any measurement can be
reproduced alone, in any order — which is what makes resumed runs identical.
"""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from devices.base import Device, NodeTime, Session
from devices.graph_cost import GraphCostModel, OpCost
from devices.profile import Profile, builtin_profiles
from hwprof.registry import DEVICES


def model_key(model: onnx.ModelProto) -> str:
    """Identity of a model for seeding: the hwprof hash if present, else a content hash."""
    props = {p.key: p.value for p in model.metadata_props}
    key = props.get("hwprof.arch_hash") or props.get("hwprof.block_key")
    if key:
        return key
    return hashlib.sha256(model.SerializeToString()).hexdigest()[:16]


class SimulatedSession(Session):
    """Draws noisy per-run latencies around the model's analytic latency."""

    def __init__(self, base_s: float, profile: Profile, rng: np.random.Generator,
                 breakdown: list[OpCost]) -> None:
        self.base_s = base_s
        self.profile = profile
        self.rng = rng
        self.breakdown = breakdown
        self.runs = 0

    def run(self, n: int) -> np.ndarray:
        p = self.profile
        noise = np.exp(self.rng.normal(0.0, p.noise_sigma, n))
        outliers = self.rng.random(n) < p.outlier_prob
        factor = np.where(outliers, self.rng.uniform(*p.outlier_factor, n), 1.0)
        index = np.arange(self.runs, self.runs + n)
        warm = 1.0 + p.warmup_factor * np.clip(1.0 - index / max(p.warmup_runs, 1), 0.0, None)
        self.runs += n
        return self.base_s * noise * factor * warm


class SimulatedDevice(Device):
    """A simulated chip. Every output labels it simulated.

    Args:
        profile: The chip's :class:`Profile`.
        seed: Seed of the measurement noise.
    """

    simulated = True

    def __init__(self, profile: Profile, seed: int = 0) -> None:
        self.profile = profile
        self.seed = seed
        self.name = profile.name
        self.kind = profile.kind
        self.cost_model = GraphCostModel(profile)

    @classmethod
    def from_file(cls, path: str | Path, seed: int = 0) -> SimulatedDevice:
        """A device from a user's profile TOML file."""
        return cls(Profile.load(path), seed)

    def is_available(self) -> bool:
        return True

    def info(self) -> dict[str, Any]:
        p = self.profile
        return {"simulated": True, "imitates": p.imitates, "dtype": p.dtype, "lane": p.lane,
                "profile_hash": p.hash, "sources": list(p.sources)}

    def settings(self) -> dict[str, Any]:
        return {"dtype": self.profile.dtype, "seed": self.seed}

    def profile_hash(self) -> str:
        return self.profile.hash

    def latency(self, model: onnx.ModelProto) -> tuple[float, list[OpCost]]:
        """Noise-free latency (seconds) and per-op breakdown."""
        return self.cost_model.latency(model)

    def op_times(self, model: onnx.ModelProto, runs: int = 20) -> list[NodeTime]:
        """The simulator's own per-node costs (noise-free; fused nodes cost nothing of their own)."""
        _, breakdown = self.latency(model)
        return [NodeTime(c.node, c.op_type + (" (CPU fallback)" if c.fallback else ""), c.time_s * 1e3)
                for c in breakdown]

    def load(self, model: onnx.ModelProto) -> SimulatedSession:
        base, breakdown = self.latency(model)
        digest = hashlib.sha256(f"{self.seed}:{self.name}:{model_key(model)}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        return SimulatedSession(base, self.profile, rng, breakdown)


def _register_builtin_profiles() -> None:
    for name, path in builtin_profiles().items():
        DEVICES.register(name)(partial(SimulatedDevice.from_file, path))


_register_builtin_profiles()
