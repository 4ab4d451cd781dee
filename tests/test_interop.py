"""Once-for-All subnet configs <-> hwprof architectures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwprof.errors import HwprofError
from nas.interop_ofa import canonical_ofa_config, from_ofa_config, to_ofa_config
from tests.conftest import run_cli, samples

LARGEST_W12 = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": [224], "w": 1.2}


def test_largest_w12_subnet_counts_match_ofa_reference():
    arch = from_ofa_config(LARGEST_W12)
    assert round(arch.macs / 1e6, 1) == 843.1 and round(arch.params / 1e6, 2) == 10.70


def test_arch_config_arch_is_identity():
    for arch in samples("ofa", 30, seed=11):
        assert from_ofa_config(to_ofa_config(arch)) == arch


def test_canonical_config_round_trip_is_identity():
    rng = np.random.default_rng(0)
    for _ in range(30):
        config = {"ks": rng.choice([3, 5, 7], 20).tolist(), "e": rng.choice([3, 4, 6], 20).tolist(),
                  "d": rng.choice([2, 3, 4], 5).tolist(), "r": [int(rng.choice(range(128, 225, 4)))], "w": 1.0}
        canonical = canonical_ofa_config(config)
        assert to_ofa_config(from_ofa_config(canonical)) == canonical
        assert from_ofa_config(canonical) == from_ofa_config(config)  # inactive entries do not matter


@pytest.mark.parametrize("config, message", [
    ({"ks": [3] * 20, "e": [3] * 20}, "lacks d"),
    ({"ks": [4] * 20, "e": [3] * 20, "d": [2] * 5}, "ks has 4"),
    ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": [100]}, "resolution 100"),
])
def test_malformed_configs_are_named(config, message):
    with pytest.raises(HwprofError, match=message):
        from_ofa_config(config)


def test_cli_import_export_round_trip(tmp_path):
    src = tmp_path / "subnet.json"
    src.write_text(json.dumps(LARGEST_W12))
    run_cli("nas", "import", "--from", "ofa", str(src), "--out", str(tmp_path / "arch.json"), check=True)
    run_cli("nas", "export", str(tmp_path / "arch.json"), "--format", "ofa", "--out", str(tmp_path / "back.json"),
            check=True)
    assert json.loads((tmp_path / "back.json").read_text()) == LARGEST_W12
    bad = tmp_path / "bad.json"
    bad.write_text('{"ks": [3]}')
    proc = run_cli("nas", "import", "--from", "ofa", str(bad), "--out", str(tmp_path / "x.json"))
    assert proc.returncode == 2 and "OFA config lacks" in proc.stderr and not (tmp_path / "x.json").exists()
