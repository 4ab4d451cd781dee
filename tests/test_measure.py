"""Measurement protocol, dataset, and `hwprof measure` end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from devices.base import Session
from hwprof.dataset import Dataset
from hwprof.protocol import Protocol, mad_inliers, measure_session
from tests.conftest import run_cli


class FakeSession(Session):
    def __init__(self, values):
        self.values = np.asarray(values, dtype=float)
        self.i = 0

    def run(self, n):
        out = np.resize(np.roll(self.values, -self.i), n)
        self.i += n
        return out


def test_protocol_rejects_outliers_but_counts_them():
    rng = np.random.default_rng(0)
    values = 1e-3 * (1 + 0.01 * rng.standard_normal(200))
    values[::25] = 5e-3  # outliers
    m = measure_session(FakeSession(values), Protocol(warmup=3, min_samples=100))
    assert m.n_rejected >= 4
    assert m.median_ms == pytest.approx(1.0, rel=0.02)
    assert m.ci_low_ms <= m.median_ms <= m.ci_high_ms
    assert m.converged and m.ci_rel <= 0.02
    assert len(m.warmup_ms) == 3


def test_protocol_stops_at_time_cap_when_too_noisy():
    rng = np.random.default_rng(1)
    values = 1e-3 * np.exp(rng.normal(0, 1.0, 5000))
    m = measure_session(FakeSession(values), Protocol(time_cap_s=0.05, target_ci=0.001))
    assert not m.converged
    assert m.samples_ms.sum() / 1e3 < 0.05 + 0.05


def test_mad_rule():
    x = np.array([1.0, 1.01, 0.99, 1.0, 10.0])
    assert mad_inliers(x, 3.5).tolist() == [True, True, True, True, False]


def test_measure_cli_writes_readable_dataset_and_resumes(tmp_path):
    out = tmp_path / "npu"
    args = ("hwprof", "measure", "--device", "kirin-npu", "--space", "ofa", "--samples", "8",
            "--seed", "0", "--out", str(out))
    first = run_cli(*args, "--json", check=True)
    df = pd.read_parquet(out)
    assert set(df["block_key"] == "e2e") == {True, False}
    assert (df["block_key"] == "e2e").sum() == 8
    assert df["simulated"].all() and (df["device"] == "kirin-npu").all()
    assert '"measured"' in first.stdout
    again = run_cli(*args, "--json", check=True)
    assert '"measured": 0' in again.stdout
    assert len(pd.read_parquet(out)) == len(df)
    # measurements are reproducible: a fresh directory gives identical medians
    run_cli(*args[:-1], str(tmp_path / "npu2"), check=True)
    df2 = pd.read_parquet(tmp_path / "npu2")
    key = ["arch_hash", "block_key"]
    merged = df.merge(df2, on=key)
    assert len(merged) == len(df)
    np.testing.assert_array_equal(merged["median_ms_x"], merged["median_ms_y"])


def test_sigkill_halfway_then_resume_loses_nothing(tmp_path):
    out = tmp_path / "killed"
    exe = os.path.join(os.path.dirname(sys.executable), "hwprof")
    args = [exe, "measure", "--device", "hexagon-dsp", "--space", "ofa", "--samples", "60", "--seed", "1",
            "--mode", "both", "--out"]
    proc = subprocess.Popen([*args, str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not Dataset(out).parts():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(Dataset(out).read()) if Dataset(out).parts() else 0
    subprocess.run([*args, str(out)], check=True, capture_output=True)
    subprocess.run([*args, str(tmp_path / "clean")], check=True, capture_output=True)
    resumed, clean = Dataset(out).read(), Dataset(tmp_path / "clean").read()
    key = ["arch_hash", "block_key", "device"]
    assert not resumed.duplicated(key).any()
    assert set(map(tuple, resumed[key].values)) == set(map(tuple, clean[key].values))
    assert partial < len(clean)
    assert not list(out.glob(".tmp-*"))


def _assert_clean_error(proc, fragment):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert fragment in lines[0], lines[0]


def test_measure_bad_inputs(tmp_path):
    base = ("hwprof", "measure", "--space", "ofa", "--samples", "2")
    _assert_clean_error(run_cli(*base, "--device", "tpu9", "--out", str(tmp_path / "a")), "unknown device 'tpu9'")
    from devices import resolve

    if not resolve("gpu").is_available():
        _assert_clean_error(run_cli(*base, "--device", "gpu", "--out", str(tmp_path / "a")), "no usable GPU")
    _assert_clean_error(run_cli("hwprof", "measure", "--device", "cpu", "--space", "nope", "--out",
                                str(tmp_path / "a")), "unknown search space 'nope'")
    afile = tmp_path / "file"
    afile.write_text("x")
    _assert_clean_error(run_cli(*base, "--device", "kirin-npu", "--out", str(afile)), "is a file")
    _assert_clean_error(run_cli("hwprof", "measure", "--device", "kirin-npu", "--space", "ofa", "--samples", "0",
                                "--out", str(tmp_path / "a")), "--samples")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "part-1.parquet").write_bytes(b"not parquet at all")
    _assert_clean_error(run_cli(*base, "--device", "kirin-npu", "--out", str(corrupt)), "corrupt dataset part")
    assert sorted(p.name for p in corrupt.iterdir()) == ["part-1.parquet"]
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if not os.access(ro, os.W_OK):  # root can write anywhere
        _assert_clean_error(run_cli(*base, "--device", "kirin-npu", "--out", str(ro / "x")), "not writable")


def test_same_seed_same_dataset_order_and_same_predictor(tmp_path):
    """Rows come back in measured order whatever the parts are called, so the same seed fits the same predictor."""
    from devices import resolve
    from hwprof.predictors.data import load_measurements
    from hwprof.predictors.training import fit_on
    from hwprof.profiling import measure_into
    from tests.conftest import samples

    archs = samples("ofa", 12)
    loaded = []
    for run in ("a", "b"):
        # a part every few rows: many parts named within the same second, in random (uuid) order
        measure_into(Dataset(tmp_path / run), resolve("kirin-npu", seed=0), archs, mode="both", flush_rows=7)
        loaded.append(load_measurements(tmp_path / run))
    a, b = loaded
    assert len(Dataset(tmp_path / "a").parts()) > 3
    assert [x.hash for x in a.archs] == [x.hash for x in archs] == [x.hash for x in b.archs]
    np.testing.assert_array_equal(a.latency_ms, b.latency_ms)
    assert list(a.blocks) == list(b.blocks)
    probe = samples("ofa", 20, seed=9)
    np.testing.assert_array_equal(fit_on("kernel-rf", a).predict(probe), fit_on("kernel-rf", b).predict(probe))
