"""Single-path (S3NAS) search: supernet, latency term, compound scaling, post-processing, CLI."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from devices import resolve
from hwprof.dataset import Dataset
from hwprof.errors import HwprofError
from hwprof.predictors.data import load_measurements
from hwprof.predictors.training import fit_on
from hwprof.profiling import measure_into
from nas.datasets import digits
from nas.postprocess import postprocess, with_hswish, with_se
from hwprof.interleave import network_timer
from nas.scaling import compound_scale, scale_arch, stages
from nas.searchers import Constraint, create_searcher
from nas.spaces import get_space
from nas.supernet import Supernet
from tests.conftest import run_cli, samples


@pytest.fixture(scope="module")
def s3nas_lut(tmp_path_factory):
    path = tmp_path_factory.mktemp("s3nas-kirin")
    measure_into(Dataset(path), resolve("kirin-npu", seed=0), samples("s3nas", 60, seed=3), mode="both")
    return fit_on("lut", load_measurements(path), fallback="kernel-rf")


def _effective_blocks(net: Supernet) -> list[tuple[int, tuple[int, ...]] | None]:
    """(active channels, kernel size per MixConv group) of each position, read from the weights the forward uses."""
    out = []
    for block, keep in zip(net.blocks, net.keeps()):
        if float(keep.detach()) == 0:
            out.append(None)
            continue
        pk, pe, _ = block.decisions()
        kernel = torch.einsum("a,b,abcxyz->cxyz", pk, pe, block.masks)[:, 0]
        channels = int((pe[:, None] * block.channel_masks).sum(0).sum())
        sizes = [int(kernel[c].sum(0).gt(0).sum()) for c in range(channels)]
        groups = tuple(k for i, k in enumerate(sizes) if i == 0 or k != sizes[i - 1])
        out.append((channels, groups))
    return out


@pytest.mark.parametrize("space", ["s3nas", "ofa"])
def test_thresholds_choose_the_rebuilt_architecture(space):
    sp = get_space(space)
    torch.manual_seed(0)
    net = Supernet(sp, 10)
    rng = np.random.default_rng(0)
    for _ in range(5):
        genes = sp.sample_genes(rng)
        net.force(genes)
        chosen = net.genes()
        layer = [i for i, v in enumerate(sp.variables) if v.kind == "layer"]
        assert [chosen[i] for i in layer] == [genes[i] for i in layer]
        arch = sp.to_arch(chosen)
        mb = [b for s, e in stages(arch.blocks) for b in arch.blocks[s:e]]
        effective = [e for e in _effective_blocks(net) if e is not None]
        # the weights the supernet's forward pass uses are the rebuilt network's blocks
        assert effective == [(b.mid, b.kernel) for b in mb]
        with torch.no_grad():
            assert net.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_expected_latency_is_the_predictors(s3nas_lut):
    sp = get_space("s3nas")
    net = Supernet(sp, 10, s3nas_lut.cost_table(sp))
    for genes in (sp.sample_genes(np.random.default_rng(s)) for s in range(3)):
        net.force(genes)
        assert float(net.expected_latency()) == pytest.approx(
            float(s3nas_lut.predict_genes(sp, np.array([genes]))[0]), rel=1e-5)
    # the latency term has a gradient with respect to the thresholds
    net.force(sp.sample_genes(np.random.default_rng(9)))
    for t in net.thresholds():
        t.data.clamp_(-2, 2)
    net.expected_latency().backward()
    assert any(float(t.grad.abs().sum()) > 0 for t in net.thresholds())


@pytest.mark.slow
def test_single_path_search_trains_and_is_reproducible(s3nas_lut):
    sp = get_space("s3nas")
    table = s3nas_lut.cost_table(sp)
    target = table.intercept_ms + 0.4 * sum(float(c.max() - c.min()) for c in table.costs_ms)
    settings = {"epochs": 2, "warmup_epochs": 1, "max_images": 200, "batch": 32, "train_resolution": 16}
    runs = [create_searcher("single-path", **settings).search(sp, s3nas_lut, None, Constraint(target), seed=1)
            for _ in range(2)]
    a, b = runs
    assert a.history[-1].arch.genes == b.history[-1].arch.genes
    curve = a.extra["training_curve"]
    assert len(curve) == 2 * 5 and all(c["latency_penalty"] == 0 for c in curve[:5])
    assert curve[0]["expected_latency_ms"] > target  # starts from the largest network
    assert "digits" in a.estimator and "ImageNet" not in a.estimator
    if a.best is not None:
        assert a.best.latency_ms <= target
    with pytest.raises(HwprofError, match="latency target"):
        create_searcher("single-path", **settings).search(sp, s3nas_lut, None, Constraint(None))


def test_compound_scaling_grows_within_headroom_only():
    kirin = network_timer(resolve("kirin-npu", seed=0))
    arch = get_space("s3nas").to_arch(get_space("s3nas").sample_genes(np.random.default_rng(4)))
    bigger = scale_arch(arch, 1.5, 1.2, 1.2)
    assert len(bigger.blocks) > len(arch.blocks) and bigger.resolution > arch.resolution
    assert bigger.blocks[-1].c_out == arch.blocks[-1].c_out  # classes unchanged
    base = kirin(arch)
    roomy = compound_scale(arch, kirin, 1.5 * base)
    assert roomy.changed and roomy.latency_ms <= 1.5 * base and roomy.arch.macs > arch.macs
    tight = compound_scale(arch, kirin, 0.99 * base)
    assert not tight.changed and tight.arch == arch
    at_limit = compound_scale(arch, kirin, base)  # a wider network may still fit (channel alignment)
    assert at_limit.latency_ms <= base and at_limit.arch.macs >= arch.macs


def test_postprocess_is_device_aware_and_needs_headroom():
    arch = get_space("s3nas").to_arch(get_space("s3nas").sample_genes(np.random.default_rng(2)))
    assert any(b.se for b in with_se(arch).blocks) and any(b.act == "hswish" for b in with_hswish(arch).blocks)

    def prefers_se(a):
        return sum(b.se for b in a.blocks) + 0.5 * sum(b.act == "hswish" for b in a.blocks)

    kirin = network_timer(resolve("kirin-npu", seed=0))
    base = kirin(arch)
    roomy = postprocess(arch, kirin, prefers_se, 2 * base)
    assert roomy.changed and roomy.applied == "se+hswish" and kirin(roomy.arch) <= 2 * base
    assert not postprocess(arch, kirin, prefers_se, 0.95 * base).changed
    at_limit = postprocess(arch, kirin, prefers_se, base)  # only what costs (next to) nothing may be added
    assert at_limit.applied in (None, "hswish") and kirin(at_limit.arch) <= base
    # on the DSP, SE's pooling and h-sigmoid and h-swish fall back to the CPU: far costlier than on the NPU
    dsp = network_timer(resolve("hexagon-dsp", seed=0))
    assert dsp(with_se(arch)) / dsp(arch) > 1.5 * kirin(with_se(arch)) / base


def test_digits_are_labelled_and_split():
    data = digits(16, max_images=100)
    assert data.x_train.shape[1:] == (3, 16, 16) and len(data.y_train) + len(data.y_val) == 100
    assert "digits" in data.description and len(data.classes) == 10


@pytest.mark.slow
def test_cli_single_path(tmp_path, monkeypatch):
    monkeypatch.setenv("HWPROF_CACHE", str(tmp_path / "cache"))
    proc = run_cli("nas", "search", "--searcher", "single-path", "--space", "s3nas", "--target", "kirin-npu")
    assert proc.returncode == 2 and "--latency-ms" in proc.stderr and "Traceback" not in proc.stderr
    out = tmp_path / "out"
    args = ("nas", "search", "--searcher", "single-path", "--space", "s3nas", "--target", "kirin-npu",
            "--latency-ms", "6", "--epochs", "2", "--param", "max_images=160", "--param", "train_resolution=16",
            "--param", "batch=32", "--out", str(out), "--json")
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["simulated"] and summary["searcher"] == "single-path"
    for name in ("summary.json", "training.csv", "training.png", "pareto.png", "history.parquet"):
        assert (out / name).exists(), name
    if summary["best"] is not None:
        assert (out / "best.onnx").exists() and summary["best"]["measured_latency_ms"] <= 6
        assert summary["refined"]["scaling"] is not None and summary["refined"]["postprocess"] is not None


@pytest.mark.slow
def test_adaptive_bn_moves_statistics_to_the_subnetwork_and_helps():
    from nas.training import recalibrate_bn

    sp = get_space("s3nas")
    data = digits(16, max_images=600, seed=0)
    torch.manual_seed(0)
    net = Supernet(sp, 10)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    opt = torch.optim.SGD(net.weights(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(0)
    net.train()
    for step in range(20):  # train random sub-networks, as a one-shot supernet is trained
        net.force(sp.sample_genes(rng))
        idx = torch.from_numpy(rng.choice(len(y), 32, replace=False))
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.force(sp.sample_genes(np.random.default_rng(123)))
    bn = net.blocks[3].project[1]
    inherited_mean = bn.running_mean.clone()
    inherited = _val_loss(net, data)
    # the sub-network's own batch statistics at that layer: every BN normalises with its batch (train
    # mode), on a copy so that the running statistics under test stay as inherited
    probe = copy.deepcopy(net).train()
    captured = {}

    def capture(module, inputs, output):  # returns None so the output is left alone
        captured["mean"] = inputs[0].mean((0, 2, 3)).detach()

    probe.blocks[3].project[1].register_forward_hook(capture)
    with torch.no_grad():
        probe(x[:256])
    recalibrate_bn(net, data.x_train, batches_=8, batch=64)
    adapted = _val_loss(net, data)
    before = float((inherited_mean - captured["mean"]).norm())
    after = float((bn.running_mean - captured["mean"]).norm())
    assert after < 0.5 * before
    # helps: the sub-network's own statistics fit it better (cross-entropy; after 20 steps top-1 is near
    # chance, where it only measures noise)
    assert adapted < inherited, (adapted, inherited)


def _val_loss(net, data) -> float:
    net.eval()
    with torch.no_grad():
        logits = net(torch.from_numpy(data.x_val))
    return float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(data.y_val)))


def test_self_distillation_teacher_is_the_largest_subnetwork_and_trains(s3nas_lut):
    from nas.training import distillation_loss

    logits = torch.randn(8, 10)
    assert float(distillation_loss(logits, logits)) == pytest.approx(0.0, abs=1e-6)
    assert float(distillation_loss(logits, torch.randn(8, 10))) > 0
    sp = get_space("s3nas")
    torch.manual_seed(0)
    net = Supernet(sp, 10)
    net.force(sp.sample_genes(np.random.default_rng(2)))
    before = [t.clone() for t in net.thresholds()]
    x = torch.randn(8, 3, 32, 32)
    net.train()  # batch statistics: untrained running statistics would flatten every output
    teacher = net.teacher_logits(x)
    assert all(torch.equal(a, b) for a, b in zip(before, net.thresholds()))  # the student's choices are kept
    assert float(distillation_loss(net(x), teacher)) > 1e-4  # a smaller sub-network is taught something
    net.force(net.largest_genes())
    assert torch.allclose(teacher, net(x))
    assert all(b.kernel_sets[-1] == b.kernel_sets[max(a for a, _ in b.option_index)] for b in net.blocks)
    table = s3nas_lut.cost_table(sp)
    target = table.intercept_ms + 0.4 * sum(float(c.max() - c.min()) for c in table.costs_ms)
    settings = {"epochs": 2, "warmup_epochs": 1, "max_images": 64, "batch": 32, "train_resolution": 16}
    taught = create_searcher("single-path", distill=True, **settings).search(sp, s3nas_lut, None,
                                                                             Constraint(target), seed=1)
    assert taught.settings["distill"] and taught.extra["training_curve"]
