"""Accuracy metrics of latency predictions."""

from __future__ import annotations

import numpy as np


def prediction_metrics(measured_ms: np.ndarray, predicted_ms: np.ndarray) -> dict[str, float]:
    """RMSE, MAPE, share within +-5% / +-10%, Kendall tau and Spearman rho.

    Args:
        measured_ms: Measured latencies.
        predicted_ms: Predicted latencies, same order.
    """
    from scipy import stats  # 0.8 s to import: only where ranks are scored, not at every CLI start

    y = np.asarray(measured_ms, dtype=float)
    p = np.asarray(predicted_ms, dtype=float)
    rel = np.abs(p - y) / y
    many = len(y) > 1
    return {
        "n": int(len(y)),
        "rmse_ms": float(np.sqrt(np.mean((p - y) ** 2))),
        "mape": float(np.mean(rel)),
        "within_5pct": float(np.mean(rel <= 0.05)),
        "within_10pct": float(np.mean(rel <= 0.10)),
        "kendall_tau": float(stats.kendalltau(y, p).statistic) if many else float("nan"),
        "spearman_rho": float(stats.spearmanr(y, p).statistic) if many else float("nan"),
    }


def plot_predictions(measured_ms: np.ndarray, predicted_ms: np.ndarray, path: str, title: str) -> None:
    """Scatter plot of predicted vs measured latency with the +-10% band, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.asarray(measured_ms, dtype=float)
    p = np.asarray(predicted_ms, dtype=float)
    lo, hi = min(y.min(), p.min()) * 0.95, max(y.max(), p.max()) * 1.05
    line = np.linspace(lo, hi, 100)
    fig, ax = plt.subplots(figsize=(5.5, 5.5), dpi=120)
    ax.fill_between(line, line * 0.9, line * 1.1, color="tab:green", alpha=0.15, label="±10%")
    ax.plot(line, line, color="tab:green", lw=1)
    ax.scatter(y, p, s=8, alpha=0.7, color="tab:blue", label="networks")
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="measured latency (ms)", ylabel="predicted latency (ms)", title=title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
