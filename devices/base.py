"""The device protocol, as adapters import it.

The interfaces live in hwprof's core (:mod:`hwprof.device`: :class:`Device`,
:class:`Session`, :class:`NodeTime`, :func:`timed_calls`, :func:`host_info`)
with the ONNX input helpers (:mod:`hwprof.onnx_inputs`), so the core never
imports the device layer; they are re-exported here for adapters and plugins
(``from devices.base import Device, Session``).
"""

from hwprof.device import Device, NodeTime, Session, host_info, timed_calls
from hwprof.onnx_inputs import input_feed, model_input, model_inputs

__all__ = ["Device", "NodeTime", "Session", "host_info", "timed_calls", "input_feed", "model_input", "model_inputs"]
