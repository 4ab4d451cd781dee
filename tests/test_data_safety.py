"""Nothing lost, nothing duplicated: two writers, Ctrl-C, rows that need repair, readable parts."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from hwprof.dataset import KEY_COLUMNS, Dataset
from tests.conftest import run_cli


def _hwprof(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "hwprof"), *args]


def default_sigint() -> None:
    """In a child: Ctrl-C as a terminal delivers it, even where the tests run in a background job (which
    ignores SIGINT, and children inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _no_duplicates(path: Path) -> pd.DataFrame:
    df = Dataset(path).read()
    assert not df.duplicated(list(KEY_COLUMNS)).any(), "duplicate rows"
    return df


def test_a_second_writer_is_refused_with_one_line(tmp_path):
    out = tmp_path / "d"
    with Dataset(out).writer():
        proc = run_cli("hwprof", "measure", "--device", "kirin-npu", "--space", "ofa", "--samples", "2",
                       "--out", str(out))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "being written by another process" in proc.stderr
    assert Dataset(out).parts() == []


def test_two_measure_runs_into_one_dataset_write_each_row_once(tmp_path):
    out = tmp_path / "conc"
    args = _hwprof("measure", "--device", "kirin-npu", "--space", "ofa", "--samples", "40", "--seed", "7",
                   "--out", str(out))
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.communicate(timeout=300)[1], p.returncode) for p in procs]
    results = [(code, err) for err, code in results]
    assert all(code in (0, 2) for code, _ in results), results
    for code, err in results:
        if code == 2:
            assert "being written by another process" in err
    df = _no_duplicates(out)
    assert df["arch_hash"][df["block_key"] == "e2e"].nunique() == 40


def test_ctrl_c_keeps_every_finished_row_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "x"
    args = ("measure", "--device", "cpu", "--space", "ofa", "--mode", "e2e", "--min-time", "0.02", "--rounds", "2",
            "--pool", "4", "--out", str(out))
    proc = subprocess.Popen(_hwprof(*args, "--samples", "300"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=default_sigint)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not Dataset(out).parts():  # the first flush: work is under way
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)  # reads the pipes while waiting: a full pipe cannot stall the child
    code = proc.returncode
    assert code == 130, err
    line = [x for x in err.splitlines() if x.startswith("interrupted:")]
    assert line and "rerun the same command to resume" in line[0], err
    saved = int(line[0].split()[1])
    df = _no_duplicates(out)
    assert saved == len(df) > 0
    assert not list(out.glob(".tmp-*"))
    rerun = run_cli("hwprof", *args, "--samples", "4")
    assert rerun.returncode == 0, rerun.stderr
    df = _no_duplicates(out)
    assert len(df) >= saved


def test_rows_without_a_latency_are_measured_again(tmp_path):
    out = tmp_path / "d"
    assert run_cli("hwprof", "measure", "--device", "kirin-npu", "--space", "ofa", "--samples", "2", "--mode", "e2e",
                   "--out", str(out)).returncode == 0
    part = Dataset(out).parts()[0]
    df = pd.read_parquet(part)
    df.loc[0, "median_ms"] = None  # a damaged row
    df.to_parquet(part)
    assert len(Dataset(out).keys()) == 1
    proc = run_cli("hwprof", "measure", "--device", "kirin-npu", "--space", "ofa", "--samples", "2", "--mode", "e2e",
                   "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert '"measured": 1' in proc.stdout
    assert len(Dataset(out).keys()) == 2


def test_parts_are_readable_by_the_group_and_others_as_the_umask_allows(tmp_path):
    old = os.umask(0o022)
    try:
        part = Dataset(tmp_path / "d").append([_row()])
    finally:
        os.umask(old)
    assert stat.S_IMODE(part.stat().st_mode) == 0o644


def _row() -> dict:
    from hwprof.dataset import SCHEMA

    row = {name: None for name in SCHEMA.names}
    row.update(arch_hash="a", block_key="e2e", device="cpu", settings_hash="s", median_ms=1.0)
    return row


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_the_writer_lock_is_released_when_its_holder_dies(tmp_path):
    out = tmp_path / "d"
    child = subprocess.Popen([sys.executable, "-c", f"""
import time
from hwprof.dataset import Dataset
with Dataset({str(out)!r}).writer():
    print('held', flush=True)
    time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    child.kill()
    child.wait()
    with Dataset(out).writer():  # no stale lock after a kill -9
        pass
