"""Outputs unchanged by restructuring (issue 41): the same seeds give the same dataset, predictors and winners.

tests/data/golden_kirin_npu.json was written by `python -m tests.golden` with the code as it was before
the device object and the layers were introduced (commit 5c569d8).
"""

from __future__ import annotations

import json

from tests.conftest import REPO
from tests.golden import run


def test_seeded_measure_fit_search_matches_the_stored_result():
    stored = json.loads((REPO / "tests" / "data" / "golden_kirin_npu.json").read_text())
    now = json.loads(json.dumps(run(), sort_keys=True))
    assert now["rows"] == stored["rows"]
    changed = sorted(k for k in stored["median_ms"] if now["median_ms"].get(k) != stored["median_ms"][k])
    assert not changed, f"{len(changed)} rows measured differently, e.g. {changed[:3]}"
    assert now["additive"] == stored["additive"]
