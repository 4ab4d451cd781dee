"""The Ray executor on a loopback cluster: device-aware scheduling, same rows as local, a killed worker.

A head node and two `hwprof worker` nodes that host different devices run on
127.0.0.1, with Ray's token authentication on (a random token in the
environment). Skipped, with the reason, where Ray is not installed.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hwprof.dataset import Dataset
from tests.conftest import run_cli

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'hwprof[ray]')")

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _resources(address: str, env: dict) -> dict:
    code = ("import json, ray; ray.init(address=%r, logging_level='ERROR', log_to_driver=False); "
            "print(json.dumps(ray.cluster_resources()))" % address)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    return json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {}


class Cluster:
    def __init__(self, tmp: Path) -> None:
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                    "HWPROF_CACHE": str(tmp / "cache"), "COLUMNS": "200"}
        self.address = f"127.0.0.1:{_free_port()}"
        self.workers: dict[str, subprocess.Popen] = {}
        self.tmp = tmp

    def start(self) -> None:
        head = subprocess.run([str(BIN / "ray"), "start", "--head", "--port", self.address.split(":")[1],
                               "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--include-dashboard=false",
                               "--system-config", json.dumps({"health_check_period_ms": 1000,
                                                              "health_check_failure_threshold": 3,
                                                              "health_check_initial_delay_ms": 1000})],
                              env=self.env, capture_output=True, text=True, timeout=180)
        if head.returncode != 0:
            pytest.skip(f"cannot start a Ray head node here: {head.stderr.strip().splitlines()[-1:]}")

    def worker(self, name: str, devices: str) -> None:
        log = open(self.tmp / f"{name}.log", "w")
        self.workers[name] = subprocess.Popen(
            [str(BIN / "hwprof"), "worker", "--devices", devices, "--address", self.address, "--num-cpus", "1",
             "--slots", "1"], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_for(self, resources: list[str], absent: list[str] = (), timeout: float = 120) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            have = _resources(self.address, self.env)
            if all(have.get(r, 0) > 0 for r in resources) and not any(have.get(r, 0) > 0 for r in absent):
                return
            time.sleep(1)
        raise AssertionError(f"cluster resources never became {resources} without {list(absent)}: {have}")

    def kill(self, name: str) -> None:
        os.killpg(self.workers.pop(name).pid, signal.SIGKILL)  # the node and all its processes, no goodbye

    def stop(self) -> None:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], env=self.env, capture_output=True, timeout=120)
        for proc in self.workers.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("ray"))
    c.start()
    try:
        try:
            c.worker("a", "kirin-npu")  # one at a time: two nodes starting at once on one host can collide
            c.wait_for(["hwprof-device:kirin-npu"])
            c.worker("b", "hexagon-dsp,cpu")
            c.wait_for(["hwprof-device:kirin-npu", "hwprof-device:hexagon-dsp", "hwprof-device:cpu"])
        except AssertionError as exc:  # the machine cannot host a loopback cluster (not a failure of hwprof's code)
            logs = " | ".join(((c.tmp / f"{n}.log").read_text().strip().splitlines() or [""])[-1][:200]
                              for n in ("a", "b") if (c.tmp / f"{n}.log").exists())
            pytest.skip(f"Ray worker nodes did not join a loopback cluster here: {exc}; logs: {logs}")
        yield c
    finally:
        c.stop()


def _keys_and_medians(path: Path) -> dict:
    df = Dataset(path).read(columns=["arch_hash", "block_key", "device", "median_ms"])
    assert not df.duplicated(["arch_hash", "block_key", "device"]).any()
    return {(r.arch_hash, r.block_key, r.device): r.median_ms for r in df.itertuples()}


def _wait_for_first_rows(out: Path, run: subprocess.Popen, timeout_s: float = 180.0) -> None:
    """Until the run has written a row (a slow machine takes longer to start), then one more moment."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert run.poll() is None, "the run finished before the worker could be killed"
        try:
            if _keys_and_medians(out):
                time.sleep(1.0)
                assert run.poll() is None, "the run finished before the worker could be killed"
                return
        except Exception:  # nothing written yet  # noqa: BLE001
            pass
        time.sleep(0.5)
    raise AssertionError(f"no row written to {out} within {timeout_s:.0f} s")


def _measure(cluster: Cluster, device: str, out: Path, *extra: str, executor: bool = True):
    args = ["hwprof", "measure", "--device", device, "--space", "ofa", "--samples", "100", "--seed", "3", "--mode", "e2e",
            "--out", str(out), "--json", *extra]
    if executor:
        args += ["--executor", "ray", "--ray-address", cluster.address]
    exe = BIN / args[0]
    return subprocess.run([str(exe), *args[1:]], env=cluster.env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # 38 s with the cluster's start: the Ray extra's end-to-end checks run in `make test-slow`
def test_ray_measures_the_same_rows_as_local_on_the_nodes_that_host_each_device(cluster, tmp_path):
    for device in ("kirin-npu", "hexagon-dsp"):
        remote = _measure(cluster, device, tmp_path / "ray")
        assert remote.returncode == 0, remote.stderr
        summary = json.loads(remote.stdout)
        assert summary["executor"] == "ray" and summary["failed"] == 0 and summary["e2e_rows"] == 100
        local = _measure(cluster, device, tmp_path / "local", executor=False)
        assert local.returncode == 0, local.stderr
    ray_rows, local_rows = _keys_and_medians(tmp_path / "ray"), _keys_and_medians(tmp_path / "local")
    assert ray_rows == local_rows  # simulated noise is seeded per model: identical, not just the same keys
    hosts = Dataset(tmp_path / "ray").read(columns=["device", "host"])
    nodes = {d: {json.loads(h)["ray_node_id"] for h in g.host} for d, g in hosts.groupby("device")}
    assert len(nodes["kirin-npu"]) == len(nodes["hexagon-dsp"]) == 1  # each device's work ran on its host only
    assert nodes["kirin-npu"] != nodes["hexagon-dsp"]
    # a device no node hosts is a clear error before any work
    bad = _measure(cluster, "myriad-vpu", tmp_path / "none")
    assert bad.returncode == 2 and "no node of the Ray cluster hosts device 'myriad-vpu'" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_a_killed_worker_loses_no_rows_and_the_rerun_completes(cluster, tmp_path):
    out = tmp_path / "cpu"
    args = ["--device", "cpu", "--mode", "e2e", "--samples", "40", "--min-time", "0.15", "--drift-every", "0",
            "--batch-size", "1", "--executor", "ray", "--ray-address", cluster.address, "--space", "ofa",
            "--out", str(out), "--json"]
    env = {**cluster.env, "HWPROF_RAY_NO_WORKER_TIMEOUT_S": "3"}
    run = subprocess.Popen([str(BIN / "hwprof"), "measure", *args], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    _wait_for_first_rows(out, run)  # some networks measured, others in flight or queued
    cluster.kill("b")
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 1, stderr  # incomplete: says so
    first = json.loads(stdout)
    assert 0 < first["measured"] < 40 and first["failed"] == 40 - first["measured"]
    assert "rerun the same command" in stderr
    kept = _keys_and_medians(out)
    assert len(kept) == first["measured"]  # everything measured before the kill was written
    cluster.worker("b", "hexagon-dsp,cpu")
    cluster.wait_for(["hwprof-device:cpu"])
    again = subprocess.run([str(BIN / "hwprof"), "measure", *args], env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["skipped_existing"] == first["measured"] and second["failed"] == 0
    rows = _keys_and_medians(out)
    assert len(rows) == 40 and all(rows[k] == v for k, v in kept.items())


def test_cli_ray_errors_are_clear(tmp_path):
    bad = run_cli("hwprof", "measure", "--device", "kirin-npu", "--space", "ofa", "--samples", "2", "--out",
                  str(tmp_path / "x"), "--executor", "nope")
    assert bad.returncode == 2 and "unknown executor 'nope'" in bad.stderr
    for address, message in ((f"127.0.0.1:{_free_port()}", "no Ray cluster answers at"), ("nope", "is not HOST:PORT")):
        bad = run_cli("hwprof", "measure", "--device", "kirin-npu", "--space", "ofa", "--samples", "2", "--out",
                      str(tmp_path / "y"), "--executor", "ray", "--ray-address", address)
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "y").exists()


@pytest.mark.slow  # 19 s
def test_search_scores_candidates_on_the_cluster_with_the_local_result(cluster, tmp_path):
    import numpy as np

    from devices import resolve
    from hwprof.predictors import store
    from hwprof.predictors.data import load_measurements
    from hwprof.predictors.training import fit_on
    from hwprof.profiling import measure_into
    from nas.spaces import get_space

    sp = get_space("ofa")
    rng = np.random.default_rng(0)
    measure_into(Dataset(tmp_path / "d"), resolve("kirin-npu"), [sp.sample(rng) for _ in range(60)], mode="e2e")
    store.save(fit_on("additive", load_measurements(tmp_path / "d")), tmp_path / "p.pred")
    outputs = {}
    for name, extra in (("local", []), ("ray", ["--executor", "ray", "--ray-address", cluster.address])):
        env = {**cluster.env, "HWPROF_CACHE": str(tmp_path / f"cache-{name}")}  # no shared score cache
        proc = subprocess.run([str(BIN / "nas"), "search", "--space", "ofa", "--target", "kirin-npu", "--predictor",
                               str(tmp_path / "p.pred"), "--budget", "24", "--seed", "1", "--no-measure", "--json",
                               "--out", str(tmp_path / name), *extra], env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr
        outputs[name] = json.loads(proc.stdout)
    assert outputs["ray"]["executor"] == "ray"
    for key in ("best", "hypervolume", "pareto_size", "evaluated"):
        assert outputs["ray"][key] == outputs["local"][key]
    assert (tmp_path / "ray" / "pareto.csv").read_text() == (tmp_path / "local" / "pareto.csv").read_text()
