"""Regression verdicts (`hwprof compare`) and benchmark suites (`hwprof bench`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from devices import resolve
from hwprof.build_onnx import build_onnx
from hwprof.protocol import Protocol, measure_session
from hwprof.regression import IMPROVEMENT, NO_CHANGE, REGRESSION, compare_samples
from tests.conftest import run_cli, samples

PROTOCOL = Protocol(min_samples=50, max_samples=50, target_ci=0.001)


def _recorded_runs(n_runs: int) -> list[np.ndarray]:
    """Independent runs of one network on simulated kirin-npu: its recorded noise model, outliers included."""
    model = build_onnx(samples("ofa", 1, seed=4)[0])
    runs = []
    for seed in range(n_runs):
        session = resolve("kirin-npu", seed=seed).load(model)
        runs.append(np.concatenate([measure_session(session, PROTOCOL).samples_ms]))
    return runs


@pytest.fixture(scope="module")
def runs():
    return _recorded_runs(200)


def test_a_a_comparisons_rarely_flag(runs):
    verdicts = [compare_samples(runs[2 * i], runs[2 * i + 1]).verdict for i in range(100)]
    assert sum(v != NO_CHANGE for v in verdicts) <= 1


def test_ten_percent_slower_is_flagged_three_percent_is_not(runs):
    slow10 = [compare_samples(runs[2 * i], runs[2 * i + 1] * 1.10, threshold=0.05).verdict for i in range(100)]
    slow3 = [compare_samples(runs[2 * i], runs[2 * i + 1] * 1.03, threshold=0.05).verdict for i in range(100)]
    fast10 = [compare_samples(runs[2 * i], runs[2 * i + 1] / 1.10).verdict for i in range(100)]
    assert sum(v == REGRESSION for v in slow10) >= 95
    assert sum(v != NO_CHANGE for v in slow3) <= 5
    assert sum(v == IMPROVEMENT for v in fast10) >= 95


def test_bootstrap_interval_brackets_the_ratio(runs):
    v = compare_samples(runs[0], runs[1] * 1.2)
    assert v.ci_low <= v.ratio <= v.ci_high and v.ci_low > 1.1 and v.p_value < 1e-6


def _suite(tmp_path, device: str = "kirin-npu") -> str:
    arch = samples("ofa", 1, seed=4)[0]
    (tmp_path / "net.json").write_text(arch.to_json())
    suite = tmp_path / "suite.toml"
    suite.write_text(f'name = "t"\n[protocol]\nmin_samples = 50\n[[models]]\nname = "net"\narch = "net.json"\n'
                     f'[[devices]]\nname = "{device}"\n')
    return str(suite)


def test_cli_bench_and_compare_exit_codes(tmp_path):
    suite = _suite(tmp_path)
    base, cur = tmp_path / "base.json", tmp_path / "cur.json"
    run_cli("hwprof", "bench", suite, "--out", str(base), "--seed", "0", check=True)
    run_cli("hwprof", "bench", suite, "--out", str(cur), "--seed", "1", check=True)
    same = run_cli("hwprof", "compare", str(base), str(cur), "--json")
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["pairs"][0]["verdict"] == NO_CHANGE
    doc = json.loads(cur.read_text())
    for field in ("samples_ms", "round_medians_ms"):
        doc["results"][0][field] = [s * 1.15 for s in doc["results"][0][field]]
    slower = tmp_path / "slower.json"
    slower.write_text(json.dumps(doc))
    proc = run_cli("hwprof", "compare", str(base), str(slower))
    assert proc.returncode == 3 and "regression" in proc.stdout
    inter_cur, inter_base = tmp_path / "icur.json", tmp_path / "ibase.json"
    run_cli("hwprof", "bench", suite, "--out", str(inter_cur), "--baseline", suite, "--baseline-out", str(inter_base),
            check=True)
    assert json.loads(inter_cur.read_text())["interleaved_with"] == 1
    assert run_cli("hwprof", "compare", str(inter_base), str(inter_cur)).returncode == 0


def test_cli_compare_bad_inputs_exit_2(tmp_path):
    suite = _suite(tmp_path)
    base = tmp_path / "base.json"
    run_cli("hwprof", "bench", suite, "--out", str(base), check=True)
    other_dir = tmp_path / "o"
    other_dir.mkdir()
    other = other_dir / "dsp.json"
    run_cli("hwprof", "bench", _suite(other_dir, "hexagon-dsp"), "--out", str(other), check=True)
    doc = json.loads(base.read_text())
    doc["results"][0]["settings"]["dtype"] = "int8"
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(doc))
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    cases = {
        "missing from": ("hwprof", "compare", str(base), str(other)),
        "different device settings": ("hwprof", "compare", str(base), str(changed)),
        "does not exist": ("hwprof", "compare", str(base), str(tmp_path / "nope.json")),
        "cannot read results file": ("hwprof", "compare", str(base), str(junk)),
        "benchmark suite": ("hwprof", "bench", str(tmp_path / "none.toml"), "--out", str(tmp_path / "x.json")),
    }
    for expected, args in cases.items():
        proc = run_cli(*args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], (args, proc.stderr)


def test_round_medians_absorb_drift_between_runs():
    """Runs on a host whose speed drifts between rounds are judged on their rounds' medians."""
    rng = np.random.default_rng(0)
    model = build_onnx(samples("ofa", 1, seed=4)[0])
    from hwprof.benchsuite import measure_rounds

    def run(seed: int, factor: float = 1.0) -> np.ndarray:
        session = resolve("kirin-npu", seed=seed).load(model)
        rounds = measure_rounds([session], Protocol(warmup=2, min_samples=10, max_samples=10), 8)[0]
        drift = 1 + rng.normal(0, 0.03, size=len(rounds))  # a busy host: each round a few % off
        return np.array([np.median(r) for r in rounds]) * drift * factor

    a_a = [compare_samples(run(2 * i), run(2 * i + 1)).verdict for i in range(100)]
    slow = [compare_samples(run(2 * i), run(2 * i + 1, 1.10)).verdict for i in range(100)]
    assert sum(v != NO_CHANGE for v in a_a) <= 1
    assert sum(v == REGRESSION for v in slow) >= 90


def test_paired_rounds_cancel_a_disturbance_that_hits_both_runs():
    """Rounds slowed by up to 50% for both runs alike: paired, A/A stays quiet and 10% is caught; the same
    round medians judged unpaired miss the slowdown."""
    from hwprof.regression import compare_paired

    rng = np.random.default_rng(0)

    def pair(factor: float) -> tuple[np.ndarray, np.ndarray]:
        common = 3.0 * rng.uniform(1.0, 1.5, size=8)  # what the neighbour did to each round
        return common * np.exp(rng.normal(0, 0.01, 8)), common * factor * np.exp(rng.normal(0, 0.01, 8))

    a_a = [compare_paired(*pair(1.0)).verdict for _ in range(200)]
    slow = [pair(1.10) for _ in range(200)]
    assert sum(v != NO_CHANGE for v in a_a) <= 2
    assert sum(compare_paired(b, c).verdict == REGRESSION for b, c in slow) >= 190
    assert sum(compare_samples(b, c).verdict == REGRESSION for b, c in slow) < 100


def test_paired_rounds_need_chunk_records_and_enough_common_rounds():
    from hwprof.regression import MIN_ROUNDS, paired_rounds

    def run(rounds, quiet):
        return {"chunks": {"round": list(rounds), "median_ms": [1.0 + r / 100 for r in rounds], "quiet": quiet}}

    assert paired_rounds({"round_medians_ms": [1.0] * 8}, run(range(8), [True] * 8)) is None
    assert paired_rounds(run(range(8), [True] * 8), run(range(8, 16), [True] * 8)) is None  # no common round
    base, cur, only_quiet = paired_rounds(run(range(12), [True] * 12), run(range(12), [True] * 9 + [False] * 3))
    assert only_quiet and len(base) == 9 and np.array_equal(base, cur)
    # 7 quiet pairs could never reach p < 0.01 (all 7 agreeing gives p = 0.016): every pair is used instead
    base, _, only_quiet = paired_rounds(run(range(10), [True] * 10), run(range(10), [True] * 7 + [False] * 3))
    assert not only_quiet and len(base) == 10
    base, _, only_quiet = paired_rounds(run(range(8), [False] * 8), run(range(8), [None] * 8))
    assert not only_quiet and len(base) == 8 >= MIN_ROUNDS


def test_suite_protocol_gives_real_devices_sixteen_short_chunks_and_keeps_simulated_rounds():
    from hwprof.benchsuite import suite_protocol

    real, real_rounds = suite_protocol({}, simulated=False)
    assert real_rounds == 16 and abs(real.min_time_s * real_rounds - 0.5) < 1e-9  # same inference time in all
    simulated, sim_rounds = suite_protocol({}, simulated=True)
    assert sim_rounds == 8
    assert suite_protocol({"rounds": 4}, simulated=False)[1] == 4  # a suite's own rounds win
