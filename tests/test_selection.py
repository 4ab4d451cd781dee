"""Choosing a predictor by cross-validation (`fit-predictor --model best`, real devices' cached default)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from devices import resolve
from hwprof.dataset import Dataset
from hwprof.errors import HwprofError
from hwprof.predictors.data import load_measurements
from hwprof.predictors.metrics import prediction_metrics
from hwprof.predictors.selection import fold_indices, select_predictor
from hwprof.predictors.training import fit_on
from hwprof.profiling import measure_into
from tests.conftest import measured_dir, run_cli, samples

FAST = ("flops-linear", "additive", "lut")


@pytest.fixture(scope="module")
def npu_dir(tmp_path_factory):
    return measured_dir(tmp_path_factory.mktemp("npu"), "kirin-npu", "ofa", 30, seed=1)


@pytest.fixture(scope="module")
def npu(npu_dir):
    return load_measurements(npu_dir)


def test_folds_cover_every_network_once_and_follow_the_seed():
    parts = fold_indices(23, 5, seed=3)
    assert sorted(np.concatenate(parts).tolist()) == list(range(23))
    assert sorted(len(p) for p in parts) == [4, 4, 5, 5, 5]
    assert all(np.array_equal(a, b) for a, b in zip(parts, fold_indices(23, 5, seed=3)))
    assert not all(np.array_equal(a, b) for a, b in zip(parts, fold_indices(23, 5, seed=4)))


def test_chooses_the_lowest_out_of_fold_error_and_the_figures_are_recomputable(npu):
    selection = select_predictor(npu, candidates=FAST, folds=4, seed=0)
    assert set(selection.scores) == set(FAST) and selection.folds == 4
    assert selection.name == min(selection.scores, key=lambda n: selection.scores[n]["mape"])
    assert all(m["n"] == len(npu.archs) for m in selection.scores.values())
    # kirin-npu is block-additive by construction: the block lookup must beat a MACs line out of fold
    assert selection.scores["lut"]["mape"] < selection.scores["flops-linear"]["mape"]
    predicted = np.empty(len(npu.archs))  # flops-linear's figure, fold by fold, by hand
    for held in fold_indices(len(npu.archs), 4, seed=0):
        rest = np.setdiff1d(np.arange(len(npu.archs)), held)
        predicted[held] = fit_on("flops-linear", npu.subset(rest), seed=0).predict(npu.subset(held).archs)
    assert selection.scores["flops-linear"]["mape"] == pytest.approx(
        prediction_metrics(npu.latency_ms, predicted)["mape"], rel=1e-9)
    again = select_predictor(npu, candidates=FAST, folds=4, seed=0)
    assert again.scores == selection.scores


def test_drift_is_corrected_to_one_speed_for_every_fold(npu):
    """Networks measured while the machine ran at varying speed score as if measured at one speed."""
    speed = np.random.default_rng(0).uniform(0.8, 1.25, len(npu.archs))
    drifting = replace(npu, latency_ms=npu.latency_ms * speed, ref_ms=5.0 * speed,
                       block_ref_ms={b: 5.0 for b in npu.blocks})
    steady = select_predictor(npu, candidates=("flops-linear", "additive"), folds=4, seed=0)
    corrected = select_predictor(drifting, candidates=("flops-linear", "additive"), folds=4, seed=0)
    for name in steady.scores:
        assert corrected.scores[name]["mape"] == pytest.approx(steady.scores[name]["mape"], rel=1e-6)
        assert corrected.scores[name]["kendall_tau"] == pytest.approx(steady.scores[name]["kendall_tau"], abs=1e-9)


def test_block_models_are_skipped_without_block_rows_and_too_few_networks_refused(tmp_path):
    path = tmp_path / "e2e"
    measure_into(Dataset(path), resolve("hexagon-dsp", seed=0), samples("ofa", 12, seed=2), mode="e2e")
    data = load_measurements(path)
    selection = select_predictor(data, candidates=FAST, folds=5, seed=0)
    assert set(selection.scores) == {"flops-linear", "additive"} and "lut" in selection.skipped
    with pytest.raises(HwprofError, match="at least 10 networks"):
        select_predictor(data.subset(np.arange(9)), candidates=FAST, folds=5)


@pytest.mark.slow  # 70 s (25 fits from the CLI); select_predictor itself is tested above
def test_cli_best_chooses_on_training_networks_only(npu_dir, tmp_path):
    from hwprof.predictors import store

    out = tmp_path / "best.pred"
    proc = run_cli("hwprof", "fit-predictor", "--data", str(npu_dir), "--model", "best", "--out", str(out), check=True)
    predictor = store.load(out)
    chosen = predictor.provenance_["selection"]
    assert chosen["chosen"] == predictor.name and set(chosen["scores"]) == {
        "additive", "flops-linear", "gbm", "kernel-rf", "lut"}
    assert all(m["n"] == 24 for m in chosen["scores"].values())  # the 6 held-out networks were not seen
    assert predictor.provenance_["test_metrics"]["n"] == 6
    assert "cross-validation" in proc.stdout and "SIMULATED" in proc.stdout and f"chose {chosen['chosen']}" in proc.stdout
    for args in (("--param", "fallback=none"), ("--test-fraction", "0.9")):
        bad = run_cli("hwprof", "fit-predictor", "--data", str(npu_dir), "--model", "best", "--out",
                      str(tmp_path / "x.pred"), *args)
        lines = bad.stderr.strip().splitlines()
        assert bad.returncode == 2 and len(lines) == 1 and "Traceback" not in bad.stderr, bad.stderr
    assert not (tmp_path / "x.pred").exists()


def test_a_real_targets_cached_default_is_chosen_by_cross_validation(tmp_path, monkeypatch):
    """`nas search` without --predictor on a real runtime fits the cross-validated choice, not always lut."""
    from hwprof.predictors import cache
    from nas.spaces import get_space

    monkeypatch.setenv("HWPROF_CACHE", str(tmp_path))
    monkeypatch.setattr(cache, "REAL_SAMPLES", 10)
    device = resolve("kirin-npu", seed=0)
    device.simulated = False  # stands in for a real runtime: same code path, no minutes of timing
    lines = []
    predictor, path, built = cache.cached_predictor(device, get_space("ofa"), status=lines.append)
    chosen = predictor.provenance_["selection"]
    assert built and path.exists() and chosen["chosen"] == predictor.name
    assert set(chosen["scores"]) == {"additive", "flops-linear", "gbm", "kernel-rf", "lut"}
    assert any("cross-validated" in line for line in lines)
