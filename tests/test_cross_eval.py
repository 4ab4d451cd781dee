"""nas cross-eval: search per target, measure every winner on every target, the matrix and its summary."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import run_cli


def test_cross_eval_writes_the_matrix_and_resumes(tmp_path, monkeypatch):
    import hwprof.predictors.cache as cache
    from nas.cross_eval import cross_eval

    monkeypatch.setenv("HWPROF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "SIMULATED_SAMPLES", 40)
    out = tmp_path / "xeval"
    targets = ["kirin-npu", "myriad-vpu"]
    summary = cross_eval("proxyless", targets, out, budget_quantile=0.5, latency_ms={"myriad-vpu": 5.5},
                         budget=24, seeds=2)
    matrix = pd.read_csv(out / "matrix.csv")
    assert len(matrix) == 2 * 2 * 2 and set(matrix.measured_on) == set(targets)
    assert (out / "matrix.png").stat().st_size > 0
    assert summary["budgets_ms"]["myriad-vpu"] == 5.5 and summary["budget_sources"]["myriad-vpu"] == "given"
    assert "quantile" in summary["budget_sources"]["kirin-npu"]
    assert summary["held"] and summary["held"][0]["variable"] == "resolution" or not summary["held"]
    for target in targets:
        diag = summary["diagonal"][target]
        assert diag["runs"] == 2 and 0 <= diag["wins_or_ties"] <= diag["diagonal_feasible"] <= 2
    # each winner is measured on every target; feasibility is measured latency against the column's budget
    for row in matrix.itertuples():
        assert row.measured_ms > 0 and row.feasible == (row.measured_ms <= row.budget_ms)
    assert json.loads((out / "summary.json").read_text())["targets"] == targets
    before = {p: p.stat().st_mtime_ns for p in (out / "searches").iterdir()}
    rows_before = sum(len(pd.read_parquet(p)) for p in (out / "measurements").rglob("*.parquet"))
    again = cross_eval("proxyless", targets, out, budget_quantile=0.5, latency_ms={"myriad-vpu": 5.5},
                       budget=24, seeds=2)
    assert {p: p.stat().st_mtime_ns for p in (out / "searches").iterdir()} == before  # searches reused
    assert sum(len(pd.read_parquet(p)) for p in (out / "measurements").rglob("*.parquet")) == rows_before
    assert again["diagonal"] == summary["diagonal"]
    moved = cross_eval("proxyless", targets, out, budget_quantile=0.5, latency_ms={"myriad-vpu": 6.0},
                       budget=24, seeds=2)  # a new budget for myriad: its searches are stale, kirin's are not
    after = {p: p.stat().st_mtime_ns for p in (out / "searches").iterdir()}
    assert {p.name for p in after if after[p] != before[p]} == {"myriad-vpu-s0.json", "myriad-vpu-s1.json"}
    assert moved["budgets_ms"]["myriad-vpu"] == 6.0
    assert all(json.loads(p.read_text())["budget_ms"] == 6.0 for p in (out / "searches").glob("myriad-vpu-*"))


@pytest.mark.parametrize("args,expected", [
    (["--targets", "kirin-npu"], "two or more different targets"),
    (["--targets", "kirin-npu,myriad-vpu", "--latency-ms", "cpu=3"], "does not name one of the targets"),
    (["--targets", "kirin-npu,myriad-vpu", "--budget-quantile", "1.5"], "--budget-quantile"),
    (["--targets", "kirin-npu,tpu9"], "unknown device 'tpu9'"),
])
def test_cross_eval_bad_input_is_one_line(tmp_path, monkeypatch, args, expected):
    monkeypatch.setenv("HWPROF_CACHE", str(tmp_path / "cache"))
    proc = run_cli("nas", "cross-eval", "--space", "proxyless", *args, "--out", str(tmp_path / "x"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], proc.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "cache").exists()


def test_profile_space_compare_ranks_side_by_side_with_pairwise_tau(tmp_path):
    out = tmp_path / "cmp"
    proc = run_cli("hwprof", "profile-space", "--space", "proxyless", "--compare", "kirin-npu,myriad-vpu",
                   "--samples", "60", "--bootstrap", "3", "--out", str(out), "--json", check=True)
    result = json.loads(proc.stdout)
    assert set(result["rankings"]) == {"kirin-npu", "myriad-vpu"}
    assert sorted(result["rankings"]["kirin-npu"]) == sorted(result["rankings"]["myriad-vpu"])
    assert result["tau"]["kirin-npu"]["kirin-npu"] == 1.0
    assert -1 <= result["tau"]["kirin-npu"]["myriad-vpu"] == result["tau"]["myriad-vpu"]["kirin-npu"] <= 1
    assert len(result["top"]["kirin-npu"]) == 3 and result["simulated"]["myriad-vpu"] is True
    assert (out / "kirin-npu" / "data").is_dir() and json.loads((out / "compare.json").read_text()) == result
    both = run_cli("hwprof", "profile-space", "--space", "proxyless", "--device", "kirin-npu", "--compare",
                   "kirin-npu,myriad-vpu", "--out", str(tmp_path / "x"))
    assert both.returncode == 2 and "exactly one of --device or --compare" in both.stderr


def _fitted(tmp_path, device: str, name: str):
    """A flops-linear predictor file fitted on 30 proxyless networks measured on a simulated ``device``."""
    import numpy as np

    from devices import resolve
    from hwprof.dataset import Dataset
    from hwprof.predictors import store
    from hwprof.predictors.data import load_measurements
    from hwprof.predictors.training import fit_on
    from hwprof.profiling import measure_into
    from nas.spaces import get_space

    space, rng = get_space("proxyless"), np.random.default_rng(4)
    data = tmp_path / f"{name}-data"
    measure_into(Dataset(data), resolve(device, seed=0), [space.sample(rng) for _ in range(30)], mode="e2e")
    predictor = fit_on("flops-linear", load_measurements(data))
    store.save(predictor, tmp_path / f"{name}.pred")
    return predictor, tmp_path / f"{name}.pred"


def test_cross_eval_uses_a_given_predictor_and_refuses_one_for_another_target(tmp_path, monkeypatch):
    from nas.cross_eval import cross_eval

    monkeypatch.setenv("HWPROF_CACHE", str(tmp_path / "cache"))
    kirin, kirin_file = _fitted(tmp_path, "kirin-npu", "kirin")
    _, myriad_file = _fitted(tmp_path, "myriad-vpu", "myriad")
    out = tmp_path / "xeval"
    summary = cross_eval("proxyless", ["kirin-npu", "myriad-vpu"], out, budget_quantile=0.5, budget=16,
                         predictor_files={"kirin-npu": kirin_file, "myriad-vpu": myriad_file})
    assert summary["predictors"] == {"kirin-npu": str(kirin_file), "myriad-vpu": str(myriad_file)}
    assert not (tmp_path / "cache" / "predictors").exists()  # nothing measured to build a default predictor
    matrix = pd.read_csv(out / "matrix.csv")
    from hwprof.arch import Arch

    searched = json.loads((out / "searches" / "kirin-npu-s0.json").read_text())
    row = matrix[(matrix.searched_for == "kirin-npu") & (matrix.measured_on == "kirin-npu")].iloc[0]
    assert row.predicted_ms == pytest.approx(kirin.predict([Arch.from_json(searched["arch_json"])])[0])
    swapped = run_cli("nas", "cross-eval", "--space", "proxyless", "--targets", "kirin-npu,myriad-vpu",
                      "--predictor", f"kirin-npu={myriad_file}", "--out", str(tmp_path / "x"))
    lines = swapped.stderr.strip().splitlines()
    assert swapped.returncode == 2 and len(lines) == 1 and "fitted for device 'myriad-vpu'" in lines[0]
    assert not (tmp_path / "x").exists()
    unknown = run_cli("nas", "cross-eval", "--space", "proxyless", "--targets", "kirin-npu,myriad-vpu",
                      "--predictor", f"cpu={kirin_file}", "--out", str(tmp_path / "x"))
    assert unknown.returncode == 2 and "--predictor 'cpu=" in unknown.stderr and not (tmp_path / "x").exists()


def test_a_predictor_of_another_dtype_is_refused(tmp_path):
    from devices import resolve
    from hwprof.errors import HwprofError
    from hwprof.predictors import store

    predictor, _ = _fitted(tmp_path, "kirin-npu", "kirin")
    int8 = resolve("cpu:int8")
    predictor.provenance_.update(device="cpu", settings=json.dumps(int8.settings()))
    store.save(predictor, tmp_path / "int8.pred")
    assert store.load_for(tmp_path / "int8.pred", int8, "proxyless") is not None
    with pytest.raises(HwprofError, match="dtype=int8, not dtype=float32"):
        store.load_for(tmp_path / "int8.pred", resolve("cpu"), "proxyless")


def test_winners_are_corrected_to_the_predictors_nominal_speed():
    """Measured and predicted ms must be in the same units: the predictor's nominal reference, not the run's."""
    from nas.cross_eval import TargetSetup, nominal_speed

    class Fitted:
        provenance_ = {"reference_ms": 7.5}

    rows = pd.DataFrame({"ref_ms": [7.0, 7.2, 7.1]})
    assert nominal_speed(TargetSetup("cpu", Fitted(), 10.0, "given", False), rows) == 7.5
    Fitted.provenance_ = {}
    assert nominal_speed(TargetSetup("cpu", Fitted(), 10.0, "given", False), rows) == pytest.approx(7.1)
