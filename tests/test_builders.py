"""ONNX and torch builders agree with the IR (shapes, params, MACs)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hwprof.build_onnx import build_onnx
from hwprof.onnx_stats import count_macs, count_params
from hwprof.build_torch import build_torch, count_torch_params
from tests.conftest import SPACES, samples


def _run_ort(model: onnx.ModelProto, shape, dtype=np.float32) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    return sess.run(None, {"input": x})[0]


@pytest.mark.parametrize("space", SPACES)
def test_onnx_valid_runs_and_matches_ir(space):
    for arch in samples(space, 8):
        model = build_onnx(arch)
        onnx.checker.check_model(model, full_check=True)
        out = _run_ort(model, arch.input_shape)
        assert out.shape == arch.output_shape
        assert np.isfinite(out).all()
        assert count_params(model) == arch.params
        assert count_macs(model) == arch.macs


@pytest.mark.parametrize("space", SPACES)
def test_torch_matches_ir(space):
    for arch in samples(space, 20):
        net = build_torch(arch)
        assert count_torch_params(net) == arch.params
    for arch in samples(space, 2, seed=5):  # independent MAC counter on a few networks
        net = build_torch(arch).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            out = net(torch.zeros(arch.input_shape))
        assert tuple(out.shape) == arch.output_shape
        assert counter.get_total_flops() == 2 * arch.macs


def test_torch_and_onnx_compute_the_same_function():
    arch = samples("ofa", 1, seed=2)[0]
    net = build_torch(arch).eval()
    model = build_onnx(arch)
    # copy ONNX weights into torch by layer name, then compare outputs
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    with torch.no_grad():
        for layer in arch.layers:
            if layer.kind in ("conv", "linear"):
                mod = net.mods[layer.name.replace(".", "_")]
                lin = mod[0] if layer.kind == "conv" else mod[1]
                lin.weight.copy_(torch.from_numpy(inits[f"{layer.name}.weight"].copy()))
                if lin.bias is not None:
                    lin.bias.copy_(torch.from_numpy(inits[f"{layer.name}.bias"].copy()))
    x = np.random.default_rng(1).standard_normal(arch.input_shape).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())


@pytest.mark.parametrize("space", SPACES)
def test_single_blocks_build_and_run(space):
    arch = samples(space, 1, seed=9)[0]
    for block in arch.blocks:
        model = build_onnx(block)
        onnx.checker.check_model(model)
        out = _run_ort(model, (1, block.c_in, block.resolution, block.resolution))
        assert out.shape[1] == block.c_out
        assert count_macs(model) == block.macs
        assert count_params(model) == block.params


def test_fp16_models_are_valid():
    for space in SPACES:
        arch = samples(space, 1)[0]
        model = build_onnx(arch, dtype="float16")
        onnx.checker.check_model(model, full_check=True)
        assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
        assert count_params(model) == arch.params


def test_onnx_build_is_deterministic_and_carries_provenance():
    arch = samples("ofa", 1)[0]
    a, b = build_onnx(arch), build_onnx(arch)
    assert a.SerializeToString() == b.SerializeToString()
    props = {p.key: p.value for p in a.metadata_props}
    assert props["hwprof.arch_hash"] == arch.hash
    assert props["hwprof.space"] == "ofa"
