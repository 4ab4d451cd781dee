"""Training and test data for predictors, read from a measurement dataset."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hwprof.arch import Arch, Block
from hwprof.dataset import Dataset
from hwprof.device import device_display_name
from hwprof.drift import corrected, smoothed
from hwprof.errors import HwprofError
from hwprof.graph_styles import check_style, styles_of

_COLUMNS = ["arch_hash", "space", "block_key", "arch_json", "block_json", "device", "device_kind",
            "simulated", "profile_hash", "settings", "settings_hash", "median_ms", "ref_ms", "timestamp",
            "ops_json"]


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
        ref_ms: Reference-network latency at the moment each network was measured (real
            devices, see :mod:`hwprof.drift`), or None when the run did not track drift.
        block_ref_ms: The same for each block.
        block_node_ms: Per block measured with ``--per-op``: the time of each node its
            runtime ran, by node name (see :func:`hwprof.per_op.breakdown`); None when
            no block was profiled.
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
    ref_ms: np.ndarray | None = None
    block_ref_ms: dict[Block, float] | None = None
    block_node_ms: dict[Block, dict[str, float]] | None = None

    @property
    def graph_style(self) -> str:
        """The graph style the networks were measured in (see :mod:`hwprof.graph_styles`)."""
        return styles_of(json.loads(self.settings) if self.settings else {})

    @property
    def label(self) -> str:
        """Device name for display, marked when simulated; a real device's non-float32 dtype as in its token
        (``litert-cpu:int8``, as :attr:`hwprof.device.Device.label` prints it when measuring)."""
        dtype = (json.loads(self.settings) if self.settings else {}).get("dtype", "float32")
        return device_display_name(self.device, self.simulated, dtype)

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
                "train_hash": self.fingerprint(), "n_networks": len(self.archs), "n_blocks": len(self.blocks),
                "graph_styles": [self.graph_style]}

    @property
    def has_reference(self) -> bool:
        """Whether every row carries a reference timing, so drift can be corrected."""
        return self.ref_ms is not None and (not self.blocks or self.block_ref_ms is not None)

    def reference_nominal_ms(self) -> float:
        """The median reference latency of the run: the nominal speed a predictor fitted here reports in."""
        values = np.concatenate([self.ref_ms, np.fromiter(self.block_ref_ms.values(), float)]
                                if self.block_ref_ms else [self.ref_ms])
        return float(np.median(values))

    def drift_corrected(self, nominal_ms: float) -> MeasurementData:
        """Latencies at the machine speed where the reference network takes ``nominal_ms``."""
        if not self.has_reference:
            raise HwprofError(f"{self.source or 'the dataset'} has no reference timings to correct drift with",
                              "measure with a current hwprof on a real device (--drift-every)")
        blocks = {b: float(corrected(v, self.block_ref_ms[b], nominal_ms)) for b, v in self.blocks.items()}
        return replace(self, latency_ms=corrected(self.latency_ms, self.ref_ms, nominal_ms), blocks=blocks,
                       ref_ms=np.full(len(self.archs), nominal_ms),
                       block_ref_ms={b: nominal_ms for b in blocks})

    def subset(self, index: np.ndarray) -> MeasurementData:
        """The networks at ``index``, with only the blocks those networks contain."""
        archs = [self.archs[i] for i in index]
        used = {b for a in archs for b in a.blocks}
        keep = {b for b in self.blocks if b in used}
        return replace(self, archs=archs, latency_ms=self.latency_ms[index],
                       blocks={b: self.blocks[b] for b in keep},
                       ref_ms=None if self.ref_ms is None else self.ref_ms[index],
                       block_ref_ms=None if self.block_ref_ms is None else {b: self.block_ref_ms[b] for b in keep},
                       block_node_ms=None if self.block_node_ms is None else {
                           b: v for b, v in self.block_node_ms.items() if b in keep})

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


def _read(path: Path):
    if not path.exists():
        raise HwprofError(f"dataset {path} does not exist", "run `hwprof measure --out PATH` first")
    df = Dataset(path).read(columns=_COLUMNS)
    df = df[df.median_ms.notna() & df.device.notna()]  # a damaged row (no latency) is left out; measure repairs it
    if df.empty:
        raise HwprofError(f"dataset {path} holds no measurements", "run `hwprof measure --out PATH` first")
    return df.assign(graph_style=[styles_of(json.loads(s)) if s else "hwprof" for s in df.settings])


def dataset_styles(path: str | Path) -> list[str]:
    """Graph styles a dataset directory holds rows of."""
    return sorted(_read(Path(path)).graph_style.unique())


def load_styles(paths: list[str | Path], device: str | None = None,
                space: str | None = None) -> list[MeasurementData]:
    """One :class:`MeasurementData` per graph style found in ``paths`` (for style-aware predictors).

    Raises:
        HwprofError: as :func:`load_measurements`, or if two parts hold the same style.
    """
    parts: list[MeasurementData] = []
    for path in paths:
        for style in dataset_styles(path):
            parts.append(load_measurements(path, device, space, style))
    seen = [p.graph_style for p in parts]
    dup = next((s for s in seen if seen.count(s) > 1), None)
    if dup:
        raise HwprofError(f"graph style '{dup}' is in more than one of the datasets",
                          "measure each style into one --out directory")
    if len({(p.device, p.space) for p in parts}) > 1:
        raise HwprofError("the datasets hold different devices or spaces: "
                          + ", ".join(sorted({f"{p.device}/{p.space}" for p in parts})),
                          "fit one predictor per device and space")
    return parts


def load_measurements(path: str | Path, device: str | None = None, space: str | None = None,
                      style: str | None = None) -> MeasurementData:
    """Read one device's measurements from a dataset directory.

    Args:
        path: Dataset directory written by ``hwprof measure``.
        device: Device to select when the dataset holds several.
        space: Space to select when the dataset holds several.
        style: Graph style to select when the dataset holds several.

    Raises:
        HwprofError: if the path is missing, corrupt, empty, or ambiguous.
    """
    path = Path(path)
    df = _read(path)
    df = _select(df, "device", device, "--device", path)
    if style is not None:
        check_style(style)
    styles = sorted(df.graph_style.unique())
    if style is None and len(styles) > 1:
        raise HwprofError(f"dataset {path} holds networks in several graph styles: {', '.join(styles)}",
                          "pick one with --graph-style, or fit kernel-rf, which learns several at once")
    df = _select(df, "graph_style", style, "--graph-style", path)
    if df.ref_ms.notna().all():  # drift tracked: one-off spikes of single reference timings smoothed away
        df = df.assign(ref_ms=smoothed(df.timestamp, df.ref_ms))
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
        block_keys = [Block.from_dict(json.loads(s)) for s in blocks_df.block_json]
        blocks = {b: float(ms) for b, ms in zip(block_keys, blocks_df.median_ms)}
        block_node_ms = _node_times(block_keys, blocks_df)
    except (ValueError, KeyError, TypeError, HwprofError) as exc:
        raise HwprofError(f"dataset {path} has a malformed architecture: {exc}",
                          "remeasure into a fresh directory") from None
    tracked = e2e.ref_ms.notna().all() and blocks_df.ref_ms.notna().all() and not e2e.empty
    first = df.iloc[0]
    return MeasurementData(
        device=str(first.device), device_kind=str(first.device_kind), simulated=bool(first.simulated),
        profile_hash=str(first.profile_hash), settings=str(first.settings),
        space=str(e2e.space.iloc[0]) if not e2e.empty else "", archs=archs,
        latency_ms=e2e.median_ms.to_numpy(dtype=float), blocks=blocks, source=str(path),
        ref_ms=e2e.ref_ms.to_numpy(dtype=float) if tracked else None,
        block_ref_ms=dict(zip(block_keys, blocks_df.ref_ms.astype(float))) if tracked else None,
        block_node_ms=block_node_ms)


def _node_times(block_keys: list[Block], blocks_df) -> dict[Block, dict[str, float]] | None:
    """Per-node profiler times of the blocks measured with ``--per-op`` (None when there are none)."""
    if "ops_json" not in blocks_df.columns:
        return None
    out = {}
    for block, text in zip(block_keys, blocks_df.ops_json):
        if isinstance(text, str) and text:
            node_ms = json.loads(text).get("node_ms")
            if node_ms:
                out[block] = {str(k): float(v) for k, v in node_ms.items()}
    return out or None


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
