"""Latency predictors: fitting, accuracy ordering, cost tables, save/load, CLI."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from devices import resolve
from hwprof.dataset import Dataset
from hwprof.errors import HwprofError
from hwprof.predictors import predictor_names, store
from hwprof.predictors.data import load_measurements
from hwprof.predictors.kernels import block_kernels
from hwprof.predictors.metrics import prediction_metrics
from hwprof.predictors.training import check_compatible, evaluate, fit_on
from hwprof.profiling import measure_into
from nas.spaces import get_space
from tests.conftest import measured_dir, run_cli, samples

MODELS = ["flops-linear", "additive", "lut", "kernel-rf", "gbm"]


@pytest.fixture(scope="module")
def npu_dir(tmp_path_factory):
    return measured_dir(tmp_path_factory.mktemp("npu"), "kirin-npu", "ofa", 300, seed=1)


@pytest.fixture(scope="module")
def npu(npu_dir):
    return load_measurements(npu_dir)


@pytest.fixture(scope="module")
def fitted(npu):
    train, _ = npu.split(0.25, seed=0)
    return {name: fit_on(name, train, seed=0, **({"fallback": "kernel-rf"} if name == "lut" else {}))
            for name in MODELS}


def test_all_models_registered():
    assert set(MODELS) <= set(predictor_names())


def test_split_holds_out_networks_and_their_blocks_follow(npu):
    train, test = npu.split(0.25, seed=0)
    assert len(test.archs) == 75 and len(train.archs) == 225
    assert not {a.hash for a in train.archs} & {a.hash for a in test.archs}
    assert set(train.blocks) <= {b for a in train.archs for b in a.blocks}


@pytest.mark.parametrize("name", MODELS)
def test_predictions_positive_and_same_seed_same_fit(name, npu, fitted):
    train, test = npu.split(0.25, seed=0)
    pred = fitted[name].predict(test.archs)
    assert pred.shape == (len(test.archs),) and np.all(np.isfinite(pred)) and np.all(pred > 0)
    again = fit_on(name, train, seed=0, **({"fallback": "kernel-rf"} if name == "lut" else {}))
    np.testing.assert_array_equal(again.predict(test.archs), pred)


def test_every_model_beats_flops_linear(npu, fitted):
    _, test = npu.split(0.25, seed=0)
    base = evaluate(fitted["flops-linear"], test)[0]["mape"]
    for name in MODELS[1:]:
        assert evaluate(fitted[name], test)[0]["mape"] < base, name


def test_block_based_models_are_accurate_on_simulated_npu(npu, fitted):
    _, test = npu.split(0.25, seed=0)
    for name in ("lut", "kernel-rf"):
        m = evaluate(fitted[name], test)[0]
        assert m["within_10pct"] >= 0.95 and m["kendall_tau"] >= 0.85, (name, m)
    # additive sees no block rows and has ~600 coefficients: 225 networks are few for it
    m = evaluate(fitted["additive"], test)[0]
    assert m["within_10pct"] >= 0.8 and m["kendall_tau"] >= 0.8, m


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip_is_identical(name, npu, fitted, tmp_path):
    _, test = npu.split(0.25, seed=0)
    path = tmp_path / f"{name}.pred"
    store.save(fitted[name], path)
    loaded = store.load(path)
    assert loaded.name == name
    np.testing.assert_array_equal(loaded.predict(test.archs), fitted[name].predict(test.archs))
    with zipfile.ZipFile(path) as zf:  # no pickle anywhere: JSON, npz, skops
        assert set(zf.namelist()) <= {"manifest.json", "arrays.npz", "models.skops"}


@pytest.mark.parametrize("name", ["lut", "additive", "kernel-rf", "flops-linear"])
def test_cost_table_reproduces_predictions_exactly(name, fitted):
    space = get_space("ofa")
    archs = samples("ofa", 40, seed=7)
    genes = np.array([space.encode(a) for a in archs])
    direct = fitted[name].predict(archs)
    np.testing.assert_allclose(fitted[name].predict_genes(space, genes), direct, rtol=1e-9)
    table = fitted[name].cost_table(space, {"resolution": 224})
    assert table.exact and len(table.costs_ms) == 20 and table.globals == {"resolution": 224}
    at224 = [a for a in archs if a.resolution == 224] or [space.to_arch([24] + list(genes[0][1:]))]
    layer = np.array([space.encode(a)[1:] for a in at224])
    np.testing.assert_allclose(table.latency(layer), fitted[name].predict(at224), rtol=1e-9)
    probs = [np.full(len(c), 1 / len(c)) for c in table.costs_ms]
    assert np.isfinite(table.expected(probs))


def test_cost_table_rejects_impossible_global(fitted):
    with pytest.raises(HwprofError, match="resolution=999"):
        fitted["additive"].cost_table(get_space("ofa"), {"resolution": 999})


def test_lut_falls_back_by_default_and_names_missing_block_when_strict(npu):
    train, test = npu.split(0.5, seed=3)
    strict = fit_on("lut", train, fallback="none")
    missing = [a for a in test.archs if any(b not in train.blocks for b in a.blocks)]
    assert missing, "the split should leave some blocks unmeasured"
    with pytest.raises(HwprofError, match=r"block 'mbconv .*' \(key [0-9a-f]+\) is not in the lookup table"):
        strict.predict(missing)
    default = fit_on("lut", train)
    assert default.get_params() == {"fallback": "kernel-rf"}
    assert np.all(default.predict(missing) > 0)
    n_missing, n_blocks = default.missing_blocks(missing)
    assert 0 < n_missing <= n_blocks
    assert n_missing == len({b.key() for a in missing for b in a.blocks} - {b.key() for b in train.blocks})


def test_block_models_need_block_rows(npu):
    e2e_only = npu.subset(np.arange(50))
    e2e_only.blocks = {}
    for name in ("lut", "kernel-rf"):
        with pytest.raises(HwprofError, match="single-block measurements"):
            fit_on(name, e2e_only)
    assert fit_on("additive", e2e_only).is_fitted


def test_kernels_split_mbconv_as_device_fuses_it():
    arch = samples("ofa", 1, seed=0)[0]
    mb = next(b for b in arch.blocks if b.op == "mbconv" and b.se and b.expand_conv)
    types = [t for t, _ in block_kernels(mb)]
    assert types[:2] == ["pwconv", "dwconv"] and "gap" in types and "mul" in types


def test_metrics_of_perfect_and_biased_predictions():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    perfect = prediction_metrics(y, y)
    assert perfect["rmse_ms"] == 0 and perfect["within_5pct"] == 1 and perfect["kendall_tau"] == pytest.approx(1)
    biased = prediction_metrics(y, y * 1.07)
    assert biased["within_5pct"] == 0 and biased["within_10pct"] == 1 and biased["mape"] == pytest.approx(0.07)


def test_tampered_and_corrupt_files_are_refused(fitted, tmp_path):
    path = tmp_path / "a.pred"
    store.save(fitted["additive"], path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(members["manifest.json"])
    manifest["provenance"]["device"] = "other-device"
    members["manifest.json"] = json.dumps(manifest).encode()
    tampered = tmp_path / "tampered.pred"
    with zipfile.ZipFile(tampered, "w") as zf:
        for n, d in members.items():
            zf.writestr(n, d)
    with pytest.raises(HwprofError, match="corrupt or was modified"):
        store.load(tampered)
    garbage = tmp_path / "garbage.pred"
    garbage.write_bytes(b"not a zip at all")
    with pytest.raises(HwprofError, match="not a valid hwprof predictor"):
        store.load(garbage)
    with pytest.raises(HwprofError, match="does not exist"):
        store.load(tmp_path / "missing.pred")


def test_other_device_is_refused(npu, fitted, tmp_path):
    other = tmp_path / "dsp"
    measure_into(Dataset(other), resolve("hexagon-dsp", seed=0), samples("ofa", 5, seed=2), mode="e2e")
    predictor = fitted["additive"]
    predictor.provenance_ = npu.provenance()
    with pytest.raises(HwprofError, match="fitted for device 'kirin-npu'"):
        check_compatible(predictor, load_measurements(other))


def test_cli_fit_and_evaluate(npu_dir, tmp_path):
    pred = tmp_path / "npu.pred"
    fit = run_cli("hwprof", "fit-predictor", "--data", str(npu_dir), "--model", "kernel-rf", "--out", str(pred),
                  "--json", check=True)
    result = json.loads(fit.stdout)
    assert result["simulated"] is True and result["test_metrics"]["within_10pct"] >= 0.9
    plot = tmp_path / "npu.png"
    ev = run_cli("hwprof", "evaluate", "--predictor", str(pred), "--data", str(npu_dir), "--plot", str(plot),
                 check=True)
    assert "SIMULATED" in ev.stdout and "Kendall" in ev.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    auto = run_cli("hwprof", "fit-predictor", "--data", str(npu_dir), "--out", str(tmp_path / "auto.pred"),
                   "--test-fraction", "0", "--json", check=True)
    assert json.loads(auto.stdout)["predictor"] == "lut"


def test_cli_bad_inputs_exit_2_with_one_line(npu_dir, tmp_path):
    other = tmp_path / "dsp"
    measure_into(Dataset(other), resolve("hexagon-dsp", seed=0), samples("ofa", 5, seed=2), mode="e2e")
    pred = tmp_path / "a.pred"
    run_cli("hwprof", "fit-predictor", "--data", str(npu_dir), "--model", "additive", "--out", str(pred), check=True)
    garbage = tmp_path / "garbage.pred"
    garbage.write_bytes(b"junk")
    cases = [
        ("hwprof", "fit-predictor", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "x.pred")),
        ("hwprof", "fit-predictor", "--data", str(npu_dir), "--model", "magic", "--out", str(tmp_path / "x.pred")),
        ("hwprof", "fit-predictor", "--data", str(other), "--model", "lut", "--out", str(tmp_path / "x.pred")),
        ("hwprof", "fit-predictor", "--data", str(npu_dir), "--test-fraction", "1.5", "--out", str(tmp_path / "x.pred")),
        ("hwprof", "evaluate", "--predictor", str(pred), "--data", str(other)),
        ("hwprof", "evaluate", "--predictor", str(garbage), "--data", str(npu_dir)),
    ]
    for args in cases:
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "x.pred").exists()


def test_onnx_kernels_match_ir_kernels_on_every_space():
    from collections import Counter

    from hwprof.build_onnx import build_onnx
    from hwprof.predictors.kernels import kernels_from_onnx
    from tests.conftest import SPACES

    for space in SPACES:
        for arch in samples(space, 3, seed=9):
            ir = Counter(k for b in arch.blocks for k in block_kernels(b))
            assert Counter(kernels_from_onnx(build_onnx(arch))) == ir, space


def test_kernel_rf_and_flops_predict_torch_exported_onnx(fitted, tmp_path):
    import io
    import warnings

    import onnx
    import torch

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.BatchNorm2d(16), torch.nn.Hardswish(),
                              torch.nn.Conv2d(16, 16, 3, 1, 1, groups=16), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 10)).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.randn(1, 3, 128, 128), buf, dynamo=False, opset_version=17)
    model = onnx.load_from_string(buf.getvalue())
    for name in ("kernel-rf", "flops-linear"):
        assert np.isfinite(fitted[name].predict_onnx([model])).all()
    with pytest.raises(HwprofError, match="outside it"):
        fitted["lut"].predict_onnx([model])
    path = tmp_path / "net.onnx"
    path.write_bytes(buf.getvalue())
    pred = tmp_path / "k.pred"
    store.save(fitted["kernel-rf"], pred)
    out = json.loads(run_cli("hwprof", "predict", "--predictor", str(pred), "--model", str(path), "--json",
                             check=True).stdout)
    assert out["predictions"][0]["predicted_ms"] > 0
    # a 16-channel toy is far smaller than any trained network: the output says its prediction extrapolates
    assert any("outside the trained networks" in note for note in out["predictions"][0]["extrapolates"])
    plain = run_cli("hwprof", "predict", "--predictor", str(pred), "--model", str(path), check=True).stdout
    assert "extrapolates" in plain and "measure networks like it" in " ".join(plain.split())
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(buf.getvalue()[:200])
    proc = run_cli("hwprof", "predict", "--predictor", str(pred), "--model", str(bad))
    assert proc.returncode == 2 and "not a valid ONNX model" in proc.stderr


def test_kernel_rf_coverage_is_empty_inside_the_training_data_and_kept_in_the_file(fitted):
    from hwprof.graph_styles import build_model

    predictor = fitted["kernel-rf"]
    lo, hi = predictor.network_range_
    assert 0 < lo < hi
    trained_types = set(predictor.kernel_range_)
    assert {"pwconv", "dwconv", "fc"} <= trained_types
    archs = samples("ofa", 40, seed=0)
    inside = [a for a in archs if 1.2 * lo <= predictor._network_features([a])[0, 0] <= 0.8 * hi][:3]
    assert inside and predictor.coverage([build_model(a) for a in inside]) == [[]] * len(inside)
    reloaded = store.loads(store.dumps(predictor))
    assert reloaded.kernel_range_ == predictor.kernel_range_ and reloaded.network_range_ == predictor.network_range_
    meta, arrays, models = predictor.get_state()
    old = dict(meta)
    del old["kernel_range"], old["network_range"]  # a file saved before ranges were recorded says nothing
    reloaded.set_state(old, arrays, models)
    assert reloaded.coverage([build_model(inside[0])]) == [[]]


def test_noise_seed_is_not_a_setting(npu, fitted, tmp_path):
    other_seed = tmp_path / "npu-seed7"
    measure_into(Dataset(other_seed), resolve("kirin-npu", seed=7), samples("ofa", 5, seed=2), mode="e2e")
    predictor = fitted["additive"]
    predictor.provenance_ = npu.provenance()
    check_compatible(predictor, load_measurements(other_seed))  # same device, same settings: accepted
