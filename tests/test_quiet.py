"""The chunked protocol on synthetic traces: quiet chunks found, disturbed ones left out, honest verdicts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from devices.base import Session
from hwprof.interleave import Interleaver
from hwprof.protocol import Protocol
from hwprof.quiet import Classifier, Trace, Verdict, member_level, merged, verdict
from tests.conftest import run_cli


class Clock:
    """A fake monotonic clock that sessions advance by the time they 'ran'."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Machine:
    """When the machine is disturbed (windows of fake time), by how much, and what other processes use."""

    def __init__(self, windows: list[tuple[float, float]], factor: float = 1.5, busy_cores: float = 0.0) -> None:
        self.windows, self.factor, self.busy_cores = windows, factor, busy_cores

    def disturbed(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.windows)


class NoisySession(Session):
    """A model of quiet latency ``level_s``: slower by the machine's factor while it is disturbed."""

    def __init__(self, level_s: float, clock: Clock, machine: Machine, rng: np.random.Generator) -> None:
        self.level_s, self.clock, self.machine, self.rng = level_s, clock, machine, rng

    def run(self, n: int) -> np.ndarray:
        out = np.empty(n)
        for i in range(n):
            slow = self.machine.factor if self.machine.disturbed(self.clock.now) else 1.0
            out[i] = self.level_s * slow * np.exp(self.rng.normal(0, 0.01))
            self.clock.now += out[i]
        return out


class FakeProbe:
    """Other processes' CPU use as the machine says: busy while disturbed (if the neighbour is in this OS)."""

    available = True

    def __init__(self, clock: Clock, machine: Machine) -> None:
        self.clock, self.machine = clock, machine

    def read(self):
        return (self.clock.now, 0.0, 0.0)

    def since(self, before) -> float:
        middle = (before[0] + self.clock.now) / 2
        return self.machine.busy_cores if self.machine.disturbed(middle) else 0.0


def run_pool(levels_ms, machine: Machine, protocol: Protocol, seed: int = 0, with_reference: bool = True):
    clock = Clock()
    rng = np.random.default_rng(seed)
    sessions = {i: NoisySession(ms / 1e3, clock, machine, rng) for i, ms in enumerate(levels_ms)}
    reference = NoisySession(8e-3, clock, machine, rng) if with_reference else None
    runner = Interleaver(protocol, lambda i: sessions[i], reference, seed=seed, clock=clock,
                         probe=FakeProbe(clock, machine))
    finished = {f.item: f for f in runner.run(list(sessions))}
    return finished, runner


PROTOCOL = Protocol(rounds=8, chunk_s=0.03, pool=8, warmup=2, target_ci=0.05)


def test_member_level_is_the_fastest_chunks_not_the_disturbed_ones():
    medians = np.array([10.0, 15.1, 10.2, 14.8, 10.1, 15.0])
    assert member_level(medians, 0.06) == pytest.approx(10.1)


def test_classifier_finds_known_disturbed_windows_in_a_synthetic_trace():
    rng = np.random.default_rng(0)
    trace, truth, t = Trace(), [], 0.0
    levels = rng.uniform(1, 10, 12)
    disturbed = [(3.0, 6.0), (9.0, 9.5), (12.0, 16.0)]
    for _ in range(10):
        for member in [*rng.permutation(12), -1]:
            level = 8.0 if member < 0 else levels[member]
            hit = any(a <= t < b for a, b in disturbed)
            ms = level * (1.4 if hit else 1.0) * np.exp(rng.normal(0, 0.01))
            trace.add(int(member), t, t + 0.15, ms)
            truth.append(hit)
            t += 0.15
    classes = Classifier(tol=0.06).classify(trace)
    truth = np.array(truth)
    # every disturbed chunk is left out; all but a few quiet chunks at the windows' edges are kept
    assert not (classes.quiet & truth).any()
    assert classes.quiet[~truth].mean() >= 0.9


def test_a_model_whose_every_chunk_was_disturbed_is_not_called_quiet():
    # the machine is slowed 1.5x in even rounds; model 2 only ever ran in those, so its own chunks agree
    # with each other, but the chunks of the other models and the reference around them show the slowdown
    trace, t = Trace(), 0.0
    for round_ in range(8):
        slow = 1.5 if round_ % 2 == 0 else 1.0
        members = [(m, 1.0 + m) for m in (0, 1, 3, 4, 5, 6)] + [(-1, 8.0)] + ([(2, 5.0)] if round_ % 2 == 0 else [])
        for member, level in members:
            trace.add(member, t, t + 0.1, level * slow)
            t += 0.1
    classes = Classifier(tol=0.06).classify(trace)
    members = np.array(trace.member)
    assert not classes.quiet[members == 2].any()
    assert classes.quiet[members == 0].sum() >= 3  # the quiet rounds of the others are kept


def test_pool_recovers_quiet_latency_under_a_switching_neighbour():
    levels = [1.0, 2.5, 4.0, 7.0, 12.0, 0.3, 0.05, 9.0, 3.3, 5.5]
    windows = [(s, s + 1.5) for s in np.arange(0.5, 200, 3.0)]  # on 1.5 s, off 1.5 s
    machine = Machine(windows, factor=1.5, busy_cores=1.0)
    finished, runner = run_pool(levels, machine, PROTOCOL)
    assert sorted(finished) == list(range(len(levels)))
    for i, level in enumerate(levels):
        f = finished[i]
        assert f.noise.quiet and f.noise.chunks_quiet >= PROTOCOL.min_quiet
        assert f.measurement.median_ms == pytest.approx(level, rel=0.02)
        assert f.ref_ms == pytest.approx(8.0, rel=0.02)
    v = runner.verdict()
    assert v.state == "intermittent" and v.rows_quiet == len(levels)
    assert 0.2 < v.quiet_share < 0.8
    assert "disturbed" in v.line() and v.warning() is None


def test_a_model_with_no_quiet_window_is_corrected_by_the_reference_beside_each_chunk():
    # quiet for the first 2 s, then slowed 1.5x for good: the models that enter the pool late never see a quiet
    # chunk, but the reference timed in every round was quiet within its window, so it knows by how much
    levels = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    machine = Machine([(2.0, 1e9)], factor=1.5)
    protocol = Protocol(rounds=8, chunk_s=0.03, pool=2, warmup=2, target_ci=0.05)
    finished, runner = run_pool(levels, machine, protocol)
    late = [f for f in finished.values() if not f.noise.quiet]
    assert late and len(late) < len(levels)
    for f in late:
        assert f.noise.estimate == "reference-corrected" and f.noise.chunks_quiet < protocol.min_quiet
        assert f.measurement.median_ms == pytest.approx(levels[f.item], rel=0.03)  # not 1.5x
    for f in finished.values():
        if f.noise.quiet:
            assert f.noise.estimate == "quiet"
    v = runner.verdict()
    assert v.rows_corrected == len(late) and v.rows_quiet == len(levels) - len(late)
    assert "scaled by the reference network" in v.warning()


class BesideWorkers(Session):
    """A model slowed ``factor`` more while our own workers run beside it (the reference is not)."""

    def __init__(self, inner: NoisySession, own: dict, factor: float) -> None:
        self.inner, self.own, self.factor = inner, own, factor

    def run(self, n: int) -> np.ndarray:
        slow = self.factor if self.own["on"] else 1.0
        out = self.inner.run(n) * slow
        self.inner.clock.now += float(out.sum()) - float(out.sum()) / slow  # the extra time passes too
        return out


def test_chunks_timed_beside_our_own_workers_are_left_out_of_a_reference_corrected_row():
    # as above, the late models never see a quiet chunk; in every other stretch of two rounds our own workers run
    # and slow the models 1.3x but not the reference: pairing with the reference cannot undo that, leaving out can
    levels = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    clock, machine = Clock(), Machine([(2.0, 1e9)], factor=1.5)
    rng = np.random.default_rng(0)
    own = {"on": False}
    sessions = {i: BesideWorkers(NoisySession(ms / 1e3, clock, machine, rng), own, 1.3) for i, ms in enumerate(levels)}

    def before_round(round_index: int, chunks: int) -> bool:
        own["on"] = (round_index // 2) % 2 == 1
        return True

    protocol = Protocol(rounds=8, chunk_s=0.03, pool=2, warmup=2, target_ci=0.05)
    runner = Interleaver(protocol, lambda i: sessions[i], NoisySession(8e-3, clock, machine, rng), clock=clock,
                         probe=FakeProbe(clock, machine), before_round=before_round,
                         beside_own_work=lambda: own["on"])
    finished = {f.item: f for f in runner.run(list(sessions))}
    late = [f for f in finished.values() if f.noise.estimate == "reference-corrected"]
    assert late
    for f in finished.values():
        assert f.measurement.median_ms == pytest.approx(levels[f.item], rel=0.03)  # not up to 1.3x
        assert not any(q for r, _, q in f.chunk_log if (r // 2) % 2 == 1)  # never quiet beside our workers


def test_every_chunk_is_paired_with_the_reference_so_a_shift_of_the_machines_speed_cancels():
    # the whole machine runs 12% slower after 3 s (another VM on the host), on no neighbour's account: the models
    # that enter the pool late see only that speed, agree with each other and look quiet, but each chunk is paired
    # with the reference chunk of its round, so their latency is their quiet one, in step with ref_ms
    levels = [1.0 + 0.5 * i for i in range(18)]
    machine = Machine([(3.0, 1e9)], factor=1.12)
    protocol = Protocol(rounds=8, chunk_s=0.03, pool=6, warmup=2, target_ci=0.05)
    finished, _ = run_pool(levels, machine, protocol)
    late = [i for i in finished if finished[i].noise.quiet and finished[i].noise.slowdown < 1.06 and i >= 12]
    assert late  # timed only at the slower speed, and called quiet
    for i, level in enumerate(levels):
        f = finished[i]
        assert f.measurement.median_ms == pytest.approx(level, rel=0.02)
        assert f.measurement.median_ms / f.ref_ms == pytest.approx(level / 8.0, rel=0.02)


def test_without_a_reference_a_model_with_no_quiet_window_keeps_its_fastest_chunks():
    machine = Machine([(0.0, 1e9)], factor=1.5, busy_cores=1.0)
    finished, runner = run_pool([1.0, 3.0], machine, PROTOCOL, with_reference=False)
    for f in finished.values():
        assert not f.noise.quiet and f.noise.estimate == "fastest-chunks"
    assert runner.verdict().rows_corrected == 0
    assert "include the disturbance" in runner.verdict().warning()


def test_pool_on_a_quiet_machine_says_quiet_and_needs_no_extra_rounds():
    finished, runner = run_pool([1.0, 3.0, 6.0], Machine([]), PROTOCOL)
    assert all(f.noise.chunks == PROTOCOL.rounds and f.noise.quiet for f in finished.values())
    assert runner.verdict().state == "quiet"
    assert runner.verdict().line().startswith("machine quiet")


def test_always_on_neighbour_is_reported_and_nothing_claims_quiet_latency():
    machine = Machine([(0.0, 1e9)], factor=1.5, busy_cores=1.0)
    finished, runner = run_pool([1.0, 3.0, 6.0, 2.0], machine, PROTOCOL)
    assert not any(f.noise.quiet for f in finished.values())
    v = runner.verdict()
    assert v.state == "never-quiet" and v.rows_quiet == 0
    assert "never quiet" in v.line() and "loaded machine" in v.line()
    assert "4 of 4 rows" in v.warning()
    # the reference was never quiet either: its correction cannot turn loaded latencies into quiet ones
    for i, level in enumerate([1.0, 3.0, 6.0, 2.0]):
        assert finished[i].measurement.median_ms == pytest.approx(1.5 * level, rel=0.03)


def test_pool_is_reproducible_for_a_seed():
    windows = [(s, s + 1.0) for s in np.arange(0.3, 100, 2.2)]
    a, _ = run_pool([1.0, 2.0, 5.0], Machine(windows), PROTOCOL, seed=3)
    b, _ = run_pool([1.0, 2.0, 5.0], Machine(windows), PROTOCOL, seed=3)
    assert [a[i].measurement.median_ms for i in a] == [b[i].measurement.median_ms for i in b]


def test_verdicts_of_batches_merge_by_rows():
    quiet = Verdict("quiet", 1.0, 1.0, 0.0, 10, 10)
    loaded = Verdict("never-quiet", 0.0, 1.5, 1.0, 10, 0)
    both = merged([quiet, loaded])
    assert both.rows == 20 and both.rows_quiet == 10 and both.quiet_share == pytest.approx(0.5)
    assert both.state == "intermittent"
    assert verdict(Trace(), Classifier().classify(Trace()), 0, 0).state == "unknown"


def test_chunked_rows_record_their_noise_fields(tmp_path):
    out = tmp_path / "d"
    proc = run_cli("hwprof", "measure", "--device", "cpu", "--space", "ofa", "--samples", "2", "--mode", "e2e",
                   "--rounds", "2", "--min-time", "0.02", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["noise"]["state"] in ("quiet", "intermittent", "never-quiet")
    assert summary["noise"]["rows"] == 2
    df = pd.read_parquet(out)
    assert len(df) == 2
    for column in ("quiet", "chunks", "chunks_quiet", "slowdown", "foreign_load", "ref_ms", "estimate"):
        assert df[column].notna().all(), column
    assert (df["chunks"] >= 2).all() and (df["chunks_quiet"] <= df["chunks"]).all()
    assert set(df["estimate"]) <= {"quiet", "reference-corrected"}
    assert (df["quiet"] == (df["estimate"] == "quiet")).all()
    protocol = json.loads(df["protocol"].iloc[0])
    assert protocol["rounds"] == 2


def test_trace_records_every_chunk_of_every_row_and_the_reference(tmp_path):
    out, trace = tmp_path / "d", tmp_path / "chunks.jsonl"
    proc = run_cli("hwprof", "measure", "--device", "cpu", "--space", "ofa", "--samples", "2", "--mode", "e2e",
                   "--rounds", "2", "--min-time", "0.02", "--out", str(out), "--trace", str(trace))
    assert proc.returncode == 0, proc.stderr
    assert f"{trace}" in proc.stdout
    chunks = pd.read_json(trace, lines=True)
    df = pd.read_parquet(out)
    assert list(chunks["chunk"]) == list(range(len(chunks)))
    assert (chunks["end_s"] >= chunks["start_s"]).all() and chunks["start_s"].is_monotonic_increasing
    models = chunks[chunks["model"] != "reference"]
    for row in df.itertuples():  # each row's chunks, as many as it records, with its quiet ones flagged
        mine = models[(models["model"] == row.arch_hash) & (models["block_key"] == row.block_key)]
        assert len(mine) == row.chunks and int(mine["quiet"].sum()) == row.chunks_quiet
        assert all(len(s) >= 1 for s in mine["samples_ms"])
    reference = chunks[chunks["model"] == "reference"]
    assert set(reference["round"]) == set(chunks["round"])  # the reference is timed in every round
    assert reference["quiet"].isna().all()


def test_trace_is_refused_before_any_work_where_it_cannot_be_written_or_would_mean_nothing(tmp_path):
    foreign = tmp_path / "notes.txt"
    foreign.write_text("my notes\n")
    for device, trace, fragment in (("cpu", foreign, "--trace"), ("kirin-npu", tmp_path / "t.jsonl", "--trace")):
        out = tmp_path / f"never-{device}"
        proc = run_cli("hwprof", "measure", "--device", device, "--space", "ofa", "--samples", "1", "--out", str(out),
                       "--trace", str(trace))
        assert proc.returncode == 2 and fragment in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()
    assert foreign.read_text() == "my notes\n"


def test_simulated_rows_keep_the_contiguous_protocol_and_null_noise_fields(tmp_path):
    out = tmp_path / "d"
    proc = run_cli("hwprof", "measure", "--device", "kirin-npu", "--space", "ofa", "--samples", "2", "--mode", "e2e",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "simulated device, no machine noise" in proc.stdout
    df = pd.read_parquet(out)
    assert df["quiet"].isna().all() and "rounds" not in json.loads(df["protocol"].iloc[0])


@pytest.mark.parametrize("options, fragment", [
    (dict(rounds=0), "--rounds"), (dict(rounds=-3), "--rounds"), (dict(chunk_ms=-5), "--chunk-ms"),
    (dict(chunk_ms=0), "--chunk-ms"), (dict(quiet_tol=1.5), "--quiet-tol"), (dict(quiet_tol=float("nan")), "--quiet-tol"),
    (dict(pool=0), "--pool"), (dict(name="bogus"), "--protocol"), (dict(time_cap_s=0), "--time-cap"),
    (dict(time_cap_s=-1), "--time-cap"), (dict(min_time_s=-1), "--min-time"),
    (dict(name="contiguous", rounds=4), "--rounds")])
def test_bad_protocol_options_are_refused_naming_the_option(options, fragment):
    from hwprof.errors import HwprofError
    from hwprof.protocol import measurement_protocol

    with pytest.raises(HwprofError) as caught:
        measurement_protocol(False, **options)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("option", [["--rounds", "0"], ["--chunk-ms", "-5"]])
def test_bad_protocol_options_on_the_command_line_are_one_line_and_exit_2(tmp_path, option):
    out = tmp_path / "never"
    proc = run_cli("hwprof", "measure", "--device", "cpu", "--space", "ofa", "--samples", "1", "--out", str(out),
                   *option)
    assert proc.returncode == 2, (option, proc.stderr)
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not out.exists()


def test_doctor_reports_a_verdict_and_advice(tmp_path):
    proc = run_cli("hwprof", "doctor", "--device", "cpu", "--seconds", "5", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["reference_ms"] > 0 and 0 <= report["quiet_share"] <= 1
    assert report["verdict"].split(":")[0] in ("quiet", "intermittently disturbed", "never quiet")
    assert report["advice"] and 0 <= report["expected_retest_contiguous"] <= 1


def test_doctor_on_a_simulated_device_says_there_is_nothing_to_probe():
    proc = run_cli("hwprof", "doctor", "--device", "kirin-npu")
    assert proc.returncode == 0 and "simulated" in proc.stdout


@pytest.mark.parametrize("args", [["--seconds", "1"], ["--seconds", "nan"], ["--device", "no-such-chip"]])
def test_doctor_bad_input_is_one_line_and_exit_2(args):
    proc = run_cli("hwprof", "doctor", *args)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_expected_retest_of_a_steady_trace_is_full_and_of_a_two_level_one_is_not():
    from hwprof.doctor import expected_retest

    start = np.arange(0, 20, 0.03)
    assert expected_retest(start, np.full(len(start), 8.0)) == 1.0
    two_level = np.where((start // 2) % 2 == 0, 8.0, 12.0)
    assert 0.3 < expected_retest(start, two_level) < 0.7


def test_models_of_one_pool_share_round_numbers_and_compare_round_by_round():
    """Two models timed in one pool under a neighbour: paired by round, a 10% slower one is caught and an equal
    one is not, even when no round was quiet (what hit both cancels in their ratio)."""
    from hwprof.regression import NO_CHANGE, REGRESSION, compare_paired, paired_rounds

    for windows, always in (([(s, s + 1.0) for s in np.arange(0.3, 100, 2.2)], False), ([(0.0, 1e9)], True)):
        finished, _ = run_pool([3.0, 3.0, 3.3], Machine(windows, factor=1.4, busy_cores=1.0), PROTOCOL, seed=1)
        logs = {i: {"round": [c[0] for c in f.chunk_log], "median_ms": [c[1] for c in f.chunk_log],
                    "quiet": [c[2] for c in f.chunk_log]} for i, f in finished.items()}
        assert all(len(f.chunk_log) == f.noise.chunks for f in finished.values())
        same = paired_rounds({"chunks": logs[0]}, {"chunks": logs[1]})
        slower = paired_rounds({"chunks": logs[0]}, {"chunks": logs[2]})
        assert same is not None and slower is not None
        assert not (always and same[2])  # never quiet: every round paired, none called quiet
        assert compare_paired(same[0], same[1]).verdict == NO_CHANGE
        assert compare_paired(slower[0], slower[1]).verdict == REGRESSION


def test_a_round_whose_time_went_to_preparing_is_not_timed_and_is_asked_for_again():
    clock, machine = Clock(), Machine([])
    rng = np.random.default_rng(0)
    sessions = {i: NoisySession(3e-3, clock, machine, rng) for i in range(3)}
    calls: list[int] = []

    def before_round(round_index: int, chunks: int) -> bool:
        calls.append(round_index)
        return not (round_index == 1 and calls.count(1) == 1)  # round 1's first call prepared a model instead

    runner = Interleaver(PROTOCOL, lambda i: sessions[i], NoisySession(8e-3, clock, machine, rng), clock=clock,
                         probe=FakeProbe(clock, machine), before_round=before_round)
    finished = list(runner.run(list(sessions)))
    assert len(finished) == 3
    assert calls[:4] == [0, 1, 1, 2]
    rounds = [r for f in finished for r, _, _ in f.chunk_log]
    assert sorted(set(rounds)) == list(range(max(rounds) + 1))  # no round number skipped
    assert len(calls) == max(rounds) + 2  # every round timed was asked for once, round 1 twice


def test_a_few_quiet_chunks_out_of_many_are_no_quiet_window_and_every_chunk_is_paired_instead():
    # slowed 1.5x but for a short quiet moment every 3 s: models that wait for quiet windows take extra rounds and
    # collect a few quiet chunks among many; those few are not used alone (paired with the reference, the chunks
    # picked for running fast sit beside reference chunks that were not picked), every chunk is paired instead
    levels = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 2.5, 3.5]
    machine = Machine([(s + 0.35, s + 3.0) for s in np.arange(0.0, 1000, 3.0)], factor=1.5)
    finished, runner = run_pool(levels, machine, PROTOCOL)
    few = [f for f in finished.values() if f.noise.chunks_quiet >= PROTOCOL.min_quiet
           and 3 * f.noise.chunks_quiet < f.noise.chunks]
    assert few, [(f.noise.chunks_quiet, f.noise.chunks) for f in finished.values()]
    for f in few:
        assert not f.noise.quiet and f.noise.estimate == "reference-corrected"
        assert f.measurement.median_ms == pytest.approx(levels[f.item], rel=0.03)  # not 1.5x
    for f in finished.values():
        assert f.noise.quiet == (f.noise.estimate == "quiet")
        assert not f.noise.quiet or 3 * f.noise.chunks_quiet >= f.noise.chunks
    assert runner.verdict().rows_quiet == sum(f.noise.quiet for f in finished.values())


def test_trace_of_a_run_with_workers_says_whether_they_ran_beside_each_chunk(tmp_path):
    out, trace = tmp_path / "d", tmp_path / "chunks.jsonl"
    proc = run_cli("hwprof", "measure", "--device", "cpu", "--space", "ofa", "--samples", "3", "--mode", "e2e",
                   "--rounds", "2", "--min-time", "0.02", "--prepare-workers", "1", "--out", str(out),
                   "--trace", str(trace), "--json")
    assert proc.returncode == 0, proc.stderr
    preparation = json.loads(proc.stdout)["preparation"]
    chunks = pd.read_json(trace, lines=True)
    if preparation["workers"] == 0:  # a single usable core: no worker was started, and nothing to say
        assert "workers" not in chunks
        return
    assert set(chunks["workers"]) <= {"running", "stopped"}
    stopped_rounds = chunks.loc[chunks["workers"] == "stopped", "round"].nunique()
    assert stopped_rounds == preparation["rounds_with_workers_stopped"]
