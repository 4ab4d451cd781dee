"""The Python API: the README example runs, and hwprof.measure takes every kind of model."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import hwprof
from hwprof.errors import HwprofError
from tests.conftest import REPO, samples


@pytest.mark.slow
def test_readme_api_example_runs(tmp_path, monkeypatch, capsys):
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- README-API-EXAMPLE.*?```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.setenv("HWPROF_CACHE", str(tmp_path))
    monkeypatch.chdir(REPO)
    exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "simulated: True" in out and "synflow proxy" in out


def test_measure_accepts_arch_onnx_and_torch(tmp_path):
    arch = samples("ofa", 1, seed=0)[0]
    from hwprof.build_onnx import save_onnx, build_onnx

    save_onnx(build_onnx(arch), tmp_path / "net.onnx")
    by_arch = hwprof.measure(arch, device="kirin-npu")
    by_file = hwprof.measure(tmp_path / "net.onnx", device="kirin-npu")
    assert by_arch["median_ms"] == pytest.approx(by_file["median_ms"], rel=0.05)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.Hardswish())
    row = hwprof.measure(module, device="kirin-npu", input_shape=(1, 3, 32, 32))
    assert row["simulated"] and row["median_ms"] > 0 and len(row["samples_ms"]) == row["n"] + row["n_rejected"]
    with pytest.raises(HwprofError, match="needs input_shape"):
        hwprof.measure(module, device="kirin-npu")
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(HwprofError, match="not a valid ONNX model"):
        hwprof.measure(tmp_path / "bad.onnx", device="kirin-npu")
    assert np.isfinite(by_arch["p90_ms"])


def test_cli_measure_onnx_models_and_bad_models(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    import pandas as pd

    from hwprof.build_onnx import build_onnx, save_onnx
    from tests.conftest import run_cli

    good = tmp_path / "net.onnx"
    save_onnx(build_onnx(samples("ofa", 1, seed=0)[0]), good)
    run_cli("hwprof", "measure", "--device", "cpu", "--model", str(good), "--min-time", "0.02", "--out",
            str(tmp_path / "run"), check=True)
    df = pd.read_parquet(tmp_path / "run")
    assert list(df.space) == ["onnx"] and df.block_key.tolist() == ["e2e"] and df.macs.iloc[0] > 0
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[:1000])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    custom = helper.make_model(helper.make_graph([helper.make_node("Frobnicate", ["x"], ["y"], domain="acme")],
                                                 "g", [x], [y]),
                               opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("acme", 1)])
    unsupported = tmp_path / "unsupported.onnx"
    onnx.save(custom, unsupported)
    (tmp_path / "text.onnx").write_text("hello")
    cases = {
        "not a valid ONNX model": ("--model", str(truncated)),
        "text.onnx is not a valid ONNX model": ("--model", str(tmp_path / "text.onnx")),
        "Frobnicate": ("--model", str(unsupported)),
        "--input-shape gives 3": ("--model", str(good), "--input-shape", "1,3,224"),
    }
    for expected, args in cases.items():
        proc = run_cli("hwprof", "measure", "--device", "cpu", *args, "--out", str(tmp_path / "bad"))
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], (args, proc.stderr)
