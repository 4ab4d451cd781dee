"""Architecture IR: JSON round trip, stable hash, counts, validation."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hwprof.arch import SCHEMA, Arch, Block
from hwprof.errors import HwprofError
from nas.spaces import get_space
from nas.spaces.ofa import OFASpace
from tests.conftest import SPACES, samples


@pytest.mark.parametrize("space", SPACES)
def test_json_round_trip_is_identity(space):
    for arch in samples(space, 20):
        again = Arch.from_json(arch.to_json())
        assert again == arch
        assert again.hash == arch.hash
        assert again.to_json() == arch.to_json()


def test_hash_is_stable_across_processes():
    archs = {space: samples(space, 3, seed=7) for space in SPACES}
    code = (
        "import numpy as np\n"
        "from nas.spaces import get_space\n"
        "for s in %r:\n"
        "    sp = get_space(s); rng = np.random.default_rng(7)\n"
        "    print(' '.join(sp.sample(rng).hash for _ in range(3)))\n" % SPACES
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout.split("\n")
    for line, space in zip(out, SPACES):
        assert line.split() == [a.hash for a in archs[space]]


def test_hash_identifies_the_network_not_the_genes():
    arch = samples("ofa", 1)[0]
    relabelled = Arch(arch.blocks, space="", genes=())
    assert relabelled.hash == arch.hash
    other = samples("ofa", 1, seed=1)[0]
    assert other.hash != arch.hash


def test_ofa_reference_counts_w12_largest():
    """OFA-MobileNetV3 w1.2, all k7/e6/d4 at 224 px: 843.1 M MACs, 10.70 M params in the OFA code."""
    sp = OFASpace(width_mult=1.2)
    genes = [v.options.index(224) if v.name == "resolution" else v.options.index((7, 6))
             for v in sp.variables]
    arch = sp.to_arch(genes)
    assert round(arch.macs / 1e6, 1) == 843.1
    assert round(arch.params / 1e6, 2) == 10.70


def test_block_counts_by_hand():
    # 3x3 conv 3->16 at 224, stride 2, BN: 112*112*3*16*9 MACs; 3*16*9 + 2*16 params
    b = Block("conv", 3, 16, 224, kernel=(3,), stride=2, act="hswish")
    assert b.macs == 112 * 112 * 3 * 16 * 9
    assert b.params == 3 * 16 * 9 + 32
    # MixConv splits channels: 48 mid over kernels (3, 5, 7) -> 16 each
    m = Block("mbconv", 24, 24, 28, kernel=(3, 5, 7), mid=48)
    expand = 28 * 28 * 24 * 48
    dw = 28 * 28 * 16 * (9 + 25 + 49)
    project = 28 * 28 * 48 * 24
    assert m.macs == expand + dw + project


def test_schema_version_is_checked():
    data = samples("ofa", 1)[0].to_dict()
    data["schema"] = "hwprof.arch/0"
    with pytest.raises(HwprofError, match="schema"):
        Arch.from_dict(data)
    assert data["schema"] != SCHEMA


@pytest.mark.parametrize("mutation, message", [
    (lambda d: d.pop("blocks"), "blocks"),
    (lambda d: d["blocks"][3].update(c_in=-4), "c_in"),
    (lambda d: d["blocks"][3].update(colour="red"), "unknown block field"),
    (lambda d: d["blocks"][3].update(op="teleport"), "unknown block op"),
    (lambda d: d["blocks"][3].update(c_in=d["blocks"][3]["c_in"] + 8), "expects"),
    (lambda d: d["blocks"][3].update(act="mish"), "activation"),
    (lambda d: d.update(genes="abc"), "genes"),
])
def test_malformed_arch_json_is_a_clear_error(mutation, message):
    data = json.loads(samples("ofa", 1)[0].to_json())
    mutation(data)
    with pytest.raises(HwprofError, match=message):
        Arch.from_dict(data)


def test_not_json_is_a_clear_error():
    with pytest.raises(HwprofError, match="malformed"):
        Arch.from_json("{not json")


def test_genes_of_rejects_foreign_arch():
    arch = samples("proxyless", 1)[0]
    with pytest.raises(HwprofError, match="not from space 'ofa'"):
        get_space("ofa").encode(arch)
