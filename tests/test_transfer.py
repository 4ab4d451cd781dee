"""Few-shot transfer: the transfer predictor, informative selection, and the one-command bring-up."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from hwprof.dataset import Dataset
from hwprof.errors import HwprofError
from hwprof.predictors import create_predictor, store
from hwprof.predictors.data import load_measurements
from hwprof.predictors.training import fit_on
from hwprof.predictors.transfer import (LEVEL_CHOICES, TransferPredictor, _device_token, block_labels,
                                       informative_sample, load_sources)
from devices import resolve
from hwprof.profiling import measure_into
from nas.spaces import get_space
from tests.conftest import run_cli, samples


def _chip_predictors(root, archs, mode: str, model: str) -> list:
    """``model`` fitted on ``archs`` measured on kirin-npu and on hexagon-dsp (simulated)."""
    fitted = []
    for device in ("kirin-npu", "hexagon-dsp"):
        measure_into(Dataset(root / device), resolve(device), archs, mode=mode)
        fitted.append(fit_on(model, load_measurements(root / device)))
    return fitted


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Additive predictors of ofa on two simulated chips, and 40 measured networks of a third."""
    root = tmp_path_factory.mktemp("transfer")
    archs = samples("ofa", 40, seed=4)
    paths = []
    for device, model in zip(("kirin-npu", "hexagon-dsp"), _chip_predictors(root, archs, "e2e", "additive")):
        paths.append(str(root / f"{device}.pred"))
        store.save(model, paths[-1])
    measure_into(Dataset(root / "vpu"), resolve("myriad-vpu"), archs, mode="e2e")
    return root, paths


def test_mixture_recovers_a_combination_of_its_sources_and_saves_them_inside(sources, tmp_path):
    root, paths = sources
    models = load_sources(paths)
    archs = samples("ofa", 12, seed=8)
    truth = 2.0 * models[0].predict(archs) + 0.5 * models[1].predict(archs) + 0.3
    predictor = TransferPredictor(paths).fit(archs, truth)
    probe = samples("ofa", 20, seed=9)
    expected = 2.0 * models[0].predict(probe) + 0.5 * models[1].predict(probe) + 0.3
    np.testing.assert_allclose(predictor.predict(probe), expected, rtol=1e-6)
    assert set(predictor.weights()) >= {"macs_g", "constant_ms"}
    saved = tmp_path / "t.pred"
    store.save(predictor, saved)
    for p in paths:  # the sources live inside the saved predictor
        (root / p).rename(str(p) + ".moved")
    try:
        loaded = store.load(saved)
        np.testing.assert_allclose(loaded.predict(probe), expected, rtol=1e-6)
        manifest = json.loads(zipfile.ZipFile(saved).read("manifest.json"))
        recorded = manifest["state"]["sources"]
        assert [r["device"] for r in recorded] == ["kirin-npu", "hexagon-dsp"] and all(r["sha256"] for r in recorded)
    finally:
        for p in paths:
            (root / (str(p) + ".moved")).rename(p)


def test_a_source_is_recorded_by_its_device_token_with_its_dtype():
    def fitted_for(device, simulated, dtype):
        model = create_predictor("flops-linear")
        model.provenance_ = {"device": device, "simulated": simulated, "settings": json.dumps({"dtype": dtype})}
        return model

    assert _device_token(fitted_for("cpu", False, "int8")) == "cpu:int8"  # not the float32 cpu's "cpu"
    assert _device_token(fitted_for("cpu", False, "float32")) == "cpu"
    assert _device_token(fitted_for("kirin-npu", True, "int8")) == "kirin-npu"  # a chip has its profile's one dtype


def test_mixture_finds_a_per_layer_cost_no_source_has(sources):
    """A chip that pays a fixed time per dispatched layer on top of a source's costs: the layer term recovers it."""
    from hwprof.predictors.transfer import layer_count

    _, paths = sources
    models = load_sources(paths)
    archs, probe = samples("ofa", 12, seed=8), samples("ofa", 20, seed=9)
    assert len({layer_count(a) for a in archs}) > 3  # depth varies, so the layer count does
    layer_ms = 0.05

    def truth(nets):
        return 1.5 * models[0].predict(nets) + layer_ms * np.array([layer_count(a) for a in nets])

    predictor = TransferPredictor(paths, method="mixture").fit(archs, truth(archs))
    assert predictor.weights()["per_layer_ms"] == pytest.approx(layer_ms, rel=1e-4)
    np.testing.assert_allclose(predictor.predict(probe), truth(probe), rtol=1e-5)
    # a file saved before the layer term (coefficients: sources, MACs, constant) still loads and predicts the same
    old = store.loads(store.dumps(predictor))
    old.coef_ = np.delete(predictor.coef_, len(models) + 1)
    old.coef_[len(models) + 1] = predictor.coef_[-1]
    arrays = old.get_state()[1]
    old.set_state(old.get_state()[0], arrays, {})
    assert old.weights()["per_layer_ms"] == 0.0 and old.predict(probe).shape == (20,)


def test_nearest_and_bad_sources(sources, tmp_path):
    root, paths = sources
    data = load_measurements(root / "vpu")
    nearest = fit_on("transfer", data, sources=paths, method="nearest")
    assert np.count_nonzero(nearest.coef_[:2]) == 1
    with pytest.raises(HwprofError, match="at least 3 measured networks"):
        TransferPredictor(paths).fit(data.archs[:2], data.latency_ms[:2])
    other = tmp_path / "proxyless.pred"
    prox = samples("proxyless", 20)
    measure_into(Dataset(tmp_path / "p"), resolve("kirin-npu"), prox, mode="e2e")
    store.save(fit_on("additive", load_measurements(tmp_path / "p")), other)
    with pytest.raises(HwprofError, match="fitted on space 'proxyless'"):
        TransferPredictor([paths[0], str(other)]).fit(data.archs, data.latency_ms)
    tampered = tmp_path / "tampered.pred"
    raw = bytearray((root / "kirin-npu.pred").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    tampered.write_bytes(bytes(raw))
    fit = run_cli("hwprof", "fit-predictor", "--data", str(root / "vpu"), "--transfer-from", f"{paths[0]},{tampered}",
                  "--out", str(tmp_path / "x.pred"))
    assert fit.returncode == 2 and len(fit.stderr.strip().splitlines()) == 1 and "tampered.pred" in fit.stderr
    assert not (tmp_path / "x.pred").exists()
    levels = run_cli("hwprof", "fit-predictor", "--data", str(root / "vpu"), "--transfer-from", paths[0],
                     "--param", "levels=kernel", "--out", str(tmp_path / "x.pred"))
    assert levels.returncode == 2 and len(levels.stderr.strip().splitlines()) == 1
    assert "unknown blockwise levels 'kernel'" in levels.stderr and not (tmp_path / "x.pred").exists()


@pytest.fixture(scope="module")
def block_sources(tmp_path_factory):
    """lut predictors (they price single blocks) of ofa on two simulated chips."""
    return _chip_predictors(tmp_path_factory.mktemp("block-sources"), samples("ofa", 16, seed=4), "both", "lut")


def test_blockwise_corrects_a_kind_of_block_no_source_prices_right(block_sources, tmp_path):
    """A chip whose 7x7 blocks cost more than every source says: the mixture cannot express it, blockwise can."""
    models = block_sources
    archs, probe = samples("ofa", 20, seed=8), samples("ofa", 60, seed=9)

    def k7_cost(nets):
        return np.array([sum(models[0].predict_blocks([b])[0] for b in a.blocks if max(b.kernel) == 7)
                         for a in nets])

    def truth(nets):
        return models[0].predict(nets) + 0.6 * models[1].predict(nets) + 0.8 * k7_cost(nets)

    mixture = TransferPredictor(method="mixture").with_sources(models).fit(archs, truth(archs))
    blockwise = TransferPredictor().with_sources(models).fit(archs, truth(archs))
    assert blockwise.method_ == "blockwise"  # auto: blockwise predicts held-out rows better here
    assert min(v for k, v in blockwise.loo_mape_.items() if k.startswith("blockwise")) < blockwise.loo_mape_["mixture"]
    assert blockwise.loo_mape_[f"blockwise ({blockwise.levels_})"] == min(blockwise.loo_mape_.values())
    error = {name: float(np.mean(np.abs(m.predict(probe) / truth(probe) - 1)))
             for name, m in (("mixture", mixture), ("blockwise", blockwise))}
    assert error["blockwise"] < 0.5 * error["mixture"]
    blocks = list({b for a in archs for b in a.blocks})
    correction = dict(zip(blocks, blockwise.block_corrections(blocks)))
    searched = [b for b in blocks if b.op == "mbconv" and b.expand_conv]
    assert min(correction[b] for b in searched if max(b.kernel) == 7) > max(
        correction[b] for b in searched if max(b.kernel) == 3)
    # the stem, head and pooling every network has once are not given corrections no measurement pins down
    assert all(abs(correction[b]) < 0.2 for b in blocks if b.op != "mbconv")
    loaded = store.loads(store.dumps(blockwise))
    np.testing.assert_allclose(loaded.predict(probe), blockwise.predict(probe))

    plain = models[0].predict(archs) + 0.6 * models[1].predict(archs)  # no kind differs: stays the mixture
    same = TransferPredictor(method="blockwise").with_sources(models).fit(archs, plain)
    np.testing.assert_allclose(same.predict(probe), models[0].predict(probe) + 0.6 * models[1].predict(probe),
                               rtol=0.02)
    # measurement noise no kind explains: auto keeps the mixture, whose held-out error is lower
    noisy = plain * (1 + 0.05 * np.random.default_rng(0).standard_normal(len(plain)))
    chosen = TransferPredictor().with_sources(models).fit(archs, noisy)
    assert chosen.method_ == "mixture" and chosen.loo_mape_["mixture"] == min(chosen.loo_mape_.values())
    assert chosen.levels_ == "" and not chosen.corrections()
    assert store.loads(store.dumps(chosen)).loo_mape_ == chosen.loo_mape_
    additive = create_predictor("additive").fit(archs, plain)
    with pytest.raises(HwprofError, match="price single blocks"):
        TransferPredictor(method="blockwise").with_sources([additive]).fit(archs, plain)
    no_blocks = TransferPredictor().with_sources([additive]).fit(archs, plain)  # auto: mixture or nearest only
    assert no_blocks.method_ in ("mixture", "nearest") and set(no_blocks.loo_mape_) == {"mixture", "nearest"}


def test_blockwise_refines_a_kind_by_expansion_ratio(block_sources):
    """A chip where only 5x5 blocks of expansion 6 cost more: single effects and kinds cannot say it, subkinds can."""
    models = block_sources
    archs, probe = samples("ofa", 20, seed=8), samples("ofa", 60, seed=9)

    def is_k5e6(b):
        return b.op == "mbconv" and max(b.kernel) == 5 and b.expand_conv and round(b.mid / b.c_in) == 6

    def truth(nets):
        extra = [sum(models[0].predict_blocks([b])[0] for b in a.blocks if is_k5e6(b)) for a in nets]
        return models[0].predict(nets) + 0.6 * models[1].predict(nets) + 1.5 * np.array(extra)

    refined = TransferPredictor(method="blockwise", levels="effect+kind+subkind").with_sources(models).fit(
        archs, truth(archs))
    assert set(refined.column_levels_) == {"effect", "kind", "subkind"}
    kinds_only = TransferPredictor(method="blockwise", levels="kind").with_sources(models).fit(archs, truth(archs))
    assert set(kinds_only.column_levels_) == {"kind"}
    error = {name: float(np.mean(np.abs(m.predict(probe) / truth(probe) - 1)))
             for name, m in (("refined", refined), ("kinds only", kinds_only))}
    assert error["refined"] < 0.75 * error["kinds only"]
    # levels=auto chooses among LEVEL_CHOICES by leave-one-out error, which leave subkinds out (on 20 noisy rows
    # they overfit): a chip like this one needs them named
    chosen = TransferPredictor(method="blockwise").with_sources(models).fit(archs, truth(archs))
    assert "subkind" not in chosen.levels_ and set(chosen.loo_mape_) == {f"blockwise ({lv})" for lv in LEVEL_CHOICES}
    assert error["refined"] < float(np.mean(np.abs(chosen.predict(probe) / truth(probe) - 1)))
    mbconvs = list({b for a in archs for b in a.blocks if b.op == "mbconv" and b.expand_conv})
    correction = refined.block_corrections(mbconvs)  # a block's: the sum over its columns (block_labels)
    assert np.isclose(correction[0], sum(refined.corrections().get(label, 0.0) for _, label in block_labels(mbconvs[0])))
    k5e6 = np.array([is_k5e6(b) for b in mbconvs])
    assert correction[k5e6].min() > np.percentile(correction[~k5e6], 90)
    assert correction[k5e6].mean() > correction[~k5e6].mean() + 0.3
    assert all("=" in label for label in refined.corrections("effect"))
    loaded = store.loads(store.dumps(refined))
    assert loaded.columns_ == refined.columns_ and loaded.ridge_ == refined.ridge_
    np.testing.assert_allclose(loaded.predict(probe), refined.predict(probe))


def test_blockwise_prices_a_fixed_cost_per_block_with_an_activation(block_sources):
    """A chip that hands h-swish to its host CPU pays a fixed time per such block, whatever its size: the count
    level says it in ms per block, which relative corrections of the blocks' costs cannot."""
    models = block_sources
    archs, probe = samples("ofa", 20, seed=10), samples("ofa", 60, seed=11)

    def truth(nets):
        fallbacks = np.array([sum(b.op == "mbconv" and b.act == "hswish" for b in a.blocks) for a in nets])
        return models[0].predict(nets) + 0.6 * models[1].predict(nets) + 1.0 * fallbacks

    fit = {lv: TransferPredictor(method="blockwise", levels=lv).with_sources(models).fit(archs, truth(archs))
           for lv in ("effect", "effect+count")}
    error = {lv: float(np.mean(np.abs(m.predict(probe) / truth(probe) - 1))) for lv, m in fit.items()}
    assert error["effect+count"] < 0.8 * error["effect"]
    counted = fit["effect+count"]
    assert set(counted.corrections("count")) == {"per-block act=hswish", "per-block act=relu",
                                                 "per-block se=yes", "per-block se=no"}
    mbconvs = list({b for a in archs for b in a.blocks if b.op == "mbconv"})
    overhead = counted.block_overheads_ms(mbconvs)
    hswish = np.array([b.act == "hswish" for b in mbconvs])
    # the sources' weights and the per-layer time share some of it (20 rows): of the order of the 1 ms
    assert 0.5 < overhead[hswish].mean() - overhead[~hswish].mean() < 1.5
    assert not np.any(fit["effect"].block_overheads_ms(mbconvs))  # no count level: no fixed cost
    # the relative corrections leave the per-block times out
    assert np.all(np.abs(counted.block_corrections(mbconvs)) < 0.2)
    loaded = store.loads(store.dumps(counted))
    assert loaded.column_levels_ == counted.column_levels_
    np.testing.assert_allclose(loaded.predict(probe), counted.predict(probe))


def test_informative_selection_is_seeded_and_spans_the_sources(sources):
    _, paths = sources
    space = get_space("ofa")
    models = load_sources(paths)
    a = informative_sample(space, models, 10, seed=1, pool=300)
    b = informative_sample(space, models, 10, seed=1, pool=300)
    assert [x.hash for x in a] == [x.hash for x in b] and len({x.hash for x in a}) == 10
    with pytest.raises(HwprofError, match="not 'proxyless'"):
        informative_sample(get_space("proxyless"), models, 5)


def test_informative_selection_chooses_for_the_kinds_after_the_mixture(block_sources):
    """Beyond the first SOURCE_DESIGN_PICKS, sources that price blocks steer the picks to the kinds' costs."""
    from hwprof.predictors import transfer

    space = get_space("ofa")
    pool = samples("ofa", 300, seed=7)
    first = informative_sample(space, block_sources, transfer.SOURCE_DESIGN_PICKS, candidates=pool)
    both = informative_sample(space, block_sources, 16, candidates=pool)
    assert [a.hash for a in both[:len(first)]] == [a.hash for a in first]
    row = {a.hash: i for i, a in enumerate(pool)}
    x = transfer._mixture_design_rows(block_sources, pool)
    by_sources = [pool[i] for i in transfer._greedy_d_optimal(x, 16, [row[a.hash] for a in first])]
    kinds = sorted({label for a in pool for b in a.blocks for level, label in block_labels(b) if level == 1})
    costs = transfer._on_one_scale(transfer._kind_costs(block_sources, pool, kinds).mean(axis=0))

    def kinds_log_det(chosen):
        picked = costs[[row[a.hash] for a in chosen]]
        return np.linalg.slogdet(picked.T @ picked + 1e-3 * np.eye(len(kinds)))[1]

    assert kinds_log_det(both) > kinds_log_det(by_sources)


def test_cli_bring_up_measure_fit_and_few_shot_search(sources, tmp_path):
    _, paths = sources
    joined = ",".join(paths)
    run_cli("hwprof", "measure", "--device", "myriad-vpu", "--space", "ofa", "--samples", "8", "--from", joined,
            "--mode", "e2e", "--out", str(tmp_path / "new"), check=True)
    fitted = json.loads(run_cli("hwprof", "fit-predictor", "--data", str(tmp_path / "new"), "--transfer-from", joined,
                                "--test-fraction", "0", "--out", str(tmp_path / "new.pred"), "--json",
                                check=True).stdout)
    assert fitted["predictor"] == "transfer" and fitted["params"]["sources"] == paths
    assert fitted["transfer"]["method"] == "mixture"  # additive sources price no single blocks
    missing = run_cli("hwprof", "measure", "--device", "myriad-vpu", "--space", "ofa", "--select", "informative",
                      "--out", str(tmp_path / "y"))
    assert missing.returncode == 2 and "--from" in missing.stderr
    out = tmp_path / "search"
    summary = json.loads(run_cli("nas", "search", "--space", "ofa", "--target", "myriad-vpu", "--few-shot", "8",
                                 "--transfer-from", joined, "--latency-ms", "8", "--budget", "40", "--estimator",
                                 "synflow", "--out", str(out), "--json", check=True).stdout)
    assert summary["predictor"] == "transfer" and summary["predictor_file"] == str(out / "few-shot.pred")
    assert summary["best"]["measured_latency_ms"] > 0 and (out / "few-shot-data").is_dir()
    recalibrated = summary["recalibration"]  # 5 networks near the 8 ms target measured, the predictor refitted
    assert len(recalibrated["networks"]) == 5 and all(n["measured_ms"] > 0 for n in recalibrated["networks"])
    assert recalibrated["new_networks_searched_again"] >= 0 and summary["evaluated"] >= 40
    assert len(load_measurements(out / "few-shot-data").archs) == 8 + 5
    assert store.load(out / "few-shot.pred").provenance_["n_networks"] == 13
    alone = run_cli("nas", "search", "--space", "ofa", "--target", "myriad-vpu", "--recalibrate", "3",
                    "--latency-ms", "8", "--out", str(tmp_path / "z"))
    assert alone.returncode == 2 and "--recalibrate 3 needs" in alone.stderr and len(alone.stderr.splitlines()) == 1
