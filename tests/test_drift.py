"""Drift correction: a reference network timed between tasks removes changes in machine speed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import samples
from devices.base import Device, Session
from devices import resolve
from hwprof.build_onnx import build_onnx
from hwprof.dataset import SCHEMA, Dataset
from hwprof.drift import corrected, reference_arch, smoothed
from hwprof.predictors.data import load_measurements
from hwprof.predictors.training import evaluate, fit_on
from hwprof.profiling import measure_into
from hwprof.protocol import Protocol

FAST = Protocol(warmup=1, min_samples=3, target_ci=0.5)


class _FixedSession(Session):
    def __init__(self, device: "DriftingDevice", base_s: float) -> None:
        self.device, self.base_s = device, base_s

    def run(self, n: int) -> np.ndarray:
        return np.full(n, self.base_s * self.device.slowdown)


class DriftingDevice(Device):
    """Noise-free kirin-npu latencies on a 'machine' whose speed changes after ``switch_after`` loads."""

    name = "drifting"
    kind = "cpu"
    simulated = False

    def __init__(self, switch_after: int | None = None, slowdown: float = 1.0, after: float = 1.3) -> None:
        self.model = resolve("kirin-npu")
        self.slowdown, self.after, self.switch_after, self.loads = slowdown, after, switch_after, 0

    def is_available(self) -> bool:
        return True

    def info(self) -> dict:
        return {"simulated": False, "what": "test double"}

    def settings(self) -> dict:
        return {}

    def load(self, model) -> Session:
        self.loads += 1
        if self.switch_after is not None and self.loads > self.switch_after:
            self.slowdown = self.after
        return _FixedSession(self, self.model.latency(model)[0])


def _measure(tmp_path, name, device, archs, mode="e2e", every=0.0):
    ds = Dataset(tmp_path / name)
    summary = measure_into(ds, device, archs, mode, FAST, reference_every_s=every)
    return ds, summary


def test_reference_network_is_fixed():
    """The stored reference network is the OFA subnet REFERENCE_CONFIG, and has not changed (its hash)."""
    from hwprof.drift import REFERENCE_CONFIG
    from nas.interop_ofa import from_ofa_config

    arch = reference_arch()
    assert arch == from_ofa_config(REFERENCE_CONFIG)
    assert arch.hash == "af79e1047715ea7f"
    assert arch.space == "ofa" and arch.resolution == 192


def test_rows_record_reference_and_correction_removes_a_speed_step(tmp_path):
    archs = samples("ofa", 12, seed=3)
    device = DriftingDevice(switch_after=1 + 7)  # the reference loads first; networks 8.. run 30% slower
    ds, summary = _measure(tmp_path, "run", device, archs)
    df = ds.read()
    assert df.ref_ms.notna().all() and summary.reference_ms is not None
    assert '"reference":' in df.protocol.iloc[0]
    df = df.set_index("arch_hash")
    archs = [a for a in archs if a.hash in df.index]
    truth = np.array([device.model.latency(build_onnx(a))[0] * 1e3 for a in archs])
    measured = df.loc[[a.hash for a in archs], "median_ms"].to_numpy()
    ref = df.loc[[a.hash for a in archs], "ref_ms"].to_numpy()
    raw_error = np.abs(measured / truth - 1)
    fixed = corrected(measured, ref, ref[0]) / truth  # at the speed of the first (fast) rows
    fixed_error = np.abs(fixed / np.median(fixed) - 1)
    assert (raw_error > 0.25).sum() >= 4  # the slow half is off by 30% before correction
    assert (fixed_error > 0.02).sum() <= 1  # at most the row measured across the step
    assert np.median(fixed_error) < 1e-9 and abs(np.median(fixed) - 1) < 0.01


def test_smoothing_ignores_a_spike_and_follows_a_step():
    times = np.datetime64("2026-01-01T00:00:00") + np.arange(120).astype("timedelta64[s]")
    ref = np.where(np.arange(120) < 60, 5.0, 6.0)
    ref[30] = 9.0  # one noisy reference timing
    out = smoothed(times, ref, window_s=20)
    assert out[30] == 5.0 and np.all(out[:50] == 5.0) and np.all(out[71:] == 6.0)
    shuffled = np.random.default_rng(0).permutation(120)  # row order does not matter, time does
    assert np.array_equal(smoothed(times[shuffled], ref[shuffled], window_s=20), out[shuffled])


def test_predictor_learns_nominal_speed_and_evaluate_corrects_a_slower_test_run(tmp_path):
    train_archs, test_archs = samples("ofa", 40, seed=4), samples("ofa", 15, seed=5)
    _measure(tmp_path, "train", DriftingDevice(), train_archs)
    _measure(tmp_path, "test-same-speed", DriftingDevice(), test_archs)
    _measure(tmp_path, "test-slower", DriftingDevice(slowdown=1.25), test_archs)
    _measure(tmp_path, "test-slower-untracked", DriftingDevice(slowdown=1.25), test_archs, every=None)
    predictor = fit_on("flops-linear", load_measurements(tmp_path / "train"))
    assert predictor.provenance_["reference_ms"] > 0
    same, _ = evaluate(predictor, load_measurements(tmp_path / "test-same-speed"))
    corrected, _ = evaluate(predictor, load_measurements(tmp_path / "test-slower"))
    untracked, _ = evaluate(predictor, load_measurements(tmp_path / "test-slower-untracked"))
    assert corrected["drift_corrected"] and not untracked["drift_corrected"]
    assert corrected["mape"] == pytest.approx(same["mape"], abs=1e-9)
    assert corrected["kendall_tau"] == pytest.approx(same["kendall_tau"])
    assert corrected["raw_mape"] > same["mape"] + 0.05  # the machine really was 25% slower
    assert untracked["mape"] == pytest.approx(corrected["raw_mape"])


def test_simulated_runs_do_not_track_drift_and_old_parts_read(tmp_path):
    ds, summary = _measure(tmp_path, "sim", resolve("kirin-npu"), samples("ofa", 3), every=None)
    assert summary.reference_ms is None and ds.read().ref_ms.isna().all()
    # a part written before the ref_ms / ops_json columns existed still reads
    old_schema = pa.schema([f for f in SCHEMA if f.name not in ("ref_ms", "ops_json")])
    table = pq.read_table(ds.parts()[0]).select(old_schema.names)
    old = tmp_path / "old"
    old.mkdir()
    pq.write_table(table, old / "part-old.parquet")
    frame = Dataset(old).read()
    assert frame.ref_ms.isna().all() and frame.ops_json.isna().all() and len(frame) == 3
    assert load_measurements(old).ref_ms is None


def test_drift_every_option_is_checked(tmp_path):
    from conftest import run_cli

    proc = run_cli("hwprof", "measure", "--device", "cpu", "--space", "ofa", "--samples", "1",
                   "--drift-every", "-1", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and "--drift-every" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("every", [0.0])
def test_cpu_rows_carry_reference(tmp_path, every):
    ds, summary = _measure(tmp_path, "cpu", resolve("cpu"), samples("ofa", 2), every=every)
    low, mid, high = summary.reference_ms
    assert 0 < low <= mid <= high
    assert ds.read().ref_ms.between(low, high).all()
    # where the wall time went is accounted for, and adds up to no more than the wall time
    parts = (summary.inference_s, summary.build_s, summary.load_s, summary.reference_s)
    assert all(p > 0 for p in parts) and sum(parts) <= summary.wall_s
    assert summary.other_s == pytest.approx(summary.wall_s - sum(parts))
