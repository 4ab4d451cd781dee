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

    def caption(self) -> str:
        """Where the per-layer times came from and how much of the latency they cover."""
        return (f"per-layer times from the {self.source}; layers sum to {self.sum_ms:.3f} ms "
                f"({self.sum_ms / self.e2e_ms:.0%} of end to end"
                + ("; profiling adds a little time per layer)" if "profiler" in self.source else ")"))

    def table_rows(self, top: int) -> list[list[str]]:
        """Rows of the ``top`` most expensive layers: #, layer, kind, ms, share, cumulative share."""
        rows, total = [], 0.0
        for i, k in enumerate(self.top(top), 1):
            total += k.ms
            rows.append([str(i), k.name, k.description, f"{k.ms:.3f}", f"{k.ms / self.e2e_ms:.1%}",
                         f"{total / self.e2e_ms:.1%}"])
        return rows


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


def report_job(run: str | Path, select: str | None = None, top: int = 10, max_models: int = 5,
               plot: str | Path | None = None, force: bool = False) -> tuple[list[ModelBreakdown], list[ModelBreakdown]]:
    """What ``hwprof report`` does: read the per-layer breakdowns of a ``--per-op`` dataset, and plot the shown ones.

    Returns:
        Every network's breakdown, and the first ``max_models`` of them (the ones shown and plotted).

    Raises:
        HwprofError: for ``top`` or ``max_models`` below 1, a ``plot`` that hwprof did not write
            (unless ``force``), or a dataset without per-layer breakdowns.
    """
    from hwprof.io import atomic_write_via
    from hwprof.outputs import guard_output, is_hwprof_png

    if top < 1 or max_models < 1:
        raise HwprofError("--top and --max-models must be at least 1")
    if plot is not None:
        guard_output(plot, "--plot", "PNG plot", is_hwprof_png, force)
    models = load_breakdowns(run, select)
    shown = models[:max_models]
    if plot is not None:
        atomic_write_via(plot, lambda png: plot_breakdowns(shown, top, png), ".png")
    return models, shown
