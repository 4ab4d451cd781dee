"""Bring your own model: kernel-rf trained only on hwprof's own data predicts plain-torch exports.

Test networks come from three independent sources, each written here in plain
torch (not through hwprof's builders) with the spellings users write:

- ``mbv3``: MobileNetV3-style networks; h-swish as ``nn.Hardswish``,
  ``x * relu6(x + 3) / 6`` or ``x * clamp(x + 3, 0, 6) / 6``; SE pooling as
  ``nn.AdaptiveAvgPool2d(1)`` or ``x.mean((2, 3), keepdim=True)``.
- ``ofa-code``: written as the Once-for-All code base writes its layers
  (``Hswish``/``Hsigmoid`` modules built on ``F.relu6``, SE pooling as
  ``x.mean(3, keepdim=True).mean(2, keepdim=True)``, ``MyGlobalAvgPool``-style
  mean before the classifier).
- ``mbv2``: MobileNetV2/ProxylessNAS-style networks (ReLU6 as ``nn.ReLU6`` or
  ``clamp(x, 0, 6)``, kernels 3/5/7, no SE).
- ``torchvision``: torchvision's own code (random weights): mobilenet_v2,
  mobilenet_v3_small/large, mnasnet (their width multipliers, 0.35-1.4),
  efficientnet_b0, regnet_x/y_400mf, at 96-224 px, down to networks under
  1 ms here (``pip install -e .[byom]``; left out when torchvision is missing).

The accuracy is also reported per third of the test networks by measured
latency (``--plot``: the error against size), since a cost that every network
pays alike shows up as an error that grows as networks shrink.

Each is exported with ``torch.onnx.export(dynamo=True)`` (the torchscript
exporter when onnxscript is missing), measured on the real ``cpu`` device in
round-robin rounds, and compared with two ``kernel-rf`` predictors fitted only
on hwprof-measured ``ofa`` networks and blocks:

- *runtime* (this round's model): kernels from onnxruntime's optimized graph,
  fitted on ``ofa`` in graph styles ``hwprof``, ``torch-manual``, ``torch`` and
  ``torch-timm``, and on ``proxyless`` (MobileNetV2-like, at width 1, 0.75 and
  1.4) and ``ofa-width`` (per-block width multipliers) in ``hwprof`` style;
  and on small networks (0.6-8 ms here: ``ofa`` at width 0.5, ``proxyless`` at
  0.35/96 px and 0.5/128 px), so that neither the kernels nor the network term
  of the smallest test networks are extrapolated. Every training block is
  also profiled per node (``--per-op``), so each kernel's share of its block
  is read from the profile rather than guessed. Training data are measured
  with ``hwprof measure``'s protocol (chunked, quiet chunks kept);
- *baseline* (round 1's model): hwprof's fusion rules, fitted on ``ofa`` in
  ``hwprof`` style only.

Measured latencies are brought to the predictors' nominal machine speed with
the reference network timed around each model (hwprof.drift). The test-retest
figure (the first half of the rounds against the second, drift-corrected) is
printed beside the accuracy: a difference below it is noise.

It also prints the latency ratio of the same ``ofa`` architecture in hwprof's
form and as torch exports (``torch``, ``torch-manual``) on every real runtime
(``--form-devices``: onnxruntime, OpenVINO and LiteRT in float32 by default,
int8 on request; LiteRT runs each ONNX form through hwprof's lowering), and
the speed-up of
``hwprof advise --fix`` on the torch-manual exports.

    python -m benchmarks.bench_byom [--data-dir DIR] [--models 12] [--train 150] [--refit] [--json out.json]
        [--sources mbv3,ofa-code,mbv2,torchvision] [--torchvision-models 30] [--plot size.png] [--accuracy-only]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn
from torch.nn import functional as F

from benchmarks.common import emit
from devices import resolve
from hwprof.advise import before_after, fix
from hwprof.api import measure
from hwprof.dataset import Dataset
from hwprof.graph_styles import build_model
from hwprof.io import atomic_write_bytes, atomic_write_via, write_json
from hwprof.option_values import parse_params
from hwprof.predictors.data import load_measurements
from hwprof.predictors.training import fit_on
from hwprof.profiling import measure_into
from hwprof.protocol import measurement_protocol
from hwprof.torch_export import export_module
from nas.spaces import get_space

ROUNDS = 8  # round-robin rounds per model; the test-retest figure compares the first half with the second
MIN_TIME_S = 0.25  # timed per model per round (seconds)
# (space, graph style, share of --train networks): what hwprof generates and kernel-rf learns from
# (ofa-width: per-block widths x0.75-1.25, the channel counts of width-multiplied MobileNets;
# proxyless with width multipliers: the published MobileNetV2 family, 0.75 at 192 px and 1.4 at 160 px)
TRAINING = (("ofa", "hwprof", 1.0), ("ofa", "torch-manual", 1.0), ("ofa", "torch", 0.5), ("ofa", "torch-timm", 0.5),
            ("proxyless", "hwprof", 0.67), ("ofa-width", "hwprof", 0.5),
            ("proxyless:width_mult=0.75,resolution=192", "hwprof", 0.34),
            ("proxyless:width_mult=1.4,resolution=160", "hwprof", 0.34),
            # small networks (0.5-3 ms here): kernels and whole graphs as small as the smallest users ship
            ("ofa:width_mult=0.5", "hwprof", 0.5), ("ofa:width_mult=0.5", "torch-timm", 0.5),
            ("proxyless:width_mult=0.35,resolution=96", "hwprof", 0.34),
            ("proxyless:width_mult=0.5,resolution=128", "torch", 0.34))
PER_OP_RUNS = 5  # blocks are profiled per node, so kernel-rf learns each kernel's share from its time


def _div8(c: float) -> int:
    return max(8, int(c + 4) // 8 * 8)


# --- source 1: MobileNetV3-style, every common h-swish and SE spelling ---------------------------

class HswishRelu6(nn.Module):
    def forward(self, x):
        return x * F.relu6(x + 3.0) / 6.0


class HswishClamp(nn.Module):
    def forward(self, x):
        return x * torch.clamp(x + 3.0, 0.0, 6.0) / 6.0


class MeanPool(nn.Module):
    def forward(self, x):
        return x.mean((2, 3), keepdim=True)


class SE(nn.Module):
    def __init__(self, c: int, pool: nn.Module) -> None:
        super().__init__()
        self.pool = pool
        self.fc = nn.Sequential(nn.Conv2d(c, _div8(c / 4), 1), nn.ReLU(), nn.Conv2d(_div8(c / 4), c, 1), nn.Hardsigmoid())

    def forward(self, x):
        return x * self.fc(self.pool(x))


class IRBlock(nn.Module):
    def __init__(self, c_in, c_out, k, e, stride, se_pool, act) -> None:
        super().__init__()
        mid = _div8(c_in * e)
        self.residual = stride == 1 and c_in == c_out
        layers = [nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid), act(),
                  nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False), nn.BatchNorm2d(mid), act()]
        if se_pool is not None:
            layers.append(SE(mid, se_pool()))
        layers += [nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def mbv3(rng: np.random.Generator) -> tuple[nn.Module, int]:
    width = float(rng.choice([0.75, 1.0, 1.25]))
    hswish = [nn.Hardswish, HswishRelu6, HswishClamp][int(rng.integers(3))]
    pool = [lambda: nn.AdaptiveAvgPool2d(1), MeanPool][int(rng.integers(2))]
    stages = [(24, 2, False, nn.ReLU), (40, 2, True, nn.ReLU), (80, 2, False, hswish), (112, 1, True, hswish),
              (160, 2, True, hswish)]
    c = _div8(16 * width)
    layers = [nn.Conv2d(3, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), hswish(), IRBlock(c, c, 3, 1, 1, None, nn.ReLU)]
    for base, stride, se, act in stages:
        depth, k, e = int(rng.integers(2, 5)), int(rng.choice([3, 5, 7])), int(rng.choice([3, 4, 6]))
        for j in range(depth):
            layers.append(IRBlock(c, _div8(base * width), k, e, stride if j == 0 else 1, pool if se else None, act))
            c = _div8(base * width)
    last = _div8(960 * width)
    layers += [nn.Conv2d(c, last, 1, bias=False), nn.BatchNorm2d(last), hswish(), pool(), nn.Flatten(),
               nn.Linear(last, 1280), hswish(), nn.Linear(1280, 1000)]
    return nn.Sequential(*layers), int(rng.choice([160, 192, 224]))


# --- source 2: as the Once-for-All code base writes its layers -----------------------------------

class Hswish(nn.Module):
    def forward(self, x):
        return x * F.relu6(x + 3.0, inplace=False) / 6.0


class Hsigmoid(nn.Module):
    def forward(self, x):
        return F.relu6(x + 3.0, inplace=False) / 6.0


class SEModule(nn.Module):
    def __init__(self, channel: int) -> None:
        super().__init__()
        mid = _div8(channel // 4)
        self.reduce = nn.Conv2d(channel, mid, 1, 1, 0, bias=True)
        self.expand = nn.Conv2d(mid, channel, 1, 1, 0, bias=True)
        self.h_sigmoid = Hsigmoid()

    def forward(self, x):
        y = x.mean(3, keepdim=True).mean(2, keepdim=True)
        y = self.expand(F.relu(self.reduce(y)))
        return x * self.h_sigmoid(y)


class MBConvLayer(nn.Module):
    def __init__(self, c_in, c_out, k, e, stride, use_se, act) -> None:
        super().__init__()
        mid = _div8(round(c_in * e))
        act_layer = Hswish if act == "h_swish" else nn.ReLU
        self.inverted_bottleneck = nn.Sequential(nn.Conv2d(c_in, mid, 1, 1, 0, bias=False), nn.BatchNorm2d(mid),
                                                 act_layer())
        depth = [nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False), nn.BatchNorm2d(mid), act_layer()]
        if use_se:
            depth.append(SEModule(mid))
        self.depth_conv = nn.Sequential(*depth)
        self.point_linear = nn.Sequential(nn.Conv2d(mid, c_out, 1, 1, 0, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = stride == 1 and c_in == c_out

    def forward(self, x):
        y = self.point_linear(self.depth_conv(self.inverted_bottleneck(x)))
        return x + y if self.shortcut else y


class OFAStyleNet(nn.Module):
    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__()
        self.first_conv = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), Hswish())
        blocks = [MBConvLayer(16, 16, 3, 1, 1, False, "relu")]
        c = 16
        for width, stride, act, se in ((24, 2, "relu", False), (40, 2, "relu", True), (80, 2, "h_swish", False),
                                       (112, 1, "h_swish", True), (160, 2, "h_swish", True)):
            for j in range(int(rng.integers(2, 5))):
                blocks.append(MBConvLayer(c, width, int(rng.choice([3, 5, 7])), float(rng.choice([3, 4, 6])),
                                          stride if j == 0 else 1, se, act))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.final_expand = nn.Sequential(nn.Conv2d(c, 960, 1, bias=False), nn.BatchNorm2d(960), Hswish())
        self.feature_mix = nn.Sequential(nn.Conv2d(960, 1280, 1, bias=False), Hswish())
        self.classifier = nn.Linear(1280, 1000)

    def forward(self, x):
        x = self.final_expand(self.blocks(self.first_conv(x)))
        x = x.mean(3, keepdim=True).mean(2, keepdim=True)  # MyGlobalAvgPool2d
        x = self.feature_mix(x)
        return self.classifier(x.view(x.size(0), -1))


def ofa_code(rng: np.random.Generator) -> tuple[nn.Module, int]:
    return OFAStyleNet(rng), int(rng.choice([160, 176, 192, 208, 224]))


# --- source 3: MobileNetV2 / ProxylessNAS-style ---------------------------------------------------

class ClampRelu6(nn.Module):
    def forward(self, x):
        return torch.clamp(x, 0.0, 6.0)


def mbv2(rng: np.random.Generator) -> tuple[nn.Module, int]:
    width = float(rng.choice([0.75, 1.0, 1.3]))
    relu6 = [nn.ReLU6, ClampRelu6][int(rng.integers(2))]
    c = _div8(32 * width)
    layers = [nn.Conv2d(3, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), relu6(),
              nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False), nn.BatchNorm2d(c), relu6(),
              nn.Conv2d(c, _div8(16 * width), 1, bias=False), nn.BatchNorm2d(_div8(16 * width))]
    c = _div8(16 * width)
    for base, stride in ((24, 2), (32, 2), (64, 2), (96, 1), (160, 2), (320, 1)):
        for j in range(int(rng.integers(1, 5))):
            layers.append(IRBlock(c, _div8(base * width), int(rng.choice([3, 5, 7])), int(rng.choice([3, 6])),
                                  stride if j == 0 else 1, None, relu6))
            c = _div8(base * width)
    layers += [nn.Conv2d(c, 1280, 1, bias=False), nn.BatchNorm2d(1280), relu6(), nn.AdaptiveAvgPool2d(1),
               nn.Flatten(), nn.Linear(1280, 1000)]
    return nn.Sequential(*layers), int(rng.choice([160, 192, 224]))


# --- source 4: torchvision's own model code, as its users export it ------------------------------

def torchvision_models():
    """``torchvision.models``, or None when torchvision is not installed (``pip install -e .[byom]``).

    Where only a build of torchvision linked against CUDA is installable (its compiled detection ops fail to
    load beside a CPU torch), the two operators its import registers fake kernels for are declared first: the
    classification models use none of torchvision's compiled ops.
    """
    import sys

    try:
        import torchvision
    except ImportError:
        return None
    except RuntimeError:  # "operator torchvision::nms does not exist": the compiled ops did not load
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        library = torch.library.Library("torchvision", "DEF")  # noqa: TOR901 (kept alive by the registry)
        for op in ("nms", "qnms"):
            library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        torchvision_models.library = library
        import torchvision
    return torchvision.models


#: torchvision families with the width multipliers their constructors take (None: fixed width).
TORCHVISION = {"mobilenet_v2": (0.35, 0.5, 0.75, 1.0, 1.4), "mobilenet_v3_small": (0.5, 0.75, 1.0),
               "mobilenet_v3_large": (0.5, 0.75, 1.0), "mnasnet": (0.5, 0.75, 1.0, 1.3),
               "efficientnet_b0": None, "regnet_x_400mf": None, "regnet_y_400mf": None}
TORCHVISION_RESOLUTIONS = (96, 128, 160, 192, 224)


def torchvision_net(rng: np.random.Generator) -> tuple[nn.Module, int]:
    """A torchvision classification network (random weights) at a random width and resolution."""
    models = torchvision_models()
    family = str(rng.choice(list(TORCHVISION)))
    widths = TORCHVISION[family]
    width = float(rng.choice(widths)) if widths else None
    resolution = int(rng.choice(TORCHVISION_RESOLUTIONS))
    if family == "mnasnet":
        module = models.MNASNet(alpha=width)
    elif width is not None:
        module = getattr(models, family)(width_mult=width)
    else:
        module = getattr(models, family)()
    module.hwprof_name = f"{family}" + (f" x{width:g}" if width else "")
    return module, resolution


SOURCES = {"mbv3": mbv3, "ofa-code": ofa_code, "mbv2": mbv2, "torchvision": torchvision_net}


def size_terciles(measured_ms: np.ndarray, errors: dict[str, np.ndarray]) -> list[dict]:
    """Scores per third of the networks by measured latency (smallest first), for each error array."""
    order = np.argsort(measured_ms)
    out = []
    for k, idx in enumerate(np.array_split(order, 3)):
        out.append({"tercile": ("small", "medium", "large")[k], "n": int(len(idx)),
                    "ms_range": [float(measured_ms[idx].min()), float(measured_ms[idx].max())],
                    **{name: scores(e[idx]) for name, e in errors.items()}})
    return out


def plot_by_size(path: Path, measured_ms: np.ndarray, errors: np.ndarray, sources: list[str]) -> None:
    """Relative error against measured latency, one colour per source, with the ±10% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for source in dict.fromkeys(sources):
        idx = [i for i, s in enumerate(sources) if s == source]
        ax.scatter(measured_ms[idx], 100 * errors[idx], label=source, s=18)
    ax.axhspan(-10, 10, color="0.9", zorder=0)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("measured latency, ms (cpu, drift-corrected)")
    ax.set_ylabel("kernel-rf error, %")
    ax.set_title("kernel-rf on torch exports against network size")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_via(path, lambda staged: fig.savefig(staged, dpi=120), suffix=".png")
    plt.close(fig)


def export(module: nn.Module, resolution: int) -> onnx.ModelProto:
    try:
        import onnxscript  # noqa: F401

        exporter = "dynamo"
    except ImportError:
        exporter = "torchscript"
    return export_module(module, (1, 3, resolution, resolution), exporter=exporter)


def training_data(root: Path, n: int) -> list:
    """hwprof-measured cpu data (networks and their blocks) for each entry of TRAINING (resumable)."""
    parts = []
    for space_name, style, share in TRAINING:
        space, rng = get_space(space_name), np.random.default_rng(0)
        archs = [space.sample(rng) for _ in range(max(2, int(n * share)))]
        out = root / f"cpu-{space_name.replace(':', '-').replace(',', '-').replace('=', '')}-{style}"
        device = resolve("cpu", graph_style=style)
        print(f"measuring {len(archs)} {space_name} networks and their blocks on cpu in graph style {style} into {out}",
              flush=True)
        measure_into(Dataset(out), device, archs, mode="both", protocol=measurement_protocol(simulated=False),
                     reference_every_s=2.0, per_op_runs=PER_OP_RUNS)
        parts.append(load_measurements(out, device="cpu", space=space.name, style=style))
    return parts


def timed(models: list[onnx.ModelProto], nominal: float | None, cache: Path | None = None,
          keys: list[str] | None = None, device: str = "cpu",
          rounds: int = ROUNDS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(drift-corrected median, first-half median, second-half median) over round-robin rounds.

    With ``cache`` (a JSON file) and ``keys``, timings (median and reference ms per round) are
    kept there and reused by a rerun, so the predictors can be refitted without re-timing.
    ``nominal`` None: brought to the median reference time of this run (``device``'s own).
    """
    stored = json.loads(cache.read_text()) if cache is not None and cache.exists() else {}
    if keys is not None and all(len(stored.get(k, ())) == rounds for k in keys):
        raw = np.array([stored[k] for k in keys]).transpose(1, 0, 2)  # rounds x models x (median, ref)
    else:
        raw = np.zeros((rounds, len(models), 2))
        for r in range(rounds):
            for i, model in enumerate(models):
                row = measure(model, device=device, min_time_s=MIN_TIME_S)
                raw[r, i] = row["median_ms"], row["ref_ms"]
        if cache is not None and keys is not None:
            stored.update({k: raw[:, i].tolist() for i, k in enumerate(keys)})
            write_json(cache, stored, indent=None)  # strict JSON, whole or not at all
    runs = raw[:, :, 0] * (nominal or float(np.median(raw[:, :, 1]))) / raw[:, :, 1]
    half = rounds // 2
    return np.median(runs, 0), np.median(runs[:half], 0), np.median(runs[half:], 0)


def _fitted(path: Path, refit: bool, fit, data_hash: str):
    """The predictor saved at ``path`` by an earlier run when it was fitted on the same measured rows
    (``data_hash``, recorded beside its own drift-corrected ``train_hash``) and not ``refit``; else ``fit()``,
    saved there."""
    from hwprof.predictors import store

    if path.exists() and not refit:
        saved = store.load(path)
        if saved.provenance_.get("bench_data_hash") == data_hash:
            return saved
    predictor = fit()
    predictor.provenance_["bench_data_hash"] = data_hash
    store.save(predictor, path)
    return predictor


def scores(errors: np.ndarray) -> dict:
    return {"within_10pct": float(np.mean(np.abs(errors) <= 0.10)), "mean_signed": float(np.mean(errors)),
            "mape": float(np.mean(np.abs(errors)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="where the training data are measured (resumable; default: a temp dir)")
    parser.add_argument("--train", type=int, default=150, help="ofa networks measured per training style")
    parser.add_argument("--models", type=int, default=12, help="test networks per source")
    parser.add_argument("--torchvision-models", type=int, default=30,
                        help="test networks from torchvision (families, widths and resolutions at random)")
    parser.add_argument("--sources", default=",".join(SOURCES), help="test sources, comma-separated")
    parser.add_argument("--plot", help="PNG of the error against network size")
    parser.add_argument("--accuracy-only", action="store_true",
                        help="skip the graph-form ratios and advise --fix (minutes on OpenVINO and LiteRT)")
    parser.add_argument("--ratio-networks", type=int, default=20)
    parser.add_argument("--kernel-target", default="auto", help="kernel-rf target for the runtime model: auto|ratio|ms")
    parser.add_argument("--runtime-params", default="", help="more kernel-rf settings for the runtime model, "
                        "KEY=VALUE,... (e.g. profiler_correction=true); the test timings are reused from --data-dir")
    parser.add_argument("--form-devices", default="cpu,openvino-cpu,litert-cpu",
                        help="real runtimes the graph forms are compared on (NAME:int8 for int8, e.g. "
                        "openvino-cpu:int8; each int8 model is calibrated and compiled per timing, so it is slow)")
    parser.add_argument("--refit", action="store_true", help="refit the predictors saved in --data-dir by a "
                        "previous run (they are reused otherwise)")
    parser.add_argument("--json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    tmp = tempfile.TemporaryDirectory()
    root = Path(args.data_dir or tmp.name)
    parts = training_data(root, args.train)
    extra = parse_params([p for p in args.runtime_params.split(",") if p])
    suffix = "".join(f"-{k}={v}" for k, v in sorted(extra.items()))
    runtime = _fitted(root / f"runtime-{args.kernel_target}{suffix}.pred", args.refit,
                      lambda: fit_on("kernel-rf", parts, target=args.kernel_target, **extra),
                      "+".join(p.fingerprint() for p in parts))
    baseline = _fitted(root / "baseline.pred", args.refit,  # round 1's model
                       lambda: fit_on("kernel-rf", parts[0], kernels="rules", target="ms"), parts[0].fingerprint())
    nominal = float(runtime.provenance_["reference_ms"])
    rng = np.random.default_rng(1)
    names, exported = [], []
    wanted = [s for s in args.sources.split(",") if s]
    unknown = sorted(set(wanted) - set(SOURCES))
    if unknown:
        parser.error(f"unknown sources {unknown}; choose from {sorted(SOURCES)}")
    if "torchvision" in wanted and torchvision_models() is None:
        print("torchvision is not installed (pip install -e .[byom]); its networks are left out", flush=True)
        wanted.remove("torchvision")
    sources = [s for s in SOURCES if s in wanted]
    exports = root / "test-models"  # exporting takes seconds a network: kept for reruns (refits, other settings)
    exports.mkdir(parents=True, exist_ok=True)
    for source in sources:
        for i in range(args.torchvision_models if source == "torchvision" else args.models):
            module, res = SOURCES[source](rng)
            name = source if source != "torchvision" else module.hwprof_name
            path = exports / f"{name.replace(' ', '-')}-{i}-{res}.onnx"
            if not path.exists():
                atomic_write_bytes(path, export(module.eval(), res).SerializeToString())  # whole or not at all
            exported.append(onnx.load(path))
            names.append((name, i, res))
    origin = [s for s in sources for _ in range(args.torchvision_models if s == "torchvision" else args.models)]
    print(f"measuring {len(exported)} torch-exported networks, {ROUNDS} round-robin rounds", flush=True)
    measured, first, second = timed(exported, nominal, root / "test-timings.json",
                                    [f"{s}-{i}-{r}-{len(m.graph.node)}" for (s, i, r), m in zip(names, exported)])
    pred_rt, coverage = runtime.predict_onnx_with_coverage(exported)
    pred_base = baseline.predict_onnx(exported)
    err_rt, err_base = pred_rt / measured - 1, pred_base / measured - 1
    retest = second / first - 1
    rows = []
    for (source, i, res), m, p, b, t in zip(names, measured, pred_rt, pred_base, retest):
        rows.append({"source": source, "index": i, "resolution": res, "measured_ms": float(m), "runtime_ms": float(p),
                     "baseline_ms": float(b), "retest": float(t)})
        print(f"{source:18s} {i:2d} {res}px measured {m:7.2f} ms  runtime-kernels {p:7.2f} ({p / m - 1:+6.1%})  "
              f"rules baseline {b:7.2f} ({b / m - 1:+6.1%})  retest {t:+6.1%}", flush=True)
    summary = {"all": {"runtime": scores(err_rt), "baseline": scores(err_base), "retest": scores(retest)}}
    for source in sources:
        idx = [k for k, s in enumerate(origin) if s == source]
        summary[source] = {"runtime": scores(err_rt[idx]), "baseline": scores(err_base[idx]),
                           "retest": scores(retest[idx])}
    trained_on = ", ".join(f"{space} {style}" for space, style, _ in TRAINING)
    print(f"\nkernel-rf trained only on hwprof data (cpu: {trained_on}; drift-corrected); "
          "test-retest = first vs second half of the rounds")
    print(f"{'source':11s} {'n':>3s} | {'runtime ±10%':>12s} {'signed':>7s} | {'baseline ±10%':>13s} {'signed':>7s} | "
          f"{'retest ±10%':>11s} {'retest |d|':>10s}")
    for source, s in summary.items():
        n = len(names) if source == "all" else origin.count(source)
        print(f"{source:11s} {n:3d} | {s['runtime']['within_10pct']:12.0%} {s['runtime']['mean_signed']:+7.1%} | "
              f"{s['baseline']['within_10pct']:13.0%} {s['baseline']['mean_signed']:+7.1%} | "
              f"{s['retest']['within_10pct']:11.0%} {s['retest']['mape']:10.1%}")
    terciles = size_terciles(measured, {"runtime": err_rt, "baseline": err_base, "retest": retest})
    print("\nby network size (thirds of the test networks by measured latency)")
    for t in terciles:
        print(f"{t['tercile']:6s} {t['n']:3d} nets {t['ms_range'][0]:6.2f}-{t['ms_range'][1]:6.2f} ms | runtime "
              f"{t['runtime']['within_10pct']:4.0%} {t['runtime']['mean_signed']:+6.1%} | baseline "
              f"{t['baseline']['within_10pct']:4.0%} {t['baseline']['mean_signed']:+6.1%} | retest "
              f"{t['retest']['within_10pct']:4.0%} |d| {t['retest']['mape']:4.1%}")
    flagged = np.array([bool(notes) for notes in coverage])
    summary["coverage"] = {"flagged": int(flagged.sum()),
                           "flagged_runtime": scores(err_rt[flagged]) if flagged.any() else None,
                           "unflagged_runtime": scores(err_rt[~flagged]) if (~flagged).any() else None}
    print(f"\nkernel-rf says {flagged.sum()} of {len(flagged)} test networks extrapolate beyond its training data"
          + "".join(f"; {name} {np.mean(np.abs(err_rt[m]) <= 0.10):.0%} within ±10% ({np.mean(err_rt[m]):+.1%})"
                    for name, m in (("those", flagged), ("the rest", ~flagged)) if m.any()))
    if args.plot:
        plot_by_size(Path(args.plot), measured, err_rt, origin)
        print(f"error against size: {args.plot}")
    ok = (summary["all"]["runtime"]["within_10pct"] >= 0.95 and abs(summary["all"]["runtime"]["mean_signed"]) <= 0.03
          and all(summary[s]["runtime"]["within_10pct"] >= 0.90 for s in sources)
          and terciles[0]["runtime"]["within_10pct"] >= 0.90
          and all(abs(t["runtime"]["mean_signed"]) <= 0.03 for t in terciles))
    print("target (>= 95% within ±10% overall, >= 90% per source and in the smallest third, mean signed within ±3% "
          f"overall and per third): {'OK' if ok else 'MISSED'}")
    if args.accuracy_only:
        emit("byom", {"summary": summary, "terciles": terciles, "models": rows, "target_met": ok}, args.json)
        return

    # same architecture, hwprof's form vs torch's exports
    space = get_space("ofa")
    arch_rng = np.random.default_rng(7)
    archs = [space.sample(arch_rng) for _ in range(args.ratio_networks)]
    forms = {style: [build_model(a, style) for a in archs] for style in ("hwprof", "torch", "torch-manual")}
    flat = [m for style in forms for m in forms[style]]
    n = len(archs)
    ratios = {}
    for device in [d for d in args.form_devices.split(",") if d]:
        rounds = ROUNDS if device == "cpu" else ROUNDS // 2  # a ratio of medians needs fewer than an accuracy claim
        print(f"\nmeasuring {len(archs)} ofa networks in three graph forms on {device}, {rounds} round-robin rounds",
              flush=True)
        cache = root / ("form-timings.json" if device == "cpu" else f"form-timings-{device.replace(':', '-')}.json")
        lat, _, _ = timed(flat, nominal if device == "cpu" else None, cache,
                          [f"{style}-{a.hash}" for style in forms for a in archs], device, rounds)
        by_style = {style: lat[k * n:(k + 1) * n] for k, style in enumerate(forms)}
        for style in ("torch", "torch-manual"):
            r = by_style[style] / by_style["hwprof"]
            ratios[f"{device} {style}"] = {"median": float(np.median(r)), "min": float(r.min()), "max": float(r.max())}
            print(f"{style:13s} / hwprof latency on {device}: median {np.median(r):.2f}x, "
                  f"range {r.min():.2f}-{r.max():.2f}x", flush=True)

    # advise --fix on the torch-manual exports
    print("\nhwprof advise --fix on the torch-manual exports (first 5)", flush=True)
    fixes = []
    for model in forms["torch-manual"][:5]:
        result = fix(model)
        before, after = before_after([model, result.model], "cpu", rounds=3, min_time_s=0.1)
        fixes.append({"applied": result.applied, "max_abs_diff": result.max_abs_diff, "speedup": before / after})
        print(f"  applied {result.applied}, outputs within {result.max_abs_diff:.1e}: "
              f"{before:.2f} -> {after:.2f} ms ({before / after:.2f}x)", flush=True)
    emit("byom", {"summary": summary, "terciles": terciles, "models": rows, "style_ratios": ratios, "advise_fix": fixes,
                  "target_met": ok}, args.json)


if __name__ == "__main__":
    main()
