"""The executor interface: local executor, registry, and a clear error where Ray is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from devices import resolve
from hwprof.executors import device_resource, get_executor
from hwprof.profiling import Task, plan
from hwprof.protocol import Protocol
from tests.conftest import samples


def test_local_executor_measures_batches_and_maps_in_order():
    local = get_executor("local")
    tasks = plan(samples("ofa", 3), "e2e")
    out = list(local.measure("kirin-npu", {"seed": 0}, tasks, Protocol(min_time_s=0.0), None, 0, batch_size=2))
    assert [len(batch) for batch, _ in out] == [2, 1]
    rows = [r for _, (batch_rows, _stats) in out for r in batch_rows]
    assert [r["arch_hash"] for r in rows] == [t.arch_hash for t in tasks]
    assert all(r["device"] == "kirin-npu" and r["simulated"] for r in rows)
    assert local.map(lambda x: x * x, [3, 1, 2]) == [9, 1, 4]
    assert device_resource("kirin-npu") == "hwprof-device:kirin-npu"
    failing = list(local.measure("no-such-device", {}, tasks[:1], Protocol(), None, 0))
    assert isinstance(failing[0][1], Exception) and isinstance(failing[0][0][0], Task)
    assert resolve("kirin-npu").simulated


def test_executor_ray_without_ray_installed_is_a_clear_error(tmp_path):
    fake = tmp_path / "no-ray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = {**os.environ, "PYTHONPATH": f"{fake.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    exe = Path(sys.executable).parent / "hwprof"
    for args in (["measure", "--device", "kirin-npu", "--space", "ofa", "--samples", "2", "--out", str(tmp_path / "x"),
                  "--executor", "ray"], ["worker", "--devices", "kirin-npu", "--address", "127.0.0.1:1"]):
        proc = subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "pip install 'hwprof[ray]'" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and not (tmp_path / "x").exists()
