"""Training and test data for predictors, read from a measurement dataset."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hwprof.arch import Arch, Block
from hwprof.dataset import Dataset
from hwprof.errors import HwprofError

_COLUMNS = ["arch_hash", "space", "block_key", "arch_json", "block_json", "device", "device_kind",
            "simulated", "profile_hash", "settings", "settings_hash", "median_ms"]


@dataclass
class MeasurementData:
    """End-to-end and single-block latencies of one device (one settings), one space.

    Attributes:
        device: Device name.
        device_kind: cpu | gpu | npu | dsp | vpu.
        simulated: Whether the device is simulated.
        profile_hash: Hash of the device profile (simulated) or host (real).
        settings: Device settings as JSON.
        space: Search space of the networks.
        archs: Measured networks.
        latency_ms: Their median end-to-end latencies.
        blocks: Measured single blocks -> median latency.
        source: Where the data came from.
    """

    device: str
    device_kind: str
    simulated: bool
    profile_hash: str
    settings: str
    space: str
    archs: list[Arch]
    latency_ms: np.ndarray
    blocks: dict[Block, float]
    source: str = ""

    @property
    def label(self) -> str:
        """Device name for display, marked when simulated."""
        return f"{self.device} (simulated)" if self.simulated else self.device

    def fingerprint(self) -> str:
        """Hash of the rows (network and block latencies) used for training."""
        h = hashlib.sha256()
        for arch, ms in sorted(zip((a.hash for a in self.archs), self.latency_ms.tolist())):
            h.update(f"{arch}:{ms!r};".encode())
        for key, ms in sorted((b.key(), v) for b, v in self.blocks.items()):
            h.update(f"{key}:{ms!r};".encode())
        return h.hexdigest()[:16]

    def provenance(self) -> dict:
        """What a predictor fitted on this data records about it."""
        return {"device": self.device, "device_kind": self.device_kind, "simulated": self.simulated,
                "profile_hash": self.profile_hash, "settings": self.settings, "space": self.space,
                "train_hash": self.fingerprint(), "n_networks": len(self.archs), "n_blocks": len(self.blocks)}

    def subset(self, index: np.ndarray) -> MeasurementData:
        """The networks at ``index``, with only the blocks those networks contain."""
        archs = [self.archs[i] for i in index]
        used = {b for a in archs for b in a.blocks}
        return replace(self, archs=archs, latency_ms=self.latency_ms[index],
                       blocks={b: v for b, v in self.blocks.items() if b in used})

    def split(self, test_fraction: float, seed: int = 0) -> tuple[MeasurementData, MeasurementData]:
        """Hold out a random ``test_fraction`` of the networks (blocks follow their networks)."""
        if not 0 < test_fraction < 1:
            raise HwprofError(f"--test-fraction must be between 0 and 1, got {test_fraction}")
        n_test = int(round(len(self.archs) * test_fraction))
        if n_test < 1 or n_test >= len(self.archs):
            raise HwprofError(f"cannot hold out {test_fraction:.0%} of {len(self.archs)} networks",
                              "measure more networks or change --test-fraction")
        order = np.random.default_rng(seed).permutation(len(self.archs))
        return self.subset(np.sort(order[n_test:])), self.subset(np.sort(order[:n_test]))


def load_measurements(path: str | Path, device: str | None = None, space: str | None = None) -> MeasurementData:
    """Read one device's measurements from a dataset directory.

    Args:
        path: Dataset directory written by ``hwprof measure``.
        device: Device to select when the dataset holds several.
        space: Space to select when the dataset holds several.

    Raises:
        HwprofError: if the path is missing, corrupt, empty, or ambiguous.
    """
    path = Path(path)
    if not path.exists():
        raise HwprofError(f"dataset {path} does not exist", "run `hwprof measure --out PATH` first")
    df = Dataset(path).read(columns=_COLUMNS)
    if df.empty:
        raise HwprofError(f"dataset {path} holds no measurements", "run `hwprof measure --out PATH` first")
    df = _select(df, "device", device, "--device", path)
    e2e = df[df.block_key == "e2e"]
    if space != "onnx":  # user ONNX models are measured, but predictors learn from networks of a space
        e2e = e2e[e2e.space != "onnx"]
        if e2e.empty and (df.space == "onnx").any():
            raise HwprofError(f"dataset {path} holds only ONNX models measured with --model",
                              "fit predictors on networks sampled from a space (hwprof measure --space ofa)")
    e2e = _select(e2e, "space", space, "--space", path) if not e2e.empty else e2e
    settings = df.settings_hash.unique()
    if len(settings) > 1:
        raise HwprofError(f"dataset {path} mixes {len(settings)} settings of device "
                          f"'{df.device.iloc[0]}': {', '.join(sorted(df.settings.unique()))}",
                          "write each setting to its own --out directory")
    blocks_df = df[df.block_key != "e2e"]
    try:
        archs = [Arch.from_json(s) for s in e2e.arch_json]
        blocks = {Block.from_dict(json.loads(s)): float(ms) for s, ms in zip(blocks_df.block_json, blocks_df.median_ms)}
    except (ValueError, KeyError, TypeError, HwprofError) as exc:
        raise HwprofError(f"dataset {path} has a malformed architecture: {exc}",
                          "remeasure into a fresh directory") from None
    first = df.iloc[0]
    return MeasurementData(
        device=str(first.device), device_kind=str(first.device_kind), simulated=bool(first.simulated),
        profile_hash=str(first.profile_hash), settings=str(first.settings),
        space=str(e2e.space.iloc[0]) if not e2e.empty else "", archs=archs,
        latency_ms=e2e.median_ms.to_numpy(dtype=float), blocks=blocks, source=str(path))


def _select(df, column: str, wanted: str | None, option: str, path: Path):
    values = sorted(df[column].unique())
    if wanted is not None:
        if wanted not in values:
            raise HwprofError(f"dataset {path} has no rows for {column} '{wanted}'",
                              f"it holds: {', '.join(values)}")
        return df[df[column] == wanted]
    if len(values) > 1:
        raise HwprofError(f"dataset {path} holds several {column}s: {', '.join(values)}",
                          f"pick one with {option}")
    return df
