"""Attention: predictors on the vit and hybrid spaces, and transformers written in plain torch.

Two sections:

- ``predictors``: for each of ``vit`` and ``hybrid`` on each device, networks and
  their blocks measured for training (``--train``), others end to end for testing
  (``--test``); flops-linear, additive, lut, kernel-rf and gbm fitted on the
  training set and scored on the test set (within ±10%, MAPE, Kendall tau).
  Target: the best model >= 99% within ±10% on simulated chips, >= 95% on the
  real cpu.
- ``byo`` (bring your own transformer): 10 ViT / encoder models written here in
  plain torch (not hwprof's builder; three attention spellings: torch's
  ``nn.TransformerEncoderLayer``, a timm-style fused-qkv module, separate q/k/v
  projections; class token or mean pooling; GELU erf or tanh), exported by
  torch's own exporter, timed on the device, and predicted by ``kernel-rf``
  trained only on hwprof's ``vit`` + ``hybrid`` data of that device (plus a
  third as many ``vit`` networks with the tanh GELU, which runs unfused).
  Target: >= 90% within ±10%.

On the real cpu every test network is timed in round-robin rounds with the
reference network (drift-corrected, hwprof.drift), and the test-retest figure
(first half of the rounds against the second) is printed beside the accuracy:
a difference below it is noise.

    python -m benchmarks.bench_attention [--devices kirin-npu,hexagon-dsp] [--real]
        [--train 300] [--test 100] [--sections predictors,byo] [--data-dir DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from torch import nn

from benchmarks.bench_byom import timed
from benchmarks.common import emit
from devices import resolve
from hwprof.dataset import Dataset
from hwprof.predictors.data import load_measurements
from hwprof.predictors.training import comparable, fit_on
from hwprof.profiling import measure_into
from hwprof.protocol import Protocol
from hwprof.torch_export import export_module
from nas.spaces import get_space

SPACES = ("vit", "hybrid")
MODELS = ("flops-linear", "additive", "lut", "kernel-rf", "gbm")
PER_OP_RUNS = 5


def _measure(root: Path, device: str, space: str, n: int, seed: int, mode: str, gelu: str = "erf") -> Path:
    dev = resolve(device, seed=0)
    # on a real device the blocks are also profiled node by node, so kernel-rf reads each kernel's share
    # of a block (projection, attention product, GELU, ...) from the profile instead of guessing it
    per_op = PER_OP_RUNS if mode == "both" and not dev.simulated else 0
    name = f"{device}-{space}-{mode}-{seed}" if gelu == "erf" else f"{device}-{space}-gelu-{gelu}-{mode}-{seed}"
    out = root / (name + ("-per-op" if per_op else ""))
    sp, rng = get_space(space, gelu=gelu), np.random.default_rng(seed)
    archs = [sp.sample(rng) for _ in range(n)]
    proto = Protocol() if dev.simulated else Protocol(min_time_s=0.1, time_cap_s=2.0)
    print(f"measuring {n} {space} networks ({mode}) on {device} into {out}", flush=True)
    measure_into(Dataset(out), dev, archs, mode=mode, protocol=proto,
                 reference_every_s=None if dev.simulated else 2.0, per_op_runs=per_op)
    return out


def _score(pred: np.ndarray, meas: np.ndarray) -> dict:
    err = pred / meas - 1
    return {"within_10pct": float(np.mean(np.abs(err) <= 0.10)), "mape": float(np.mean(np.abs(err))),
            "mean_signed": float(np.mean(err)), "kendall_tau": float(stats.kendalltau(pred, meas)[0])}


def predictors_section(root: Path, devices: list[str], n_train: int, n_test: int) -> dict:
    results = {}
    for device in devices:
        simulated = resolve(device).simulated
        for space in SPACES:
            train = load_measurements(_measure(root, device, space, n_train, 0, "both"))
            test_dir = _measure(root, device, space, n_test, 1, "e2e")
            test = load_measurements(test_dir)
            row = {}
            for name in MODELS:
                predictor = fit_on(name, train)
                pred = np.asarray(predictor.predict(test.archs))
                comparable_test, _ = comparable(predictor, test)  # drift-corrected to the training run's speed
                row[name] = _score(pred, np.asarray(comparable_test.latency_ms))
            if not simulated:
                archs = test.archs
                from hwprof.build_onnx import build_onnx

                _, first, second = timed([build_onnx(a) for a in archs], float(predictor.provenance_["reference_ms"]))
                row["test-retest"] = _score(second, first)
            best = max(MODELS, key=lambda m: (row[m]["within_10pct"], -row[m]["mape"]))
            target = 0.99 if simulated else 0.95
            results[f"{device} {space}"] = {"metrics": row, "best": best, "target": target,
                                            "ok": row[best]["within_10pct"] >= target, "simulated": simulated}
            label = f"{device}{' (simulated)' if simulated else ''}, {space}: {n_train} train / {n_test} test networks"
            print(f"\n{label}")
            print(f"  {'model':14s} {'±10%':>6s} {'MAPE':>7s} {'tau':>6s}")
            for name, m in row.items():
                print(f"  {name:14s} {m['within_10pct']:6.0%} {m['mape']:7.2%} {m['kendall_tau']:6.3f}")
            print(f"  best: {best} {row[best]['within_10pct']:.0%} (target {target:.0%}): "
                  f"{'OK' if results[f'{device} {space}']['ok'] else 'MISSED'}", flush=True)
    return results


# --- bring your own transformer: plain torch, three attention spellings ----------------------------

class TimmAttention(nn.Module):
    """Fused q/k/v projection, as timm's ViT writes it."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class SeparateQKV(nn.Module):
    """Separate q, k and v projections (BERT-style code)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x):
        b, n, c = x.shape
        split = lambda t: t.view(b, n, self.heads, c // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        attn = torch.softmax(q @ k.transpose(-1, -2) / (c // self.heads) ** 0.5, dim=-1)
        return self.out((attn @ v).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, ratio: float, attention, gelu: str) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * ratio)), nn.GELU(approximate=gelu),
                                 nn.Linear(int(dim * ratio), dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PlainViT(nn.Module):
    def __init__(self, dim, depth, heads, ratio, patch, tokens, spelling, gelu, cls_token) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim)) if cls_token else None
        self.pos = nn.Parameter(torch.zeros(1, tokens + int(cls_token), dim))
        if spelling == "torch":
            layer = nn.TransformerEncoderLayer(dim, heads, int(dim * ratio), dropout=0.0, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        else:
            attention = TimmAttention if spelling == "timm" else SeparateQKV
            self.blocks = nn.Sequential(*[Block(dim, heads, ratio, attention, gelu) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 1000)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.norm(self.blocks(x + self.pos))
        return self.head(x[:, 0] if self.cls is not None else x.mean(1))


def byo_models(n: int = 10, seed: int = 0) -> list[tuple[str, nn.Module, int]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        dim = int(rng.choice([192, 240, 288]))
        heads = int(rng.choice([h for h in (3, 4, 6) if dim % h == 0]))
        patch, res = int(rng.choice([16, 32])), int(rng.choice([160, 192, 224]))
        spelling = ("torch", "timm", "separate")[i % 3]
        gelu = "tanh" if spelling != "torch" and rng.random() < 0.4 else "none"
        cls_token = bool(rng.random() < 0.4)
        depth, ratio = int(rng.integers(6, 13)), float(rng.choice([3.0, 4.0]))
        name = f"{spelling} d{dim} x{depth} h{heads} p{patch} {res}px {'cls' if cls_token else 'mean'} gelu-{gelu}"
        out.append((name, PlainViT(dim, depth, heads, ratio, patch, (res // patch) ** 2, spelling, gelu,
                                   cls_token).eval(), res))
    return out


def byo_section(root: Path, devices: list[str], n_train: int, models: int) -> dict:
    torch.manual_seed(0)
    nets = byo_models(models)
    exported = [export_module(m, (1, 3, r, r)) for _, m, r in nets]
    results = {}
    for device in devices:
        dev = resolve(device, seed=0)
        parts = [load_measurements(_measure(root, device, s, n_train, 0, "both")) for s in SPACES]
        # the tanh GELU runs as an elementwise chain, not one fused kernel: a third of a run's worth of vit
        # networks in that form, so the chain's kernels are in the training data
        parts.append(load_measurements(_measure(root, device, "vit", max(2, n_train // 3), 2, "both", gelu="tanh")))
        predictor = fit_on("kernel-rf", parts)
        pred = np.asarray(predictor.predict_onnx(exported))
        if dev.simulated:
            measured = np.array([dev.latency(m)[0] * 1e3 for m in exported])
            retest = None
        else:
            measured, first, second = timed(exported, float(predictor.provenance_["reference_ms"]))
            retest = _score(second, first)
        score = _score(pred, measured)
        results[device] = {"kernel-rf": score, "test-retest": retest, "simulated": dev.simulated,
                           "models": [{"name": name, "measured_ms": float(m), "predicted_ms": float(p)}
                                      for (name, _, _), m, p in zip(nets, measured, pred)]}
        print(f"\nbring your own transformer on {device}{' (simulated)' if dev.simulated else ''}: kernel-rf trained "
              f"on hwprof's vit + hybrid data only ({n_train} networks each, {max(2, n_train // 3)} vit with tanh GELU)")
        for (name, _, _), m, p in zip(nets, measured, pred):
            print(f"  {name:48s} measured {m:8.3f} ms  predicted {p:8.3f} ({p / m - 1:+6.1%})")
        extra = f"; test-retest ±10% {retest['within_10pct']:.0%}, |d| {retest['mape']:.1%}" if retest else ""
        print(f"  within ±10%: {score['within_10pct']:.0%}, MAPE {score['mape']:.1%}, mean signed "
              f"{score['mean_signed']:+.1%}{extra} (target >= 90%: {'OK' if score['within_10pct'] >= 0.9 else 'MISSED'})",
              flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", default="kirin-npu,hexagon-dsp")
    parser.add_argument("--real", action="store_true", help="also the real cpu (slow: real timing)")
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--models", type=int, default=10, help="plain-torch transformers for byo")
    parser.add_argument("--sections", default="predictors,byo")
    parser.add_argument("--data-dir", help="where measurements go (resumable; default: a temp dir)")
    parser.add_argument("--json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    devices = [d for d in args.devices.split(",") if d] + (["cpu"] if args.real else [])
    tmp = tempfile.TemporaryDirectory()
    root = Path(args.data_dir or tmp.name)
    results = {}
    sections = args.sections.split(",")
    if "predictors" in sections:
        results["predictors"] = predictors_section(root, devices, args.train, args.test)
    if "byo" in sections:
        results["byo"] = byo_section(root, devices, args.train, args.models)
    emit("attention", results, args.json)


if __name__ == "__main__":
    main()
