"""Searchers, accuracy estimators and `nas search`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from devices import resolve
from hwprof.dataset import Dataset
from hwprof.errors import HwprofError
from hwprof.predictors import store
from hwprof.predictors.data import load_measurements
from hwprof.predictors.training import fit_on
from hwprof.profiling import measure_into
from nas.accuracy import create_estimator
from nas.accuracy.base import ScoreCache
from nas.accuracy.predictor import AccuracyPredictorEstimator
from nas.accuracy.proxies import NaswotProxy, SynflowProxy, at_resolution
from nas.searchers import Constraint, create_searcher
from nas.searchers.base import Candidate, hypervolume, non_dominated_sort, pareto_indices
from nas.searchers.hurricane import hardware_aware_space
from nas.spaces import get_space
from tests.conftest import run_cli, samples


class MacsScore:
    """Cheap deterministic stand-in estimator for searcher tests (a proxy, labelled so)."""

    name, kind, label = "log-macs", "proxy", "log-macs proxy"

    def score(self, archs):
        return np.log([a.macs for a in archs])


def _measured(tmp_path_factory, device: str, n: int = 150):
    path = tmp_path_factory.mktemp(device)
    measure_into(Dataset(path), resolve(device, seed=0), samples("ofa", n, seed=5), mode="both")
    return path


@pytest.fixture(scope="module")
def npu_dir(tmp_path_factory):
    return _measured(tmp_path_factory, "kirin-npu")


@pytest.fixture(scope="module")
def npu_lut(npu_dir):
    return fit_on("lut", load_measurements(npu_dir), fallback="kernel-rf")


@pytest.fixture(scope="module")
def dsp_lut(tmp_path_factory):
    return fit_on("lut", load_measurements(_measured(tmp_path_factory, "hexagon-dsp")), fallback="kernel-rf")


def test_pareto_and_hypervolume_on_known_points():
    lat = np.array([1.0, 2.0, 3.0, 2.5])
    score = np.array([1.0, 3.0, 4.0, 2.0])
    assert pareto_indices(lat, score) == [0, 1, 2]
    # reference (4, 0): 3*1 + 2*(3-1) + 1*(4-3) = 8
    assert hypervolume(lat, score, (4.0, 0.0)) == pytest.approx(8.0)
    fronts = non_dominated_sort(lat, score, np.array([0.0, 0.0, 0.5, 0.0]))
    assert sorted(fronts[0].tolist()) == [0, 1] and 2 in fronts[-1].tolist()


@pytest.mark.parametrize("name", ["random", "evolutionary", "hurricane"])
def test_searchers_respect_budget_constraint_and_seed(name, npu_lut):
    space = get_space("ofa")
    constraint = Constraint(4.0)
    result = create_searcher(name).search(space, npu_lut, MacsScore(), constraint, budget=120, seed=3)
    assert 0 < len(result.history) <= 120
    assert len({c.arch.hash for c in result.history}) == len(result.history)
    assert result.best is not None and result.best.latency_ms <= 4.0
    lat = np.array([c.latency_ms for c in result.pareto])
    assert np.all(np.diff(lat) >= 0) and np.all(np.diff([c.score for c in result.pareto]) > 0)
    again = create_searcher(name).search(space, npu_lut, MacsScore(), constraint, budget=120, seed=3)
    assert [c.arch.hash for c in again.history] == [c.arch.hash for c in result.history]


def test_evolution_beats_random_on_hypervolume(npu_lut):
    space = get_space("ofa")
    runs = {n: create_searcher(n).search(space, npu_lut, MacsScore(), Constraint(), budget=300, seed=0)
            for n in ("random", "evolutionary")}
    lat = np.concatenate([[c.latency_ms for c in r.history] for r in runs.values()])
    score = np.concatenate([[c.score for c in r.history] for r in runs.values()])
    ref = (float(lat.max()), float(score.min()))
    hv = {n: hypervolume(np.array([c.latency_ms for c in r.history]), np.array([c.score for c in r.history]), ref)
          for n, r in runs.items()}
    assert hv["evolutionary"] > hv["random"]


@pytest.mark.parametrize("stage1_early,stage2_from", [("median", "front"), ("cheapest", "winner")])
def test_hurricane_stages_hold_what_they_should(npu_lut, stage1_early, stage2_from):
    space = get_space("ofa")
    searcher = create_searcher("hurricane", stage1_early=stage1_early, stage2_from=stage2_from)
    result = searcher.search(space, npu_lut, MacsScore(), Constraint(4.0), budget=120, seed=1)
    late = {space.variables[i].name for i in range(space.n_variables)} & set(result.extra["stage1_layers"])
    late_idx = [i for i, v in enumerate(space.variables) if v.name in late]
    early_idx = [i for i, v in enumerate(space.variables) if v.kind == "layer" and v.name not in late]
    stage1 = [c for c in result.history if c.step < 100]
    stage2 = [c for c in result.history if c.step >= 100]
    assert stage1 and stage2
    assert len({tuple(c.arch.genes[i] for i in early_idx) for c in stage1}) == 1  # earlier layers held in stage 1
    stage1_late = {tuple(c.arch.genes[i] for i in late_idx) for c in stage1}
    stage2_late = {tuple(c.arch.genes[i] for i in late_idx) for c in stage2}
    assert stage2_late <= stage1_late  # stage 2 only changes the earlier layers
    if stage2_from == "winner":
        assert len(stage2_late) == 1
    with pytest.raises(HwprofError):
        create_searcher("hurricane", stage2_from="nope")


def test_hurricane_spaces_differ_per_device(npu_lut, dsp_lut):
    space = get_space("ofa")
    npu = hardware_aware_space(space, npu_lut)
    dsp = hardware_aware_space(space, dsp_lut)
    layers = [i for i, v in enumerate(space.variables) if v.kind == "layer"]
    assert all(len(npu[i]) <= 5 for i in layers)
    assert any(npu[i] != dsp[i] for i in layers)


def test_proxies_are_deterministic_finite_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("HWPROF_CACHE", str(tmp_path))
    archs = samples("ofa", 3, seed=1)
    for cls in (SynflowProxy, NaswotProxy):
        est = cls(workers=1)
        first = est.score(archs)
        assert np.all(np.isfinite(first)) and "proxy" in est.label
        monkeypatch.setattr(cls, "compute", lambda self, a: pytest.fail("cache missed"))
        np.testing.assert_array_equal(est.score(archs), first)
        assert ScoreCache(est).path.exists()
    assert at_resolution(archs[0], 128).resolution == 128


def test_accuracy_predictor_ranks_held_out_networks(tmp_path):
    space = get_space("ofa")
    archs = samples("ofa", 200, seed=2)
    acc = [0.6 + 0.02 * np.log(a.macs / 1e6) + 0.001 * a.resolution / 10 for a in archs]
    path = tmp_path / "acc.jsonl"
    path.write_text("".join(json.dumps({"arch": json.loads(a.to_json()), "accuracy": y}) + "\n"
                            for a, y in zip(archs[:150], acc[:150])))
    est = AccuracyPredictorEstimator(path)
    assert est.kind == "predicted accuracy" and "150 user pairs" in est.label
    rho = stats.spearmanr(est.score(archs[150:]), acc[150:]).statistic
    assert rho > 0.8
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"arch": {"nope": 1}, "accuracy": 0.5}\n')
    with pytest.raises(HwprofError, match="bad.jsonl line 1"):
        AccuracyPredictorEstimator(bad)
    with pytest.raises(HwprofError, match="needs --accuracy-data"):
        create_estimator("predictor")
    assert space.name == "ofa"


def test_short_training_gives_an_accuracy_in_unit_range(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("HWPROF_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for c, colour in enumerate(((250, 20, 20), (20, 20, 250))):
        (tmp_path / "imgs" / f"class{c}").mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(np.array(colour) + rng.normal(0, 20, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "imgs" / f"class{c}" / f"{i}.png")
    est = create_estimator("train", data=tmp_path / "imgs", epochs=1, resolution=32)
    score = est.score(samples("ofa", 1, seed=0))
    assert 0.0 <= score[0] <= 1.0 and "short-training accuracy" in est.label


@pytest.fixture
def npu_pred(npu_dir, npu_lut, tmp_path, monkeypatch):
    """The npu lookup table saved as a predictor file, with an empty cache for the CLI."""
    monkeypatch.setenv("HWPROF_CACHE", str(tmp_path / "cache"))
    pred = tmp_path / "npu.pred"
    npu_lut.provenance_ = load_measurements(npu_dir).provenance()
    store.save(npu_lut, pred)
    return pred


def test_cli_search_writes_outputs_and_is_reproducible(npu_pred, tmp_path):
    pred = npu_pred
    args = ("nas", "search", "--space", "ofa", "--target", "kirin-npu", "--predictor", str(pred), "--budget", "40",
            "--latency-ms", "4", "--json")
    first = json.loads(run_cli(*args, "--out", str(tmp_path / "a"), check=True).stdout)
    second = json.loads(run_cli(*args, "--out", str(tmp_path / "b"), check=True).stdout)
    assert first["best"]["arch_hash"] == second["best"]["arch_hash"]
    assert first["simulated"] is True and first["score_kind"] == "proxy" and "proxy" in first["score_label"]
    best = first["best"]
    assert best["predicted_latency_ms"] <= 4 and best["measured_latency_ms"] <= 4 * 1.1
    assert abs(best["prediction_error"]) < 0.1
    assert best["measured_vs_constraint"] == pytest.approx(best["measured_latency_ms"] / 4 - 1)
    for name in ("best.json", "best.onnx", "pareto.csv", "history.parquet", "pareto.png", "summary.json",
                 "convergence.png"):
        assert (tmp_path / "a" / name).stat().st_size > 0, name
    history = pd.read_parquet(tmp_path / "a" / "history.parquet")
    assert len(history) == first["evaluated"] <= 40
    curve = history["best_feasible_so_far"].dropna().to_numpy()
    assert len(curve) and np.all(np.diff(curve) >= 0) and curve[-1] == pytest.approx(best["score"])


def test_cli_search_bad_inputs(npu_pred, tmp_path):
    pred = npu_pred
    base = ("nas", "search", "--space", "ofa", "--predictor", str(pred), "--budget", "10", "--out", str(tmp_path / "o"))
    cases = {
        "no network meets 0.01 ms": (*base, "--target", "kirin-npu", "--latency-ms", "0.01"),
        "unknown searcher": (*base, "--target", "kirin-npu", "--searcher", "magic"),
        "fitted for device 'kirin-npu'": (*base, "--target", "hexagon-dsp"),
        "unknown device": (*base, "--target", "nope"),
        "needs --accuracy-data": (*base, "--target", "kirin-npu", "--estimator", "predictor"),
    }
    for expected, args in cases.items():
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert not (tmp_path / "o").exists()


def test_proxies_at_a_fixed_resolution_cannot_see_it_and_say_so():
    space = get_space("ofa")
    arch = samples("ofa", 1, seed=11)[0]
    genes = list(space.genes_of(arch))
    r = [v.name for v in space.variables].index("resolution")
    low, high = list(genes), list(genes)
    low[r], high[r] = 0, len(space.variables[r].options) - 1
    pair = [space.to_arch(low), space.to_arch(high)]
    fixed = SynflowProxy(use_cache=False, workers=1)
    assert "resolution" not in fixed.sees(space) and "128 px" in fixed.blind_reason("resolution")
    assert fixed.score(pair)[0] == fixed.score(pair)[1]  # measured, not assumed: the score cannot tell them apart
    own = NaswotProxy(resolution=None, use_cache=False, workers=1)
    assert "resolution" in own.sees(space)
    assert own.score(pair)[0] != own.score(pair)[1]


def test_hold_unseen_holds_resolution_at_the_deployment_value_and_fix_overrides():
    from nas.dimensions import hold_unseen, parse_fix

    space = get_space("ofa")
    held_space, held = hold_unseen(space, SynflowProxy(use_cache=False))
    assert [(h.variable, h.value) for h in held] == [("resolution", "224")]
    rng = np.random.default_rng(0)
    assert {held_space.sample(rng).resolution for _ in range(20)} == {224}
    fixed_space, held = hold_unseen(space, SynflowProxy(use_cache=False), parse_fix(["resolution=160"], space))
    assert [(h.variable, h.value, h.reason) for h in held] == [("resolution", "160", "fixed with --fix")]
    assert {fixed_space.sample(rng).resolution for _ in range(20)} == {160}
    same, nothing = hold_unseen(space, NaswotProxy(resolution=None))
    assert same is space and nothing == []
    with pytest.raises(HwprofError, match="not an option of 'resolution'") as excinfo:
        parse_fix(["resolution=100"], space)
    assert excinfo.value.hint.startswith("allowed values: 128, 132")
    with pytest.raises(HwprofError, match="no variable 'width'"):
        parse_fix(["width=1"], space)


def test_accuracy_predictor_sees_what_its_pairs_vary(tmp_path):
    space = get_space("ofa")
    archs = samples("ofa", 30, seed=3)
    r = [v.name for v in space.variables].index("resolution")
    at_224 = [space.to_arch([*space.genes_of(a)[:r], len(space.variables[r].options) - 1, *space.genes_of(a)[r + 1:]])
              for a in archs]
    for name, pairs in (("varied", archs), ("fixed", at_224)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"arch": json.loads(a.to_json()), "accuracy": float(np.log(a.macs))})
                                + "\n" for a in pairs))
        est = AccuracyPredictorEstimator(path)
        assert ("resolution" in est.sees(space)) == (name == "varied")


@pytest.mark.slow
def test_cli_search_holds_and_reports_dimensions(npu_pred, tmp_path):
    pred = npu_pred
    args = ("nas", "search", "--space", "ofa", "--target", "kirin-npu", "--predictor", str(pred), "--budget", "30",
            "--latency-ms", "6", "--no-measure", "--json")
    default = json.loads(run_cli(*args, "--out", str(tmp_path / "a"), check=True).stdout)
    assert [h["variable"] for h in default["held"]] == ["resolution"]
    assert "synflow proxy" in default["held"][0]["reason"] and default["held"][0]["value"] == "224"
    assert set(default["front_distribution"]["resolution"]) == {"224"}
    assert sum(default["front_layer_tokens"].values()) > 0
    chosen = json.loads(run_cli(*args, "--fix", "resolution=176", "--out", str(tmp_path / "b"), check=True).stdout)
    assert set(chosen["front_distribution"]["resolution"]) == {"176"}
    assert chosen["held"][0]["reason"] == "fixed with --fix"
    proc = run_cli(*args, "--fix", "resolution=100", "--out", str(tmp_path / "c"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "allowed values" in lines[0], proc.stderr
    assert not (tmp_path / "c").exists()


def test_search_job_says_when_the_constraint_is_above_every_network(npu_pred, tmp_path):
    from rich.console import Console

    from nas.search_job import run_search_job
    from nas.search_report import search_table

    job = run_search_job("kirin-npu", "ofa", latency_ms=1000.0, predictor_path=npu_pred, budget=12,
                         measure_best=False, out=tmp_path / "o", quiet=True)
    fastest, slowest = job.summary["feasible_range_ms"]
    assert slowest < 1000.0 and job.summary["constraint_binding"] is False
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["constraint_binding"] is False
    console = Console(record=True, width=200)
    console.print(search_table(job.summary, job.result, job.space_name, job.label, job.simulated,
                               job.predictor_name, job.predictor_source, job.out))
    text = console.export_text()
    assert "constraint not binding" in text and "resolution = 224" in text and "SIMULATED" in text
    slack = job.summary["searched"]["unused_budget"]  # every network meets 1000 ms: the winner is far under it
    assert slack["fraction"] > 0.9 and "unused latency budget" in text


def test_unused_budget_says_what_the_search_scored_between_the_winner_and_the_target():
    from nas.search_job import unused_budget
    from nas.searchers.base import Candidate, Constraint, SearchResult

    arch = get_space("ofa").sample(np.random.default_rng(0))
    scored = [Candidate(arch, 7.0, 5.0, 0, 0), Candidate(arch, 8.0, 4.0, 0, 1), Candidate(arch, 9.0, 4.5, 0, 2),
              Candidate(arch, 12.0, 9.0, 0, 3)]

    def result(target):
        return SearchResult("evolutionary", "ofa", "proxy", Constraint(target), scored, scored, scored[0], 0.0,
                            (0.0, 0.0), 0.0)

    slack = unused_budget(result(10.0), 10.0)  # 30 % under: the two scored at 8 and 9 ms score lower
    assert slack == {"fraction": pytest.approx(0.3), "networks_closer": 2, "best_score_closer": 4.5}
    assert unused_budget(result(7.5), 7.5) is None  # within 10 % of the target


@pytest.mark.parametrize("bad,expected", [("resolution=100", "allowed values"), ("depth=2", "no variable 'depth'"),
                                          ("resolution", "not NAME=VALUE")])
def test_bad_fix_names_what_is_allowed(bad, expected):
    from nas.dimensions import parse_fix

    with pytest.raises(HwprofError) as err:
        parse_fix([bad], get_space("ofa"))
    assert expected in err.value.one_line()


def test_default_searcher_under_a_target_spends_every_evaluation_below_it(npu_lut):
    space = get_space("ofa")
    constraint = Constraint(4.0)
    result = create_searcher("evolutionary").search(space, npu_lut, MacsScore(), constraint, budget=150, seed=1)
    assert result.extra["mode_used"] == "constrained" and len(result.history) == 150
    assert all(c.latency_ms <= 4.0 for c in result.history)
    pareto_mode = create_searcher("evolutionary", mode="pareto").search(space, npu_lut, MacsScore(), constraint,
                                                                        budget=150, seed=1)
    assert pareto_mode.extra["mode_used"] == "pareto"
    whole = create_searcher("evolutionary").search(space, npu_lut, MacsScore(), Constraint(), budget=60, seed=1)
    assert whole.extra["mode_used"] == "pareto"
    # without a target the default is NSGA-II itself: the same networks, so the same whole front
    nsga2 = create_searcher("evolutionary", mode="pareto").search(space, npu_lut, MacsScore(), Constraint(),
                                                                  budget=60, seed=1)
    assert [c.arch.hash for c in whole.history] == [c.arch.hash for c in nsga2.history]
    assert whole.hypervolume == nsga2.hypervolume


def test_best_so_far_curve():
    from nas.searchers.constrained import best_so_far

    arch = samples("ofa", 1, seed=0)[0]
    history = [Candidate(arch, ms, s, 0, i) for i, (ms, s) in enumerate([(5.0, 9.0), (3.0, 1.0), (2.0, 2.0),
                                                                          (3.5, 1.5)])]
    curve = best_so_far(history, Constraint(4.0))
    assert np.isnan(curve[0]) and curve[1:].tolist() == [1.0, 2.0, 2.0]
    assert best_so_far(history, Constraint()).tolist() == [9.0, 9.0, 9.0, 9.0]


def test_score_surrogate_is_an_exact_one_hot_ridge_on_additive_scores():
    from nas.searchers.constrained import OneHotRidge

    space = get_space("ofa")
    rng = np.random.default_rng(0)
    genes = np.array([space.sample_genes(rng, space.option_mask()) for _ in range(400)])
    sizes = [len(v.options) for v in space.variables]
    weights = [rng.normal(size=n) for n in sizes]
    scores = np.array([sum(w[g] for w, g in zip(weights, row)) for row in genes])
    model = OneHotRidge(sizes, alpha=1e-6).fit(genes[:300], scores[:300])
    np.testing.assert_allclose(model.predict(genes[300:]), scores[300:], atol=1e-3)


@pytest.mark.parametrize("candidates", [1, 32])
def test_constrained_search_with_or_without_surrogate_is_feasible_and_reproducible(npu_lut, candidates):
    space = get_space("ofa")
    constraint = Constraint(4.0)
    runs = [create_searcher("evolutionary", surrogate_candidates=candidates, population=40).search(
        space, npu_lut, MacsScore(), constraint, budget=120, seed=3) for _ in range(2)]
    assert [c.arch.hash for c in runs[0].history] == [c.arch.hash for c in runs[1].history]
    assert len(runs[0].history) == 120 and all(c.latency_ms <= 4.0 for c in runs[0].history)
    assert len({c.arch.hash for c in runs[0].history}) == 120  # never scores a network twice
    with pytest.raises(HwprofError, match="surrogate_candidates"):
        create_searcher("evolutionary", surrogate_candidates=0)
