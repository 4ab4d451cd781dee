"""Design-space profiling (Mills et al.): contributions, intervals, block comparison, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from devices import resolve
from hwprof.dataset import Dataset
from hwprof.errors import HwprofError
from hwprof.predictors.data import load_measurements
from hwprof.profiling import measure_into
from hwprof.space_profile import profile_space, write_report
from nas.spaces import get_space
from tests.conftest import run_cli


def _fixed_resolution_sample(space, n, seed=0):
    rng = np.random.default_rng(seed)
    allowed = [list(range(len(v.options))) if v.kind == "layer" else [int(np.argmax(v.options))]
               for v in space.variables]
    return [space.sample(rng, allowed) for _ in range(n)]


@pytest.fixture(scope="module")
def kirin_ofa(tmp_path_factory):
    path = tmp_path_factory.mktemp("profile-kirin")
    sp = get_space("ofa")
    measure_into(Dataset(path), resolve("kirin-npu", seed=0), _fixed_resolution_sample(sp, 150), mode="both")
    return load_measurements(path)


def test_contributions_agree_with_measured_blocks(kirin_ofa, tmp_path):
    sp = get_space("ofa")
    prof = profile_space(sp, kirin_ofa, bootstrap=10)
    table = prof.table
    assert len(table) == sum(len(v.options) for v in sp.variables if v.kind == "layer")
    kept = table[table.choice != "skip"]
    assert (kept.ci_low_ms <= kept.contribution_ms + 1e-9).all() and (kept.ci_high_ms >= kept.contribution_ms - 1e-9).all()
    costly = kept[kept.contribution_ms > 0]  # the cheapest choice of a position is 0 by definition
    assert (costly.ci_high_ms > costly.ci_low_ms).all()
    assert kept.block_ms.notna().all()  # every block of the fixed-resolution anchor was measured
    assert prof.kendall_tau is not None and prof.kendall_tau > 0.7
    ranking = prof.ranking()
    assert ranking.choice.iloc[0] == "k3_e3" and ranking.choice.iloc[-1] == "k7_e6"
    files = write_report(prof, tmp_path / "report")
    for f in files.values():
        assert (tmp_path / "report" / f.split("/")[-1]).exists()
    assert "Kendall" in (tmp_path / "report" / "report.md").read_text()


def test_too_few_networks_is_a_clear_error(kirin_ofa):
    small = type(kirin_ofa)(**{**vars(kirin_ofa), "archs": kirin_ofa.archs[:5], "latency_ms": kirin_ofa.latency_ms[:5]})
    with pytest.raises(HwprofError, match="at least 20"):
        profile_space(get_space("ofa"), small)


def test_cli_profile_space_measures_and_reports(tmp_path):
    out = tmp_path / "rep"
    proc = run_cli("hwprof", "profile-space", "--space", "resnet", "--device", "myriad-vpu", "--samples", "60",
                   "--bootstrap", "5", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["simulated"] and summary["networks"] == 60 and summary["ranking"]
    assert (out / "heatmap.png").exists() and (out / "blocks.csv").exists()
    bad = run_cli("hwprof", "profile-space", "--space", "ofa", "--device", "nope", "--out", str(out))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
