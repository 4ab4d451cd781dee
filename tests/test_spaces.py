"""Search spaces: registry, determinism, operators, encodings."""

from __future__ import annotations

import numpy as np
import pytest

from hwprof.errors import HwprofError
from nas.spaces import get_space
from tests.conftest import ATTENTION_SPACES, SPACES, samples


def test_registry_lists_exactly_the_builtin_spaces(all_space_names):
    assert sorted(all_space_names) == sorted(SPACES + ATTENTION_SPACES)


def test_unknown_space_is_a_clear_error():
    with pytest.raises(HwprofError, match="unknown search space 'nope'") as err:
        get_space("nope")
    assert "ofa" in err.value.one_line()


def test_space_arguments_are_read_from_the_name_and_keep_predictor_caches_apart():
    from devices import resolve
    from hwprof.predictors.cache import cache_path

    space = get_space("ofa:width_mult=1.25")
    assert space.params == {"width_mult": 1.25} and space.spec == "ofa:width_mult=1.25"
    assert get_space(space.spec).widths == space.widths != get_space("ofa").widths
    device = resolve("kirin-npu")
    assert cache_path(device, space) != cache_path(device, get_space("ofa"))
    for bad, says in (("vit:gelu", "is not KEY=VALUE"), ("vit:colour=red", "takes no argument 'colour'"),
                      ("vit:gelu=fast", "unknown GELU form 'fast'"),
                      ("proxyless:width_mult=abc", "'width_mult=abc' of 'proxyless' is not a number")):
        with pytest.raises(HwprofError, match=says):
            get_space(bad)


def test_proxyless_width_multiplier_scales_channels_like_mobilenet_v2():
    rng = np.random.default_rng(0)
    genes = get_space("proxyless").sample_genes(rng)
    plain, narrow, wide = (get_space(name).decode(genes) for name in
                           ("proxyless", "proxyless:width_mult=0.75", "proxyless:width_mult=1.4"))
    assert get_space("proxyless:width_mult=0.75").spec == "proxyless:width_mult=0.75"
    assert [b.op for b in narrow.blocks] == [b.op for b in plain.blocks]  # same genes, same layers
    assert (narrow.blocks[0].c_out, plain.blocks[0].c_out, wide.blocks[0].c_out) == (24, 32, 48)
    assert narrow.blocks[2].c_out == 24  # 0.75 x 24 = 18 rounds up, not below 90% of it
    assert narrow.blocks[-3].c_out == plain.blocks[-3].c_out == 1280 < wide.blocks[-3].c_out  # the head only grows
    assert narrow.macs < plain.macs < wide.macs


@pytest.mark.parametrize("space", SPACES)
def test_same_seed_same_samples(space):
    a = [x.hash for x in samples(space, 10, seed=3)]
    b = [x.hash for x in samples(space, 10, seed=3)]
    c = [x.hash for x in samples(space, 10, seed=4)]
    assert a == b
    assert a != c


@pytest.mark.parametrize("space", SPACES)
def test_encode_decode_round_trip(space):
    sp = get_space(space)
    for arch in samples(space, 20):
        vec = sp.encode(arch)
        assert vec.shape == (sp.n_variables,)
        assert sp.decode(vec) == arch


@pytest.mark.parametrize("space", SPACES)
def test_mutate_and_crossover_stay_in_space(space):
    sp = get_space(space)
    rng = np.random.default_rng(0)
    a, b = samples(space, 2)
    children = [sp.mutate(a, rng, p=0.3) for _ in range(10)] + [sp.crossover(a, b, rng) for _ in range(10)]
    for child in children:
        assert child.space == space
        assert sp.to_arch(child.genes) == child  # canonical and buildable
    assert any(c.hash != a.hash for c in children)
    # p=0 mutation changes nothing
    assert sp.mutate(a, rng, p=0.0) == a
    # crossover genes come from one parent or the other (before canonicalisation of skips)
    child = sp.crossover(a, b, rng)
    assert len(child.genes) == len(a.genes)


@pytest.mark.parametrize("space", SPACES)
def test_layer_choices_and_size(space):
    sp = get_space(space)
    layers = sp.layer_choices()
    assert len(layers) >= 19
    assert all(len(v.options) == len(v.labels) >= 2 for v in layers)
    assert sp.size() > 10**12


def test_ofa_space_matches_the_paper():
    sp = get_space("ofa")
    layers = sp.layer_choices()
    assert len(layers) == 20  # 5 stages x max depth 4
    assert {o for v in layers for o in v.options if o != "skip"} == {(k, e) for k in (3, 5, 7) for e in (3, 4, 6)}
    assert sp.variables[0].options == tuple(range(128, 225, 4))
    depths = []
    rng = np.random.default_rng(0)
    for _ in range(300):
        labels = sp.describe(sp.sample(rng))
        depths.append(sum(labels[f"s1.b{j}"] != "skip" for j in range(4)))
    assert set(depths) == {2, 3, 4}  # depth {2,3,4}, drawn uniformly
    assert abs(np.mean(depths) - 3.0) < 0.2


def test_canonical_moves_skips_to_the_end_of_a_stage():
    sp = get_space("ofa")
    arch = samples("ofa", 1)[0]
    genes = list(arch.genes)
    i2, i3 = (sp.variables.index(next(v for v in sp.variables if v.name == n)) for n in ("s1.b2", "s1.b3"))
    skip = sp.variables[i2].skip_index
    genes[i2], genes[i3] = skip, 0
    canon = sp.canonical(tuple(genes))
    assert canon[i2] == 0 and canon[i3] == skip
    assert sp.to_arch(genes).hash == sp.to_arch(canon).hash


def test_fbnet_has_22_layers_of_9_candidates():
    sp = get_space("fbnet")
    layers = sp.layer_choices()
    assert len(layers) == 22
    assert all(len(v.options) == 9 for v in layers)
    assert any("_g2" in label for label in layers[0].labels)


def test_hurricane_pool_has_32_operators():
    sp = get_space("hurricane")
    assert max(len(v.options) for v in sp.layer_choices()) == 32
    ops = {b.op for a in samples("hurricane", 20) for b in a.blocks}
    assert {"mbconv", "shuffle", "xception"} <= ops


def test_s3nas_uses_mixconv():
    kernels = {b.kernel for a in samples("s3nas", 10) for b in a.blocks if b.op == "mbconv"}
    assert (3, 5, 7) in kernels and (3,) in kernels


def test_bad_genes_are_clear_errors():
    sp = get_space("ofa")
    with pytest.raises(HwprofError, match="expects 21 genes"):
        sp.to_arch([0, 1])
    with pytest.raises(HwprofError, match="out of range"):
        sp.to_arch([99] * sp.n_variables)
