"""Per-layer reports of networks measured with ``hwprof measure --per-op``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hwprof.dataset import Dataset
from hwprof.errors import HwprofError
from hwprof.per_op import KernelTime, parse

_COLUMNS = ["arch_hash", "space", "block_key", "arch_json", "device", "simulated", "median_ms", "ops_json"]


@dataclass
class ModelBreakdown:
    """One measured network and where its time goes.

    Attributes:
        name: ONNX file (for ``--model`` runs) or ``space:arch-hash``.
        arch_hash: Arch hash, or the ONNX file's content hash.
        device: Device name.
        simulated: Whether the device is simulated.
        e2e_ms: Median end-to-end latency measured.
        source: What produced the breakdown (profiler or simulator).
        kernels: Time per kernel, graph order.
    """

    name: str
    arch_hash: str
    device: str
    simulated: bool
    e2e_ms: float
    source: str
    kernels: list[KernelTime]

    @property
    def sum_ms(self) -> float:
        """Sum of the kernel times (the rest of the latency is the runtime's per-inference overhead)."""
        return sum(k.ms for k in self.kernels)

    def top(self, n: int) -> list[KernelTime]:
        """The ``n`` most expensive kernels, most expensive first."""
        return sorted(self.kernels, key=lambda k: -k.ms)[:n]

    def by_type(self) -> dict[str, float]:
        """Milliseconds per kernel type, largest first."""
        totals: dict[str, float] = {}
        for k in self.kernels:
            totals[k.type] = totals.get(k.type, 0.0) + k.ms
        return dict(sorted(totals.items(), key=lambda kv: -kv[1]))

    def as_dict(self, top: int) -> dict:
        """JSON-ready summary with the ``top`` kernels."""
        return {"name": self.name, "arch_hash": self.arch_hash, "device": self.device, "simulated": self.simulated,
                "e2e_ms": self.e2e_ms, "kernel_sum_ms": self.sum_ms, "source": self.source,
                "by_type_ms": self.by_type(),
                "top": [{"name": k.name, "type": k.type, "description": k.description, "ms": k.ms,
                         "share": k.ms / self.e2e_ms} for k in self.top(top)]}


def load_breakdowns(path: str | Path, select: str | None = None) -> list[ModelBreakdown]:
    """Networks of a dataset that carry a per-op breakdown, optionally those matching ``select``.

    Args:
        path: Dataset directory.
        select: Arch-hash prefix or part of the ONNX file name.

    Raises:
        HwprofError: if the dataset is missing or has no breakdowns (or none match).
    """
    path = Path(path)
    if not path.exists():
        raise HwprofError(f"dataset {path} does not exist", "measure with `hwprof measure --per-op --out PATH`")
    df = Dataset(path).read(columns=_COLUMNS)
    df = df[(df.block_key == "e2e") & df.ops_json.notna()]
    if df.empty:
        raise HwprofError(f"dataset {path} has no per-layer breakdowns",
                          "measure with `hwprof measure ... --per-op --out PATH`")
    out = []
    for row in df.itertuples(index=False):
        name = _display_name(row)
        if select and not (row.arch_hash.startswith(select) or select in name):
            continue
        data = json.loads(row.ops_json)
        out.append(ModelBreakdown(name, row.arch_hash, row.device, bool(row.simulated), float(row.median_ms),
                                  data.get("source", "?"), parse(row.ops_json)))
    if not out:
        raise HwprofError(f"no network in {path} matches '{select}'", "give an arch-hash prefix or part of a file name")
    return out


def _display_name(row) -> str:
    if row.space == "onnx":
        try:
            return str(json.loads(row.arch_json).get("onnx_file", row.arch_hash))
        except (TypeError, ValueError):
            return row.arch_hash
    return f"{row.space or 'arch'}:{row.arch_hash}"


def plot_breakdowns(models: list[ModelBreakdown], top: int, out: str) -> None:
    """Horizontal bar chart of the ``top`` kernels of each model (at most four, one panel each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = models[:4]
    fig, axes = plt.subplots(len(shown), 1, figsize=(9, 0.35 * top * len(shown) + 1.2 * len(shown)), squeeze=False)
    for ax, m in zip(axes[:, 0], shown):
        kernels = m.top(top)[::-1]
        ax.barh([f"{k.name}  [{k.description}]" for k in kernels], [k.ms for k in kernels], color="#4477aa")
        sim = " - SIMULATED" if m.simulated else ""
        ax.set_title(f"{m.name} on {m.device}{sim}: {m.e2e_ms:.2f} ms e2e, top {len(kernels)} kernels", fontsize=9)
        ax.set_xlabel("ms per inference")
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
