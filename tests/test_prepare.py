"""Models prepared ahead in worker processes (measure --prepare-workers): order, the queue bound, failures,
a dying worker, Ctrl-C with workers alive, and the options."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hwprof.affinity import split_cores
from hwprof.dataset import Dataset
from hwprof.prepare import Preparer, default_workers
from hwprof.protocol import measurement_protocol
from tests.conftest import run_cli, samples
from tests.test_data_safety import default_sigint
from tests.prepare_devices import SlowPrepDevice

NAMES = [f"m{i}" for i in range(10)]


def test_workers_hand_back_every_model_in_order():
    with Preparer(SlowPrepDevice(), workers=2, steal=False) as preparer:
        got = list(preparer.stream(NAMES))
    assert [item for item, _ in got] == NAMES
    assert [model for _, model in got] == [f"prepared:{n}" for n in NAMES]
    assert preparer.stats.prepared == 10 and preparer.stats.failed == 0


def test_the_timing_process_prepares_a_model_itself_rather_than_wait(tmp_path):
    log = tmp_path / "prepared.txt"
    with Preparer(SlowPrepDevice(delay_s=0.3, log=str(log)), workers=1, queue=2) as preparer:
        got = list(preparer.stream(NAMES))
    here = [line.split()[0] for line in log.read_text().splitlines() if line.split()[1] == str(os.getpid())]
    assert sorted(item for item, _ in got) == NAMES  # each model once, none lost
    assert [model for _, model in got] == [f"prepared:{item}" for item, _ in got]
    assert preparer.stats.prepared_here == len(here) >= 1  # the first request finds no worker done: m2 is taken here
    assert here[0] == "m2" and got[0][0] == "m2"  # m0 and m1 went to the worker; m2 comes out first
    assert preparer.stats.prepared == 10 and preparer.stats.inline_s > 0


def test_the_queue_bounds_how_far_the_workers_run_ahead(tmp_path):
    log = tmp_path / "prepared.txt"
    with Preparer(SlowPrepDevice(delay_s=0.01, log=str(log)), workers=2, queue=3, steal=False) as preparer:
        stream = preparer.stream(NAMES)
        first = [next(stream), next(stream)]
        time.sleep(1.5)  # the consumer stalls: the workers must stop at the bound, not prepare everything
        prepared_while_stalled = log.read_text().splitlines()
    assert [item for item, _ in first] == ["m0", "m1"]
    assert len(prepared_while_stalled) <= 2 + 3  # the two taken, plus at most the queue
    assert preparer.stats.peak_outstanding <= 3


@pytest.mark.parametrize("workers", [0, 1])
def test_a_model_that_cannot_be_prepared_is_that_items_one_line_failure(workers):
    with Preparer(SlowPrepDevice(bad=("m3",)), workers=workers, steal=False) as preparer:
        got = [item for item, _ in preparer.stream(NAMES)]
    assert got == [n for n in NAMES if n != "m3"]
    assert preparer.stats.failed == 1
    assert preparer.stats.failures == ["m3: the runtime cannot compile m3"]


def test_a_worker_killed_half_way_through_sending_a_model_fails_that_item_and_the_rest_go_on(tmp_path):
    import threading

    log = tmp_path / "prepared.txt"

    def kill_the_worker_once_it_hangs():
        while "m1" not in (log.read_text() if log.exists() else ""):
            time.sleep(0.01)
        pid = int(log.read_text().split("m1 ")[1].split()[0])
        time.sleep(0.3)  # it has written the start of its message
        os.kill(pid, signal.SIGKILL)  # as the OOM killer would

    killer = threading.Thread(target=kill_the_worker_once_it_hangs, daemon=True)
    killer.start()
    with Preparer(SlowPrepDevice(log=str(log), half_sent=("m1",)), workers=1, steal=False) as preparer:
        got = [item for item, _ in preparer.stream(NAMES[:4])]
    assert "m1" not in got and got[-2:] == ["m2", "m3"]  # the pool was restarted: the rest were prepared
    assert preparer.stats.failed == 1 and "worker died" in preparer.stats.failures[0]


def test_a_worker_that_dies_fails_one_item_and_the_rest_go_on():
    with Preparer(SlowPrepDevice(crash=("m2",)), workers=1, steal=False) as preparer:
        got = [item for item, _ in preparer.stream(NAMES)]
    assert preparer.stats.failed >= 1 and "worker died" in preparer.stats.failures[0]
    assert "m2" not in got
    assert len(got) + preparer.stats.failed == len(NAMES)
    assert got[-3:] == NAMES[-3:]  # the workers were restarted


def test_a_worker_that_dies_while_the_timing_loop_is_busy_fails_only_its_item():
    """The pool breaks between two calls for a model: the next submission must not raise (a race CI once lost)."""
    with Preparer(SlowPrepDevice(crash=("m1",)), workers=1, queue=2, steal=False) as preparer:
        stream = preparer.stream(NAMES)
        first, _ = next(stream)  # m1 is now with the worker, m2 not yet submitted
        deadline = time.monotonic() + 30
        while not preparer._pool._broken and time.monotonic() < deadline:  # the worker crashes on m1
            time.sleep(0.05)
        got = [first] + [item for item, _ in stream]
    assert got == [n for n in NAMES if n != "m1"]
    assert preparer.stats.failed == 1 and "worker died" in preparer.stats.failures[0]


def test_measure_into_writes_every_other_row_and_counts_the_failure(tmp_path):
    from hwprof.profiling import measure_into

    archs = samples("ofa", 6, seed=3)
    device = SlowPrepDevice(bad=(archs[2].hash,))
    protocol = measurement_protocol(False, rounds=2, min_time_s=0.01)
    summary = measure_into(Dataset(tmp_path / "d"), device, archs, mode="e2e", protocol=protocol,
                           reference_every_s=0.0, prepare_workers=1)
    df = Dataset(tmp_path / "d").read()
    assert sorted(df["arch_hash"]) == sorted(a.hash for a in archs if a is not archs[2])
    assert summary.failed == 1 and summary.failures == [f"network {archs[2].hash}: the runtime cannot compile "
                                                        f"{archs[2].hash}"]
    assert summary.prepare_workers == 1 and summary.prepare_queue == 2
    again = measure_into(Dataset(tmp_path / "d"), SlowPrepDevice(), archs, mode="e2e", protocol=protocol,
                         reference_every_s=0.0, prepare_workers=1)
    assert again.measured == 1 and again.skipped == 5  # a rerun measures what failed


def test_defaults_follow_the_free_cores_and_skip_small_runs():
    from devices import resolve

    cpu = resolve("cpu")
    assert split_cores(1, [0, 1, 2]) == ([0], [1, 2])
    assert split_cores(2, [0, 1, 2]) == ([0, 1], [2])
    assert default_workers(cpu, 100, cores=[0]) == 0
    assert default_workers(cpu, 100, cores=[0, 1]) == 1
    assert default_workers(cpu, 100, cores=list(range(16))) == 4
    assert default_workers(cpu, 3, cores=[0, 1]) == 0
    assert default_workers(resolve("kirin-npu"), 100, cores=[0, 1]) == 0


def test_a_negative_worker_count_is_one_line_and_exit_2(tmp_path):
    proc = run_cli("hwprof", "measure", "--device", "cpu", "--space", "ofa", "--samples", "2",
                   "--prepare-workers", "-1", "--out", str(tmp_path / "d"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --prepare-workers must be 0 (prepare in the timing process) or more, got -1; e.g. --prepare-workers 1"]
    assert not (tmp_path / "d").exists()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return "\nState:\tZ" not in fh.read()
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_with_workers_alive_keeps_every_row_and_leaves_no_worker(tmp_path):
    out, pids = tmp_path / "x", tmp_path / "pids.txt"
    args = [str(Path(sys.executable).parent / "hwprof"), "measure", "--device", "cpu:int8", "--space", "ofa",
            "--mode", "e2e", "--min-time", "0.02", "--rounds", "2", "--pool", "4", "--samples", "200",
            "--prepare-workers", "1", "--out", str(out)]
    env = {**os.environ, "HWPROF_PREPARE_PID_FILE": str(pids)}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, preexec_fn=default_sigint)  # its own group, as a shell job
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not Dataset(out).parts():  # the first flush: work is under way
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group, workers included
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    line = [x for x in err.splitlines() if x.startswith("interrupted:")]
    saved = int(line[0].split()[1])
    assert saved == len(Dataset(out).read()) > 0
    workers = [int(p) for p in pids.read_text().split()]
    assert workers
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers)


def test_a_device_that_cannot_be_pickled_is_prepared_in_the_timing_process():
    class LocalDevice(SlowPrepDevice):  # defined in a function: cannot be sent to a worker
        pass

    with Preparer(LocalDevice(), workers=1) as preparer:
        got = [item for item, _ in preparer.stream(NAMES[:3])]
    assert got == NAMES[:3]
    assert preparer.workers == 0 and "pickle" in preparer.stats.unpicklable.lower()


def test_openvino_loads_what_a_worker_compiled_from_its_model_cache():
    from devices import resolve
    from devices.openvino import CompiledOnDisk

    device = resolve("openvino-cpu:int8")
    if not device.is_available():
        pytest.skip("OpenVINO is not installed")
    archs = samples("ofa", 2, seed=5)
    with Preparer(device, workers=1) as preparer:
        cache = Path(device.compile_cache_dir)
        for arch, prepared in preparer.stream(archs):
            assert isinstance(prepared, CompiledOnDisk) and Path(prepared.path).parent == cache
            session = device.load(prepared)
            assert session.run(2).shape == (2,)
            session.close()
        assert len(list(cache.glob("*.blob"))) >= 2  # the blobs the worker compiled
    assert not cache.exists() and device.compile_cache_dir is None  # the run's cache is removed with it


HALF_SENT = """
import os, sys, time
from hwprof.prepare import Preparer
from tests.prepare_devices import SlowPrepDevice

if __name__ == "__main__":
    log = sys.argv[1]
    with Preparer(SlowPrepDevice(log=log, half_sent=("m0",)), workers=1, steal=False) as preparer:
        preparer.stream(["m0", "m1"]).ready()  # hands m0 to the worker
        while not (os.path.exists(log) and open(log).read()):
            time.sleep(0.01)
        time.sleep(0.5)  # the pool's manager thread is now waiting for the rest of m0's message
    print("closed", flush=True)
"""


def test_closing_with_a_worker_caught_half_way_through_sending_does_not_hang_the_exit(tmp_path):
    script = tmp_path / "half_sent.py"
    script.write_text(HALF_SENT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "log")], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "closed", proc.stderr


def _state(pid: int, settled: str | None = None) -> str:
    """The process's state letter (waiting up to a second for it to become ``settled``: signals are asynchronous)."""
    deadline = time.monotonic() + 1.0
    while True:
        with open(f"/proc/{pid}/status") as fh:
            state = next(line.split()[1] for line in fh if line.startswith("State:"))
        if settled is None or state == settled or time.monotonic() > deadline:
            return state
        time.sleep(0.01)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_are_stopped_for_stretches_of_rounds_and_run_while_the_loop_waits():
    from hwprof.prepare import PHASE_CHUNKS

    with Preparer(SlowPrepDevice(delay_s=0.05), workers=1) as preparer:
        stream = preparer.stream(NAMES)
        first = next(stream)  # the workers have started
        (pid,) = preparer._worker_pids()
        preparer.before_round(0, PHASE_CHUNKS // 2)
        assert _state(pid, "T") == "T"  # stopped: the first stretch is timed without them
        preparer.before_round(1, PHASE_CHUNKS // 2)
        assert _state(pid) == "T"  # a stretch lasts at least PHASE_CHUNKS chunks
        preparer.before_round(2, PHASE_CHUNKS)
        time.sleep(0.2)
        assert _state(pid) != "T"
        preparer.before_round(3, PHASE_CHUNKS)
        assert _state(pid, "T") == "T"
        rest = [item for item, _ in stream]  # waiting for a model lets them go on (or this would hang)
        assert sorted([first[0], *rest]) == NAMES
        assert (preparer.stats.paused_rounds, preparer.stats.rounds) == (3, 4)
    assert not _alive(pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_running_stretch_goes_to_preparing_a_model_here_rather_than_to_disturbed_chunks():
    from hwprof.prepare import PHASE_CHUNKS

    with Preparer(SlowPrepDevice(delay_s=0.05), workers=1, queue=3) as preparer:
        stream = preparer.stream(NAMES)
        taken = [next(stream)[0]]  # m0-m2 go to the worker; m3 is prepared here rather than wait
        assert stream.workers_busy()  # the worker is still starting: m0 is not ready
        deadline = time.monotonic() + 30
        while not all(future.done() for _, future in stream.pending) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not stream.workers_busy()  # all three done: a stretch beside it would disturb nothing
        taken.append(next(stream)[0])  # m0: the queue now has room for one
        (pid,) = preparer._worker_pids()
        assert stream.before_round(0, PHASE_CHUNKS) is True  # the first stretch is timed, workers stopped
        assert _state(pid, "T") == "T"
        assert stream.before_round(1, PHASE_CHUNKS) is False  # running: m4 was prepared here, nothing timed
        assert preparer.stats.prepared_ahead == 1 and preparer.stats.rounds == 1
        assert stream.ready()
        taken.append(next(stream)[0])  # m1, which the worker finished, goes before m4 (its queue gets room)
        assert stream.before_round(1, PHASE_CHUNKS) is True  # asked again: a stopped stretch, timed
        assert _state(pid, "T") == "T"
        assert (preparer.stats.paused_rounds, preparer.stats.rounds) == (2, 2)
        taken += [item for item, _ in stream]
    assert taken[:3] == ["m3", "m0", "m1"] and "m4" in taken
    assert sorted(taken) == NAMES  # each model once, none lost


def test_the_chunked_protocol_tells_the_workers_each_round(tmp_path):
    from hwprof.profiling import measure_into

    archs = samples("ofa", 8, seed=4)
    protocol = measurement_protocol(False, rounds=2, min_time_s=0.01)
    summary = measure_into(Dataset(tmp_path / "d"), SlowPrepDevice(), archs, mode="e2e", protocol=protocol,
                           reference_every_s=0.0, prepare_workers=1)
    stopped, rounds = summary.paused_rounds
    # stretches with the workers stopped and running, in turn; a running one is timed, or given to preparing
    assert rounds >= 2 and stopped > 0 and (rounds - stopped) + summary.prepared_ahead > 0
    assert summary.measured == len(archs)
