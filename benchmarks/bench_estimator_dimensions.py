"""Which search dimensions each accuracy estimator's score responds to (measured, not assumed).

For N random ``ofa`` networks, one dimension at a time is changed (resolution
128 <-> 224; depth: one block more or less in a stage; kernel: 3 <-> 7 in one
block; expand: 3 <-> 6 in one block) and both networks are scored. A score
"responds" to a dimension when it changes for (nearly) every such pair
("partly" when for 20-90% of them, as a short-training accuracy on a small
validation set, which often ties); the table gives the share of pairs whose
score changed and the mean change in units of the score's spread over the N
networks.

Estimators: synflow and naswot as searches use them (at 128 px), naswot at
each network's own resolution, the short-training estimator on the bundled
digits (written to an image folder here; every network trained at 32 px), and
an accuracy predictor fitted on pairs that vary resolution (their labels are
naswot-at-own-resolution scores of those networks: computed, and not an
accuracy; the point is only what the fitted model can respond to). Each row
also gives the estimator's ``sees`` declaration, which must agree.

    python -m benchmarks.bench_estimator_dimensions [--networks 50] [--train-networks 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import emit
from nas.accuracy.predictor import AccuracyPredictorEstimator
from nas.accuracy.proxies import NaswotProxy, SynflowProxy
from nas.spaces import get_space

DIMENSIONS = ("resolution", "depth", "kernel", "expand")


def variant(space, genes: list[int], dimension: str, rng: np.random.Generator) -> list[int] | None:
    """``genes`` with only ``dimension`` changed (None when this network offers no such change)."""
    names = [v.name for v in space.variables]
    out = list(genes)
    if dimension == "resolution":
        r = names.index("resolution")
        out[r] = 0 if genes[r] == len(space.variables[r].options) - 1 else len(space.variables[r].options) - 1
        return out
    layers = [i for i, v in enumerate(space.variables) if v.kind == "layer" and genes[i] != v.skip_index]
    if dimension == "depth":
        for group in rng.permutation(len(space.skip_groups)):
            members = space.skip_groups[group]
            kept = [i for i in members if genes[i] != space.variables[i].skip_index]
            skipped = [i for i in members if genes[i] == space.variables[i].skip_index]
            if skipped and kept:  # one block more, a copy of the last kept one
                out[skipped[0]] = genes[kept[-1]]
                return out
            if len(kept) > 1:
                out[kept[-1]] = space.variables[kept[-1]].skip_index
                return out
        return None
    i = int(rng.choice(layers))
    v = space.variables[i]
    label = v.labels[genes[i]]
    parts = {p[0]: p[1:] for p in label.split("_")}  # "k5_e4" -> {"k": "5", "e": "4"}
    if dimension == "kernel":
        parts["k"] = "7" if parts["k"] == "3" else "3"
    else:
        parts["e"] = "6" if parts["e"] == "3" else "3"
    target = "_".join(f"{k}{parts[k]}" for k in ("k", "e"))
    if target not in v.labels:
        return None
    out[i] = v.labels.index(target)
    return out


def respond(estimator, space, networks: list[list[int]], seed: int) -> dict:
    rng = np.random.default_rng(seed)
    base_scores = estimator.score([space.to_arch(space.canonical(tuple(g))) for g in networks])
    spread = float(np.std(base_scores)) or 1.0
    out = {}
    for dimension in DIMENSIONS:
        pairs = [(g, variant(space, g, dimension, rng)) for g in networks]
        pairs = [(a, b) for a, b in pairs if b is not None]
        first = estimator.score([space.to_arch(space.canonical(tuple(a))) for a, _ in pairs])
        second = estimator.score([space.to_arch(space.canonical(tuple(b))) for _, b in pairs])
        changed = np.abs(second - first) > 1e-9 * np.maximum(1.0, np.abs(first))
        out[dimension] = {"pairs": len(pairs), "changed": float(changed.mean()),
                          "mean_abs_change_in_spreads": float(np.mean(np.abs(second - first)) / spread),
                          "responds": bool(changed.mean() >= 0.9)}
    return out


def digits_folder(root: Path) -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    for i, (img, label) in enumerate(zip(d.images[:600], d.target[:600])):
        folder = root / f"digit{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 16).clip(0, 255).astype(np.uint8)).convert("RGB").save(folder / f"{i}.png")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", type=int, default=50)
    parser.add_argument("--train-networks", type=int, default=8, help="networks for the (slow) train estimator")
    parser.add_argument("--json")
    args = parser.parse_args()
    space = get_space("ofa")
    rng = np.random.default_rng(0)
    networks = [list(space.sample_genes(rng)) for _ in range(args.networks)]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        estimators = {
            "synflow (128 px, search default)": SynflowProxy(use_cache=False),
            "naswot (128 px, search default)": NaswotProxy(use_cache=False),
            "naswot (own resolution)": NaswotProxy(resolution=None, use_cache=False),
        }
        labelled = [space.to_arch(space.canonical(tuple(g))) for g in networks]
        labels = estimators["naswot (own resolution)"].score(labelled)
        pairs = Path(tmp) / "pairs.jsonl"
        pairs.write_text("".join(json.dumps({"arch": json.loads(a.to_json()), "accuracy": float(s)}) + "\n"
                                 for a, s in zip(labelled, labels)))
        estimators["predictor (pairs vary resolution)"] = AccuracyPredictorEstimator(pairs)
        from nas.accuracy.train import ShortTrainingEstimator

        trainer = ShortTrainingEstimator(digits_folder(Path(tmp) / "digits"), epochs=1, resolution=32)
        trainer.use_cache = False
        estimators["train (digits, 32 px)"] = trainer
        for name, est in estimators.items():
            nets = networks[: args.train_networks] if name.startswith("train") else networks
            start = time.perf_counter()
            result = respond(est, space, nets, seed=1)
            seconds = time.perf_counter() - start
            declared = est.sees(space)
            rows[name] = {"dimensions": result, "seconds": seconds, "networks": len(nets),
                          "declares_resolution": "resolution" in declared}
            verdict = lambda r: "YES" if r["responds"] else "partly" if r["changed"] >= 0.2 else "no"  # noqa: E731
            line = "  ".join(f"{d} {verdict(r)} ({r['changed']:.0%}, {r['mean_abs_change_in_spreads']:.2f}sd)"
                             for d, r in result.items())
            print(f"{name:36s} n={len(nets):3d} {seconds:6.1f}s  {line}  declares resolution: "
                  f"{'yes' if rows[name]['declares_resolution'] else 'no'}", flush=True)
            agrees = rows[name]["declares_resolution"] == result["resolution"]["responds"]
            rows[name]["declaration_agrees"] = agrees
            if not agrees:
                print(f"  WARNING: {name}'s declaration about resolution disagrees with the measurement")
    emit("estimator_dimensions", rows, args.json)


if __name__ == "__main__":
    main()
