"""The timing thread is pinned to its core on real devices, workers or not, and given its affinity back."""

from __future__ import annotations

import os

import pytest

from devices import resolve
from hwprof.affinity import pin_timing_thread, pinned_timing, split_cores, unpin, usable_cores
from hwprof.dataset import Dataset
from hwprof.profiling import measure_into
from hwprof.protocol import measurement_protocol
from tests.conftest import samples

needs_two_cores = pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(usable_cores()) < 2,
                                     reason="pinning needs affinity and two usable cores")


def test_split_cores_times_on_the_first_threads_cores():
    assert split_cores(1, [2, 5, 7]) == ([2], [5, 7])
    assert split_cores(3, [2, 5]) == ([2, 5], [])


def test_nothing_is_pinned_without_another_core_to_keep_the_timing_off():
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    assert pin_timing_thread(1, [3]) == ([], None)
    assert (os.sched_getaffinity(0) if before is not None else None) == before


@needs_two_cores
def test_pinned_timing_pins_a_real_device_for_the_block_and_restores_after():
    before = os.sched_getaffinity(0)
    with pinned_timing(resolve("cpu")) as timed:
        assert timed == [sorted(before)[0]]
        assert os.sched_getaffinity(0) == set(timed)
    assert os.sched_getaffinity(0) == before
    with pinned_timing(resolve("kirin-npu")) as timed:  # a simulated chip times nothing on this machine
        assert timed == [] and os.sched_getaffinity(0) == before
    timed, restore = pin_timing_thread(1)
    unpin(restore)
    assert os.sched_getaffinity(0) == before


@needs_two_cores
def test_measure_pins_its_timing_without_workers_and_gives_the_affinity_back(tmp_path):
    before = os.sched_getaffinity(0)
    protocol = measurement_protocol(False, rounds=2, min_time_s=0.02)
    summary = measure_into(Dataset(tmp_path / "d"), resolve("cpu"), samples("ofa", 2), mode="e2e",
                           protocol=protocol, reference_every_s=0.0, prepare_workers=0)
    assert summary.measured == 2 and summary.prepare_workers == 0
    assert summary.timed_cores == [sorted(before)[0]]
    assert os.sched_getaffinity(0) == before


@needs_two_cores
def test_a_pinned_thread_still_sees_the_cores_it_was_pinned_from_so_workers_go_elsewhere():
    before = sorted(os.sched_getaffinity(0))
    with pinned_timing(resolve("cpu")) as timed:
        assert usable_cores() == before  # not just the timed core
        assert split_cores(1) == (timed, before[1:])
        with pinned_timing(resolve("cpu")) as again:  # nested: the same split
            assert again == timed and usable_cores() == before
        assert os.sched_getaffinity(0) == set(timed)
    assert usable_cores() == before


@needs_two_cores
def test_preparation_workers_run_off_the_timed_core():
    from hwprof.prepare import Preparer
    from tests.prepare_devices import SlowPrepDevice

    with Preparer(SlowPrepDevice(), workers=1) as preparer:
        stream = preparer.stream([f"m{i}" for i in range(4)])
        assert len(list(stream)) == 4
        (pid,) = preparer._worker_pids()
        worker_affinity = os.sched_getaffinity(pid)
        assert preparer.stats.timed_cores and preparer.stats.worker_cores
        assert worker_affinity == set(preparer.stats.worker_cores)
        assert not worker_affinity & set(preparer.stats.timed_cores)
