"""Which cores time and which may do other work; the timing thread pinned to its own.

On a real device hwprof times on the first ``threads`` cores this process
may use and keeps everything else (preparation workers) off them. The timing
thread is pinned there for the whole run: left to move between cores, a
thread timing LiteRT int8 networks on a 2-core VM ran them 17-37% slower
than pinned in one of two runs, while the reference network ran only 9%
slower, so drift correction could not undo it.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Iterator

_PINNED_FROM: dict[int, list[set[int]]] = {}  # thread id -> the affinities it was pinned from, outermost first


def usable_cores() -> list[int]:
    """The cores this process may run on, in order (all of them where affinity is not supported).

    A thread pinned by :func:`pin_timing_thread` still gets the cores it was pinned from: asked from the
    timing thread, the affinity call alone would name only the timed core, and the workers would be put on
    it too.
    """
    pinned_from = _PINNED_FROM.get(threading.get_ident())
    if pinned_from:
        return sorted(pinned_from[0])
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def split_cores(threads: int = 1, cores: list[int] | None = None) -> tuple[list[int], list[int]]:
    """(timed cores, free cores): the first ``threads`` usable cores time, the rest may do other work."""
    cores = usable_cores() if cores is None else list(cores)
    timed = cores[:max(1, threads)]
    return timed, cores[len(timed):]


def pin_timing_thread(threads: int = 1, cores: list[int] | None = None) -> tuple[list[int], set[int] | None]:
    """Pin the calling thread (and the threads it starts later) to the timed cores.

    Returns:
        (the cores it was pinned to, the affinity to restore with :func:`unpin`); ``([], None)`` where it
        was not pinned: no other core to keep it off, or no affinity on this system.
    """
    timed, free = split_cores(threads, cores)
    if not free or not hasattr(os, "sched_setaffinity"):
        return [], None
    restore = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, timed)
    except OSError:
        return [], None
    _PINNED_FROM.setdefault(threading.get_ident(), []).append(set(cores) if cores is not None else restore)
    return timed, restore


def unpin(restore: set[int] | None) -> None:
    """Give the calling thread back the affinity :func:`pin_timing_thread` took (None: nothing to do)."""
    if restore is None:
        return
    try:
        os.sched_setaffinity(0, restore)
    except OSError:
        pass
    stack = _PINNED_FROM.get(threading.get_ident())
    if stack:
        stack.pop()
        if not stack:
            del _PINNED_FROM[threading.get_ident()]


@contextmanager
def pinned_timing(device) -> Iterator[list[int]]:
    """Pin the calling thread to ``device``'s timed cores for a block (nothing on a simulated device);
    yields the cores (empty: not pinned)."""
    if getattr(device, "simulated", False):
        yield []
        return
    timed, restore = pin_timing_thread(getattr(device, "threads", 1) or 1)
    try:
        yield timed
    finally:
        unpin(restore)
