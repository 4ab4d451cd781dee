"""Papercuts a new user met (issue 23), each pinned by a test."""

from __future__ import annotations

import json

from tests.conftest import run_cli


def test_lut_falls_back_by_default_and_says_how_often(tmp_path):
    data = tmp_path / "npu"
    run_cli("hwprof", "measure", "--device", "kirin-npu", "--space", "ofa", "-n", "40", "--out", str(data), check=True)
    proc = run_cli("hwprof", "fit-predictor", "--data", str(data), "--model", "lut", "--out", str(tmp_path / "l.pred"),
                   check=True)
    assert "were not in the lookup table and were predicted by the kernel-rf fallback" in proc.stdout
    report = json.loads(run_cli("hwprof", "fit-predictor", "--data", str(data), "--model", "lut", "--out",
                                str(tmp_path / "l.pred"), "--json", check=True).stdout)
    missing, total = report["test_metrics"]["fallback_blocks"]
    assert 0 < missing < total
    strict = run_cli("hwprof", "fit-predictor", "--data", str(data), "--model", "lut", "--param", "fallback=none",
                     "--out", str(tmp_path / "s.pred"))
    assert strict.returncode == 2 and "not in the lookup table" in strict.stderr
    evaluated = run_cli("hwprof", "evaluate", "--predictor", str(tmp_path / "l.pred"), "--data", str(data), check=True)
    assert "distinct blocks were not in the lookup table" in evaluated.stdout


def test_impossible_target_refused_before_a_predictor_is_built(tmp_path, monkeypatch):
    env_cache = tmp_path / "cache"
    monkeypatch.setenv("HWPROF_CACHE", str(env_cache))
    proc = run_cli("nas", "search", "--space", "ofa", "--target", "kirin-npu", "--latency-ms", "0.01",
                   "--out", str(tmp_path / "s"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "no network meets 0.01 ms" in lines[0] and "smallest network of ofa" in lines[0]
    assert not (env_cache / "predictors").exists()  # nothing was measured or fitted


def test_device_labels_name_a_real_device_dtype_and_mark_simulated_chips():
    from devices import resolve

    assert resolve("cpu").label == "cpu"
    assert resolve("cpu:int8").label == "cpu:int8"
    assert resolve("kirin-npu").label == "kirin-npu (simulated)"
    # a dataset says the same of the device it was measured on (fit-predictor, evaluate)
    import numpy as np

    from hwprof.predictors.data import MeasurementData

    def measured(settings: str, simulated: bool = False) -> MeasurementData:
        return MeasurementData(device="litert-cpu", device_kind="cpu", simulated=simulated, profile_hash="",
                               settings=settings, space="ofa", archs=[], latency_ms=np.zeros(0), blocks={})

    assert measured('{"dtype": "int8", "threads": 1}').label == "litert-cpu:int8"
    assert measured('{"dtype": "float32"}').label == measured("").label == "litert-cpu"
    assert measured('{"dtype": "int8"}', simulated=True).label == "litert-cpu (simulated)"
