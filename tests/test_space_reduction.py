"""Space reduction (Mills et al.), reduced spaces as --space, progressive shrinking, ofa-width (GoldenNAS)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from devices import resolve
from hwprof.dataset import Dataset
from hwprof.errors import HwprofError
from hwprof.predictors.data import load_measurements
from hwprof.predictors.training import fit_on
from hwprof.profiling import measure_into
from hwprof.space_profile import SpaceProfile
from nas.space_reduction import capacity_deltas, dominated_options, reduce_space, score_contributions
from nas.accuracy.base import AccuracyEstimator
from nas.searchers import Constraint, create_searcher
from nas.spaces import get_space
from nas.spaces.reduced import ReducedSpace, load_reduced_space
from tests.conftest import run_cli


class MacsScore(AccuracyEstimator):
    """A cheap deterministic score for search tests: log MACs (not an accuracy)."""

    name = "macs"
    label = "log MACs (test score)"
    kind = "proxy"

    def score(self, archs):
        return np.log10([a.macs for a in archs])


@pytest.fixture(scope="module")
def ofa_predictor(tmp_path_factory):
    path = tmp_path_factory.mktemp("kirin-ofa")
    sp = get_space("ofa")
    rng = np.random.default_rng(0)
    measure_into(Dataset(path), resolve("kirin-npu", seed=0), [sp.sample(rng) for _ in range(120)], mode="e2e")
    return fit_on("additive", load_measurements(path))


def _reduced_ofa() -> ReducedSpace:
    base = get_space("ofa")
    mask = base.option_mask()
    for i, v in enumerate(base.variables):
        if v.kind == "layer":  # keep kernel 3 only (and skip)
            mask[i] = [j for j, lab in enumerate(v.labels) if lab.startswith("k3") or lab == "skip"]
    return ReducedSpace(base, mask)


def test_dominated_options_keep_the_pareto_set():
    latency = np.array([1.0, 2.0, 2.0, 3.0])
    macs = np.array([10.0, 20.0, 15.0, 12.0])
    params = np.array([1.0, 2.0, 2.0, 3.0])
    # 2 is beaten by 1 (same latency, more MACs, same params); 3 has the most params, so it stays
    assert dominated_options(latency, [macs, params], [0, 1, 2, 3]) == {2}
    assert dominated_options(latency, [macs, params], [0, 3]) == set()


def test_reduce_space_drops_what_the_profile_shows_dominated():
    sp = get_space("ofa")
    from hwprof.space_profile import profile_anchor

    macs, params = capacity_deltas(sp, profile_anchor(sp))
    rows = []
    layers = [v for v in sp.variables if v.kind == "layer"]
    for pos, v in enumerate(layers):
        for j, label in enumerate(v.labels):
            # a device on which every kernel-7 choice is slower than k3_e6, which has more MACs and params
            cost = 0.0 if label == "skip" else (0.5 if label.startswith("k7") else 0.01 * macs[pos][j] / max(macs[pos]))
            rows.append({"position": v.name, "stage": v.name.split(".")[0], "choice": label, "contribution_ms": cost,
                         "ci_low_ms": cost, "ci_high_ms": cost, "block_ms": np.nan, "block_delta_ms": np.nan})
    profile = SpaceProfile("ofa", "kirin-npu", True, 100, pd.DataFrame(rows), None)
    reduced, why = reduce_space(sp, profile)
    for i, v in enumerate(sp.variables):
        kept = [v.labels[j] for j in reduced.mask[i]]
        if v.kind != "layer":
            assert len(kept) == len(v.options)
            continue
        assert not any(lab in kept for lab in ("k7_e3", "k7_e4")), (v.name, kept)
        assert "k3_e6" in kept and ("skip" in kept) == (v.skip_index is not None)
        assert {d["dropped"] for d in why[v.name]} >= {"k7_e3", "k7_e4"}
    assert reduced.size() < sp.size()


def test_score_contributions_recover_additive_effects_and_drive_the_reduction():
    sp = get_space("ofa")
    rng = np.random.default_rng(0)
    archs = [sp.sample(rng) for _ in range(400)]
    layers = [i for i, v in enumerate(sp.variables) if v.kind == "layer"]
    # a score in which kernel 5 gives most and kernel 7 least, at every position
    effect = {"k3": 1.0, "k5": 2.0, "k7": 0.0}
    scores = np.array([sum(effect.get(sp.variables[i].labels[a.genes[i]][:2], 0.0) for i in layers) for a in archs])
    gains = score_contributions(sp, archs, scores)
    for g, i in zip(gains, layers):
        labels = sp.variables[i].labels
        assert g[labels.index("k5_e3")] > g[labels.index("k3_e3")] > g[labels.index("k7_e3")]
    rows = [{"position": sp.variables[i].name, "stage": "s", "choice": lab, "contribution_ms": 0.0 if lab == "skip"
             else {"k3": 0.1, "k5": 0.2, "k7": 0.3}[lab[:2]], "ci_low_ms": 0.0, "ci_high_ms": 0.0,
             "block_ms": np.nan, "block_delta_ms": np.nan} for i in layers for lab in sp.variables[i].labels]
    profile = SpaceProfile("ofa", "kirin-npu", True, 400, pd.DataFrame(rows), None)
    reduced, _ = reduce_space(sp, profile, gains)
    for i in layers:  # k7 is slowest and gives least: dropped; k3 (fastest) and k5 (gives most) stay
        kept = {sp.variables[i].labels[j][:2] for j in reduced.mask[i]}
        assert "k7" not in kept and {"k3", "k5"} <= kept


def test_reduced_space_samples_and_evolves_within_its_options(ofa_predictor, tmp_path):
    reduced = _reduced_ofa()
    path = tmp_path / "reduced.json"
    path.write_text(json.dumps(reduced.to_dict(device="kirin-npu")))
    loaded = get_space(str(path))
    assert isinstance(loaded, ReducedSpace) and loaded.mask == reduced.mask and loaded.name == "ofa"
    rng = np.random.default_rng(1)
    for _ in range(50):
        genes = loaded.sample_genes(rng)
        assert loaded.contains(genes) and loaded.contains(loaded.mutate_genes(genes, rng, 0.5))
    result = create_searcher("evolutionary", population=12).search(loaded, ofa_predictor, MacsScore(),
                                                                     Constraint(), budget=60, seed=0)
    assert all(loaded.contains(c.arch.genes) for c in result.history)
    assert result.history[0].arch.space == "ofa"  # networks of the base space: base predictors apply
    hurricane = create_searcher("hurricane", population=12).search(loaded, ofa_predictor, MacsScore(),
                                                                    Constraint(), budget=60, seed=0)
    assert all(loaded.contains(c.arch.genes) for c in hurricane.history)


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"), ("{not json", "not valid JSON"), ('{"format": "x"}', "not a reduced-space file"),
    ('{"format": "hwprof-reduced-space", "version": 1, "base": "ofa", "keep": {"s1.b0": ["k9_e9"]}}',
     "does not offer"),
    ('{"format": "hwprof-reduced-space", "version": 1, "base": "ofa", "keep": {"s1.b2": ["k3_e3", "skip"]}}',
     "interchangeable"),
])
def test_bad_reduced_space_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "space.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(HwprofError, match=message):
        load_reduced_space(path)


@pytest.mark.slow
def test_cli_reduce_space_then_search_it(tmp_path, ofa_predictor):
    from hwprof.predictors import store

    out = tmp_path / "reduced.json"
    proc = run_cli("hwprof", "reduce-space", "--space", "ofa", "--device", "hexagon-dsp", "--samples", "60",
                   "--bootstrap", "3", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["simulated"] and doc["device"] == "hexagon-dsp" and doc["size_log10"] < doc["base_size_log10"]
    assert doc["removed"] and json.loads(out.read_text())["keep"] == doc["keep"]
    pred = tmp_path / "npu.pred"
    store.save(ofa_predictor, pred)
    search = run_cli("nas", "search", "--space", str(out), "--target", "kirin-npu", "--predictor", str(pred),
                     "--budget", "30", "--shrink", "--no-measure", "--out", str(tmp_path / "s"), "--json")
    assert search.returncode == 0, search.stderr
    assert "removed" in json.loads(search.stdout)["extra"]["shrink"]
    best = json.loads(search.stdout)["best"]["genes"]
    for name, label in best.items():
        assert label in doc["keep"][name]
    bad = run_cli("nas", "search", "--space", str(tmp_path / "missing.json"), "--target", "kirin-npu")
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli("nas", "search", "--space", "ofa-width", "--target", "kirin-npu", "--searcher", "single-path",
                  "--latency-ms", "4", "--out", str(tmp_path / "sp"))  # refused before any predictor is built
    assert bad.returncode == 2 and "cannot represent" in bad.stderr and "predictor" not in bad.stderr
    bad = run_cli("nas", "search", "--space", "ofa", "--target", "kirin-npu", "--searcher", "random", "--shrink")
    assert bad.returncode == 2 and "--shrink applies to --searcher evolutionary" in bad.stderr


def test_shrink_removes_dominated_choices_and_records_them(ofa_predictor):
    sp = get_space("ofa")
    searcher = create_searcher("evolutionary", population=20, shrink=True)
    result = searcher.search(sp, ofa_predictor, MacsScore(), Constraint(), budget=300, seed=0)
    shrink = result.extra["shrink"]
    assert shrink["removed"], "nothing was shrunk"
    names = [v.name for v in sp.variables]
    for r in shrink["removed"]:
        i = names.index(r["variables"][0])
        j = sp.variables[i].labels.index(r["option"])
        later = [c for c in result.history if c.step > r["generation"] + 1]
        assert all(c.arch.genes[i] != j for c in later)  # never proposed again
        assert r["option"] not in shrink["kept"][r["variables"][0]]
    again = create_searcher("evolutionary", population=20, shrink=True).search(
        sp, ofa_predictor, MacsScore(), Constraint(), budget=300, seed=0)
    assert again.extra["shrink"] == shrink  # seeded


def test_ofa_width_space_builds_and_predictors_fit(tmp_path):
    from hwprof.build_onnx import build_onnx
    from hwprof.build_torch import build_torch

    sp = get_space("ofa-width")
    assert not sp.separable and len(sp.variables[1].options) == 27
    rng = np.random.default_rng(0)
    archs = [sp.sample(rng) for _ in range(80)]
    widths = {b.c_out for a in archs for b in a.blocks if b.op == "mbconv"}
    assert len(widths) > 5  # per-block widths (0.75x, 1x, 1.25x of a stage) beyond ofa's five stage widths
    build_onnx(archs[0])
    import torch

    net = build_torch(sp.to_arch(archs[0].genes))
    assert net(torch.zeros(1, 3, 128, 128)).shape[-1] == 1000
    measure_into(Dataset(tmp_path / "d"), resolve("myriad-vpu", seed=0), archs, mode="both")
    data = load_measurements(tmp_path / "d")
    test = [sp.sample(np.random.default_rng(9)) for _ in range(5)]
    for model in ("flops-linear", "additive", "lut", "kernel-rf", "gbm"):
        pred = fit_on(model, data, **({"fallback": "kernel-rf"} if model == "lut" else {}))
        values = pred.predict(test)
        assert np.all(np.isfinite(values)) and np.all(values > 0), model
    table = fit_on("additive", data).cost_table(sp)
    assert table.exact is False


def test_single_path_refuses_spaces_it_cannot_represent():
    from nas.supernet import supernet_layout

    with pytest.raises(HwprofError, match="reduced"):
        supernet_layout(_reduced_ofa())
    with pytest.raises(HwprofError, match="cannot represent"):
        supernet_layout(get_space("ofa-width"))
