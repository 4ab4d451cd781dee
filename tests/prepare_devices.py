"""Devices for tests/test_prepare.py, in a module of their own so that spawned preparation workers import them."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from hwprof.device import Device, Session
from hwprof.errors import HwprofError


class FixedSession(Session):
    """Runs nothing; every inference 'takes' a fixed time that depends on the model's name."""

    def __init__(self, name: str) -> None:
        self.seconds = 1e-3 * (1 + sum(map(ord, name)) % 7)

    def run(self, n: int) -> np.ndarray:
        return np.full(n, self.seconds)


def _send_half_a_result() -> None:
    """In a pool worker: write the first bytes of a 1 MB message to the results pipe, then hang, as a worker
    killed while sending a large model leaves it."""
    import struct
    import sys

    frame = sys._getframe()
    while frame is not None and frame.f_code.co_name != "_process_worker":
        frame = frame.f_back
    writer = frame.f_locals["result_queue"]._writer
    os.write(writer.fileno(), struct.pack("!i", 2**20) + b"half")
    time.sleep(3600)


class SlowPrepDevice(Device):
    """A 'real' device whose prepare() takes ``delay_s``, fails on names in ``bad``, kills its worker on names
    in ``crash``, and on names in ``half_sent`` hangs in its worker half-way through sending the result (it
    writes the start of a message to the pool's results pipe, then sleeps); with ``log``, each prepare()
    appends the model's name and its process id to that file (before hanging, for ``half_sent``)."""

    name = "slow-prep"
    kind = "cpu"
    simulated = False

    def __init__(self, delay_s: float = 0.0, bad: tuple[str, ...] = (), crash: tuple[str, ...] = (),
                 log: str | None = None, half_sent: tuple[str, ...] = (), seed: int = 0) -> None:
        self.delay_s, self.bad, self.crash, self.log = delay_s, tuple(bad), tuple(crash), log
        self.half_sent = tuple(half_sent)
        self.parent = os.getpid()  # crash only in a worker, never in the test process

    def is_available(self) -> bool:
        return True

    def info(self) -> dict[str, Any]:
        return {"simulated": False, "test": "slow-prep"}

    def build(self, target) -> str:
        return target if isinstance(target, str) else (getattr(target, "hash", "") or target.key())

    def prepare(self, model: str) -> str:
        if model in self.crash and os.getpid() != self.parent:
            os._exit(3)  # a runtime that crashes its process
        time.sleep(self.delay_s)
        if model in self.bad:
            raise HwprofError(f"the runtime cannot compile {model}")
        if self.log:
            with open(self.log, "a") as fh:
                fh.write(f"{model} {os.getpid()}\n")
        if model in self.half_sent and os.getpid() != self.parent:
            _send_half_a_result()
        return f"prepared:{model}"

    def load(self, model) -> FixedSession:
        if not isinstance(model, str):  # the drift reference's ONNX model
            model = f"prepared:{model.graph.name}"
        if not model.startswith("prepared:"):
            model = self.prepare(model)
        return FixedSession(model)
