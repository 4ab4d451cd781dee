"""Models prepared ahead of the timing loop, in worker processes off the timed core (``measure --prepare-workers``).

Most of a real device's measuring wall time that is not inference goes to work
that does not need the timed core: building the ONNX graph, quantizing and
calibrating an int8 model, lowering to LiteRT, OpenVINO's compile. A
:class:`Preparer` does that work for the upcoming tasks in ``workers``
processes while the timing loop times the models already prepared:

- **The timed core is pinned.** The timing thread runs on the first
  ``threads`` cores this process may use; the workers are kept off them (and
  run at a lower priority). With no core left over, the default is no workers.
- **Bounded.** At most ``queue`` models are being prepared by the workers or
  waiting to be loaded at any moment (default ``2 * workers``), and at most
  ``queue`` more that the timing process prepared beside them (below), on top
  of the models the protocol keeps loaded (``--pool``): memory stays bounded
  whatever the number of tasks.
- **What crosses the process boundary** is what :meth:`Device.prepare
  <hwprof.device.Device.prepare>` returns (an ONNX model, quantized bytes, a
  ``.tflite`` flatbuffer), pickled. A runtime whose compiled model cannot cross
  it compiles into :attr:`Device.compile_cache_dir <hwprof.device.Device.compile_cache_dir>`
  (OpenVINO's model cache), and the timing process's load is then a cheap import.
- **Errors stay with their task.** A model the worker cannot build or
  compile, or a worker that dies, becomes that task's one-line failure
  (:attr:`Preparer.failures`); the run goes on and a rerun retries it.
- **Ctrl-C** (SIGINT reaches the whole process group) is ignored by the
  workers; the timing process stops them all when it unwinds, so none is
  left behind, and every finished row is saved by the caller.

The workers are a neighbour of the timed core, like any other process, so
the timing loop gives itself quiet windows: the chunked protocol
(:mod:`hwprof.interleave`) times stretches of rounds with the workers stopped
(SIGSTOP) and stretches with them running, in turn, each stretch at least
``PHASE_CHUNKS`` chunks long (one round of a full pool; several rounds when
few models are loaded), so that a chunk in a stopped stretch has quiet chunks
around it, which is what the classifier (:mod:`hwprof.quiet`) looks at.
Chunks timed beside a running worker are disturbed by definition (another
process used a core) and left out, like any disturbed chunk; the stopped
stretches give every model its quiet chunks, and those chunks are left out
of a row estimated without a quiet window too. So a stretch with the workers
running is not spent timing while a model is left to start and fewer than
``queue`` models the timing process prepared wait: it prepares that model
beside the workers instead (:meth:`PreparedStream.before_round`), then the
workers stop and timing goes on. On a 2-core machine both cores prepare,
then one times alone. Otherwise the stretch is timed as before. The workers
also run whenever the timing loop waits for a model. The run's noise verdict
counts the chunks the workers disturbed.

``workers=0`` prepares each model in the timing process just before it is
loaded, as hwprof always did; a failure is that task's failure all the same.
"""

from __future__ import annotations

import os
import signal
import time
from collections import deque
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from hwprof.affinity import pin_timing_thread, split_cores, unpin
from hwprof.errors import HwprofError
from hwprof.quiet import NEIGHBOURS

MAX_DEFAULT_WORKERS = 4  # beyond this the timing loop, not preparation, is the bottleneck
PHASE_CHUNKS = 4 * NEIGHBOURS  # chunks at least in each stretch timed with the workers stopped, or running
MIN_TASKS_FOR_WORKERS = 8  # fewer models than this: starting workers (about a second) saves nothing by default
WORKER_NICE = 10  # workers yield to the timing process wherever they share a core
WORKER_CHECK_S = 1.0  # how often a wait for a worker's model checks that no worker died half-way through sending


def default_workers(device, tasks: int | None = None, cores: list[int] | None = None) -> int:
    """Workers ``measure`` starts when not told: none on a simulated chip (nothing expensive to prepare),
    without a free core, or for fewer than ``MIN_TASKS_FOR_WORKERS`` models; otherwise one per free core, at
    most ``MAX_DEFAULT_WORKERS``."""
    if device.simulated or (tasks is not None and tasks < MIN_TASKS_FOR_WORKERS):
        return 0
    _, free = split_cores(getattr(device, "threads", 1), cores)
    return min(len(free), MAX_DEFAULT_WORKERS)


def check_workers(workers: int | None) -> None:
    """One-line error for a negative ``--prepare-workers``."""
    if workers is not None and workers < 0:
        raise HwprofError(f"--prepare-workers must be 0 (prepare in the timing process) or more, got {workers}",
                          "e.g. --prepare-workers 1")


def source_model(device, target) -> Any:
    """What :meth:`Device.prepare` starts from: a user's model as given, else the device's build of an Arch/Block."""
    proto = getattr(target, "proto", None)
    return proto if proto is not None else device.build(target)


def prepare_target(device, target) -> Any:
    """``target``'s model, prepared for :meth:`Device.load` (build, then the expensive part of loading)."""
    return device.prepare(source_model(device, target))


@dataclass
class PrepareStats:
    """Where preparation time went.

    Attributes:
        workers: Worker processes used (0: prepared in the timing process).
        timed_cores: Cores the timing thread was pinned to (empty: not pinned).
        worker_cores: Cores the workers ran on.
        queue: Most models being prepared by the workers or waiting to be loaded at once (the bound; as many
            again may wait that the timing process prepared beside running workers).
        inline_s: Seconds the timing process spent preparing (every model with ``workers=0``; with workers,
            the models it took on rather than wait for a worker or in place of disturbed chunks: see
            ``prepared_here`` and ``prepared_ahead``).
        prepared_here: Models the timing process prepared itself because the next one was not ready and no
            worker had started the one after (its core would otherwise sit idle).
        prepared_ahead: Models the timing process prepared itself in a stretch with the workers running, in
            place of timing chunks that a running worker would have disturbed.
        worker_s: Seconds the workers spent preparing (overlapped with timing).
        wait_s: Seconds the timing loop waited for a model to be ready.
        prepared: Models prepared.
        failed: Tasks whose model could not be prepared.
        failures: One line per failed task.
        peak_outstanding: Most models outstanding at once, with the workers or prepared ahead (never above
            ``2 * queue``; above ``queue`` only with ``prepared_ahead``).
        unpicklable: Why the device could not be sent to workers (then none were started), else None.
        rounds: Rounds of the chunked protocol timed with workers alive (a stretch given to preparing
            instead is not a round).
        stopped_rounds: Of those, the rounds (their numbers in the chunked protocol) timed with the workers
            stopped; ``paused_rounds`` counts them.
    """

    workers: int = 0
    timed_cores: list[int] = field(default_factory=list)
    worker_cores: list[int] = field(default_factory=list)
    queue: int = 0
    inline_s: float = 0.0
    worker_s: float = 0.0
    wait_s: float = 0.0
    prepared: int = 0
    prepared_here: int = 0
    prepared_ahead: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    peak_outstanding: int = 0
    unpicklable: str | None = None
    rounds: int = 0
    stopped_rounds: set[int] = field(default_factory=set)

    @property
    def paused_rounds(self) -> int:
        """Rounds timed with the workers stopped."""
        return len(self.stopped_rounds)


# --- the worker side -------------------------------------------------------------------------------------------

_WORKER_DEVICE = None


def crosses_processes(value: Any) -> str | None:
    """Why ``value`` cannot be sent to a worker process (the executor's own serializer refuses it), else None.

    Only for in-memory hand-over between hwprof's own processes: nothing a user loads is read this way.
    """
    from multiprocessing.reduction import ForkingPickler

    try:
        ForkingPickler.dumps(value)
    except Exception as exc:  # noqa: BLE001 - e.g. a device class defined inside a function
        return f"{type(exc).__name__}: {exc}"[:200]
    return None


def _worker_init(device, cores: list[int]) -> None:
    """Each worker: ignore Ctrl-C (the timing process stops the workers), keep off the timed core, yield."""
    global _WORKER_DEVICE
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if cores and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, cores)
        except OSError:
            pass  # a cpuset that forbids it: the nice level below still favours the timing process
    try:
        os.nice(WORKER_NICE)
    except OSError:
        pass
    _WORKER_DEVICE = device
    report = os.environ.get("HWPROF_PREPARE_PID_FILE")  # tests: which processes were started
    if report:
        with open(report, "a") as fh:
            fh.write(f"{os.getpid()}\n")


def _worker_prepare(target) -> tuple[Any, float]:
    began = time.perf_counter()
    return prepare_target(_WORKER_DEVICE, target), time.perf_counter() - began


# --- the timing side -------------------------------------------------------------------------------------------


def one_line(exc: BaseException) -> str:
    """An exception as one line for a task's failure."""
    text = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, HwprofError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Preparer:
    """Prepares tasks' models in order, ``workers`` processes ahead of the timing loop (which prepares one itself
    rather than wait for them).

    Use as a context manager (the workers start on entry and are stopped on
    exit, Ctrl-C included), then iterate :meth:`stream`.

    Args:
        device: The device (pickled to the workers; its :attr:`compile_cache_dir` is set for the run when
            ``workers`` > 0 and it has none).
        workers: Worker processes (0: prepare in the timing process, just before loading).
        queue: Most models being prepared by the workers or ready but not yet loaded (default
            ``2 * workers``); as many again may be prepared ahead by the timing process (:meth:`stream`).
        pin: Pin the timing thread to the timed cores (the first ``device.threads`` usable ones) for the run,
            workers or not, on a real device (restored on exit; see :mod:`hwprof.affinity`).
        describe: How a failure names its task (default ``str``).
        cores: The usable cores (default: this process's affinity); tests pass their own.
        steal: When the timing loop asks for a model no worker has finished, prepare the next one no worker
            has started in the timing process rather than wait (see :meth:`stream`).
    """

    def __init__(self, device, workers: int = 0, queue: int | None = None, pin: bool = True,
                 describe: Callable[[Any], str] = str, cores: list[int] | None = None, steal: bool = True) -> None:
        check_workers(workers)
        self.steal = steal
        self.device = device
        self.workers = int(workers)
        self.queue = max(1, queue if queue is not None else 2 * self.workers)
        self.pin = pin
        self.describe = describe
        self.cores = cores
        self.stats = PrepareStats(workers=self.workers, queue=self.queue if self.workers else 0)
        self._pool = None
        self._restore_affinity: set[int] | None = None
        self._cache = None
        self._paused: list[int] = []  # pids stopped by pause()
        self._phase_chunks = 0  # chunks timed in the current stretch (workers stopped, or running)
        self._stopped_phase = False

    def __enter__(self) -> "Preparer":
        if self.pin and not getattr(self.device, "simulated", False):
            self._pin()
        if self.workers:
            self._start()
        return self

    def _pin(self) -> None:
        self.stats.timed_cores, self._restore_affinity = pin_timing_thread(getattr(self.device, "threads", 1),
                                                                           self.cores)

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _start(self) -> None:
        import tempfile

        _, free = split_cores(getattr(self.device, "threads", 1), self.cores)
        self.stats.worker_cores = free
        if self.device.compile_cache_dir is None and getattr(self.device, "caches_compiled_models", False):
            self._cache = tempfile.TemporaryDirectory(prefix="hwprof-compiled-")
            self.device.compile_cache_dir = self._cache.name
        self.stats.unpicklable = crosses_processes(self.device)
        if self.stats.unpicklable:
            self.workers = self.stats.workers = self.stats.queue = 0  # prepared in the timing process instead
            self.stats.worker_cores = []
            return
        self._pool = self._new_pool()

    def _worker_pids(self) -> list[int]:
        processes = getattr(self._pool, "_processes", None) or {}
        return [p.pid for p in list(processes.values()) if p.pid is not None]  # a dead one: kill() says so

    def pause(self) -> None:
        """Stop the workers (SIGSTOP) until :meth:`resume`: what is timed meanwhile has no neighbour of ours."""
        if self._pool is None or self._paused or not hasattr(signal, "SIGSTOP"):
            return
        for pid in self._worker_pids():
            try:
                os.kill(pid, signal.SIGSTOP)
                self._paused.append(pid)
            except ProcessLookupError:
                pass

    def resume(self) -> None:
        """Let stopped workers go on (SIGCONT)."""
        paused, self._paused = self._paused, []
        for pid in paused:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def before_round(self, round_index: int, chunks: int = PHASE_CHUNKS) -> None:
        """Called by the chunked protocol before it times a round of ``chunks`` chunks: stretches of rounds with
        the workers stopped and with them running, in turn, each of at least ``PHASE_CHUNKS`` chunks (the first
        stretch stopped). :meth:`PreparedStream.before_round` may give a running stretch to preparing instead."""
        if self._pool is None:
            return
        if self.stats.rounds == 0 or self._phase_chunks >= PHASE_CHUNKS:
            self._stopped_phase = not self._stopped_phase or self.stats.rounds == 0
            self._phase_chunks = 0
        self.stats.rounds += 1
        self._phase_chunks += chunks
        if self._stopped_phase:
            self.stats.stopped_rounds.add(round_index)
            self.pause()
        else:
            self.resume()

    @property
    def running_stretch(self) -> bool:
        """Whether the round :meth:`before_round` was last called for falls in a stretch with the workers running."""
        return self._pool is not None and self.stats.rounds > 0 and not self._stopped_phase

    def end_running_stretch(self) -> None:
        """The running stretch was spent preparing, not timing: its round is not counted, and the next round
        starts a stretch with the workers stopped."""
        self.stats.rounds -= 1
        self._phase_chunks = PHASE_CHUNKS

    def close(self) -> None:
        """Stop the workers at once (a model half-prepared is dropped) and restore the timing thread's affinity."""
        self.resume()
        pool, self._pool = self._pool, None
        if pool is not None:
            processes = list(getattr(pool, "_processes", {}).values())
            results = getattr(pool, "_result_queue", None)
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:  # a worker busy compiling would otherwise finish its model first
                if process.is_alive():
                    process.kill()
            for process in processes:
                process.join(timeout=10)
            _end_results_pipe(results)
        unpin(self._restore_affinity)
        self._restore_affinity = None
        if self._cache is not None:
            self.device.compile_cache_dir = None
            self._cache.cleanup()
            self._cache = None

    def stream(self, targets: Iterable[Any], target_of: Callable[[Any], Any] = lambda item: item,
               ) -> "PreparedStream":
        """``[item, prepared model]`` for each item; an item that fails is left out and counted.

        Items come in order, except that when the timing loop asks for a model no worker has finished, it
        prepares the next one no worker has started itself (its core would otherwise sit idle), and that one
        comes first.

        Args:
            targets: Items (tasks) to prepare.
            target_of: What of an item is built (e.g. ``task.target``).

        Returns:
            An iterator whose ``ready()`` says whether the next model can be had without waiting (the
            chunked protocol starts timing what is ready rather than wait to fill its pool).
        """
        return PreparedStream(self, iter(targets), target_of)

    def _submit(self, target):
        """The pool's future for ``target``; a pool a worker broke since it was last looked at gives a future that
        fails the same way, so the item first in line (the one being prepared when it broke) takes the failure,
        the pool is restarted once and this one is submitted again."""
        try:
            return self._pool.submit(_worker_prepare, target)
        except BrokenProcessPool as exc:
            from concurrent.futures import Future

            broken: Future = Future()
            broken.set_exception(exc)
            return broken

    def _new_pool(self):
        """Spawned workers (never forked: the runtimes' threads do not survive a fork), kept off the timed core."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init, initargs=(self.device, self.stats.worker_cores))

    def _result(self, future):
        """``future.result()``, except that a worker that died half-way through sending a result (which the pool
        would wait on for ever) breaks the pool instead, as any other dead worker does."""
        from concurrent.futures import wait

        while not wait([future], timeout=WORKER_CHECK_S).done:
            processes = list(getattr(self._pool, "_processes", {}).values())
            if any(process.exitcode is not None for process in processes):
                _end_results_pipe(getattr(self._pool, "_result_queue", None))
        return future.result()

    def _restart(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def _fail(self, item, message: str) -> None:
        self.stats.failed += 1
        self.stats.failures.append(f"{self.describe(item)}: {message}"[:400])


def _end_results_pipe(results) -> None:
    """Close this process's end of a pool's results pipe once its workers are dead.

    A worker killed while sending a model leaves half a message in the pipe. The pool's manager thread then
    waits for the rest for ever, and the interpreter joins that thread at exit: the process would hang
    after Ctrl-C. With every writer closed the read ends, the thread sees a broken pool, and exits.
    """
    writer = getattr(results, "_writer", None)
    if writer is not None:
        try:
            writer.close()
        except OSError:
            pass


class PreparedStream:
    """What :meth:`Preparer.stream` returns: ``[item, prepared model]``, failures left out (order: see
    :meth:`Preparer.stream`)."""

    def __init__(self, preparer: Preparer, items: Iterator[Any], target_of: Callable[[Any], Any]) -> None:
        self.preparer = preparer
        self.items = items
        self.target_of = target_of
        self.pending: deque = deque()  # [item, future], in order (workers only)
        self.ahead: deque = deque()  # [item, prepared model] the timing process prepared in a running stretch
        self.exhausted = False

    def __iter__(self) -> "PreparedStream":
        return self

    def ready(self) -> bool:
        """Whether :func:`next` would return without waiting for a worker (True without workers)."""
        if not self.preparer.workers or self.ahead:
            return True
        self._top_up()
        return not self.pending or self.pending[0][1].done()

    def before_round(self, round_index: int, chunks: int) -> bool:
        """What the chunked protocol calls before each round (:meth:`Preparer.before_round`); False when the
        round was not timed because the timing process prepared a model instead (then it asks again).

        In a stretch with the workers running, every chunk timed is disturbed by them and left out: on a
        machine with as many free cores as workers, the timing core's time is better spent preparing the next
        model beside them (then the workers stop and timing goes on). Nothing is prepared here when ``queue``
        models prepared here already wait to be loaded, or no model is left to start: the round is timed as
        before.
        """
        p = self.preparer
        p.before_round(round_index, chunks)
        if not (p.running_stretch and p.steal and len(self.ahead) < p.queue):
            return True
        item = self._next_unstarted()
        if item is None:
            return True
        p.end_running_stretch()
        prepared = self._prepare_here(item)  # a failure is counted as that task's
        if prepared is not None:
            p.stats.prepared_ahead += 1
            self.ahead.append(prepared)
        return False

    def workers_busy(self) -> bool:
        """Whether a worker is preparing a model now (one submitted and not finished): a running stretch whose
        workers have nothing to do disturbs nothing."""
        return any(not future.done() for _, future in self.pending)

    def _top_up(self) -> None:
        p = self.preparer
        while len(self.pending) < p.queue:
            item = self._next_unstarted()
            if item is None:
                break
            self.pending.append([item, p._submit(self.target_of(item))])
        p.stats.peak_outstanding = max(p.stats.peak_outstanding, len(self.pending) + len(self.ahead))

    def __next__(self) -> list:
        p = self.preparer
        while True:
            if not p.workers:
                prepared = self._prepare_here(next(self.items))  # StopIteration ends the stream
                if prepared is not None:
                    return prepared
                continue
            self._top_up()
            if self.ahead and not (self.pending and self.pending[0][1].done()):
                return self.ahead.popleft()  # a model a worker finished goes first: its queue then has room
            if not self.pending:
                raise StopIteration
            if p.steal and not self.pending[0][1].done():
                p.resume()  # nothing is timed while this waits: let the workers work
                item = self._next_unstarted()
                if item is not None:  # no worker has started it: prepare it here rather than sit idle
                    p.stats.prepared_here += 1
                    prepared = self._prepare_here(item)
                    if prepared is not None:
                        return prepared
                    continue
            item, future = self.pending.popleft()
            if not future.done():
                p.resume()
            began = time.perf_counter()
            try:
                prepared, seconds = p._result(future)
            except BrokenProcessPool:
                p._fail(item, "a preparation worker died (the runtime crashed on this or a model prepared beside "
                              "it); the workers were restarted")
                p._restart()
                for entry in self.pending:
                    entry[1] = p._submit(self.target_of(entry[0]))
                continue
            except Exception as exc:  # noqa: BLE001 - the runtimes raise their own types; one line per task
                p._fail(item, one_line(exc))
                continue
            finally:
                p.stats.wait_s += time.perf_counter() - began
            p.stats.worker_s += seconds
            return [item, self._counted(prepared)]

    def _next_unstarted(self) -> Any:
        """The next item not yet handed to a worker, or None when there is none."""
        item = None if self.exhausted else next(self.items, None)
        self.exhausted = item is None
        return item

    def _prepare_here(self, item) -> list | None:
        """``[item, prepared model]`` prepared in the timing process, or None when it failed (counted)."""
        p = self.preparer
        began = time.perf_counter()
        try:
            return [item, self._counted(prepare_target(p.device, self.target_of(item)))]
        except Exception as exc:  # noqa: BLE001 - the runtimes raise their own types; one line per task
            p._fail(item, one_line(exc))
            return None
        finally:
            p.stats.inline_s += time.perf_counter() - began

    def _counted(self, prepared: Any) -> Any:
        self.preparer.stats.prepared += 1
        return prepared
