"""The contract suite for plugins: devices, predictors, search spaces and searchers.

As scikit-learn's ``check_estimator`` does for estimators, these functions
check that a plugin keeps the promises the rest of hwprof relies on, and
raise :class:`ContractError` naming the first promise it breaks. hwprof runs
them over every registered plugin in its own tests; a third party runs them
over theirs::

    from hwprof.testing import check_device
    from my_package import MyChip

    def test_my_chip_keeps_the_device_contract():
        check_device(MyChip)

Each check returns a :class:`ContractReport`: what was checked and what was
skipped and why (a device that is not available here skips the checks that
run models, and says so).

This module sits above every layer (like the command line): it exercises the
whole stack, so it may import ``nas``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np

from hwprof.arch import Arch
from hwprof.errors import HwprofError

KINDS = ("cpu", "gpu", "npu", "dsp", "vpu")


class ContractError(AssertionError):
    """A plugin broke a promise of its contract (the message says which, and what it did instead)."""


@dataclass
class ContractReport:
    """What a contract check covered.

    Attributes:
        plugin: The plugin's name.
        passed: Names of the checks it passed.
        skipped: Check name -> why it was skipped.
    """

    plugin: str
    passed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        """Record ``name`` as passed, or raise :class:`ContractError` with ``detail``."""
        if not ok:
            raise ContractError(f"{self.plugin}: {name}" + (f" ({detail})" if detail else ""))
        self.passed.append(name)

    def raises(self, name: str, call: Callable[[], Any], error: type[BaseException] = HwprofError) -> None:
        """Record ``name`` as passed if ``call()`` raises ``error``; else raise :class:`ContractError`."""
        try:
            call()
        except error:
            self.passed.append(name)
            return
        except Exception as exc:  # noqa: BLE001 - the wrong exception is the contract broken
            raise ContractError(f"{self.plugin}: {name} (raised {type(exc).__name__}: {exc}, "
                                f"not {error.__name__})") from None
        raise ContractError(f"{self.plugin}: {name} (nothing was raised)")


def _strict_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _make(factory: Any, **kwargs: Any) -> Any:
    """An instance: ``factory(**kwargs)`` for a class or function, else ``factory`` itself."""
    return factory(**kwargs) if callable(factory) else factory


@lru_cache(maxsize=4)
def _archs(space_name: str, n: int, seed: int) -> tuple[Arch, ...]:
    from nas.spaces import get_space

    rng = np.random.default_rng(seed)
    space = get_space(space_name)
    return tuple(space.sample(rng) for _ in range(n))


# --- devices ---------------------------------------------------------------------------------


def check_device(factory: Any, arch: Arch | None = None, **kwargs: Any) -> ContractReport:
    """Check a device plugin: a :class:`~hwprof.device.Device` subclass, a function that makes one, or an instance.

    Args:
        factory: The device class (called with ``seed=`` when it takes one, plus ``kwargs``), or an instance.
        arch: The network to build and run (default: a small seeded ``ofa`` network).
        **kwargs: Arguments for the class.

    Raises:
        ContractError: naming the first broken promise.
    """
    import inspect

    import onnx

    from hwprof.device import Device, NodeTime, Session

    def make(seed: int) -> Device:
        if not callable(factory):
            return factory
        takes_seed = "seed" in inspect.signature(factory).parameters
        return factory(**({"seed": seed} if takes_seed else {}), **kwargs)

    device = make(0)
    report = ContractReport(getattr(device, "name", "") or type(device).__name__)
    report.check("is a hwprof.device.Device", isinstance(device, Device), type(device).__name__)
    report.check("has a name", isinstance(device.name, str) and bool(device.name))
    report.check(f"kind is one of {', '.join(KINDS)}", device.kind in KINDS, repr(device.kind))
    report.check("simulated is a bool", isinstance(device.simulated, bool), repr(device.simulated))
    report.check("label marks a simulated device", not device.simulated or "(simulated)" in device.label,
                 device.label)
    info = device.info()
    report.check("info() is a dict of strict JSON", isinstance(info, dict) and _strict_json(info))
    report.check("settings() is a dict of strict JSON", isinstance(device.settings(), dict)
                 and _strict_json(device.settings()))
    report.check("recorded_settings() holds settings()", device.settings().items()
                 <= device.recorded_settings().items())
    for what in ("profile_hash", "settings_hash"):
        value = getattr(device, what)()
        report.check(f"{what}() is 12 hex digits and stable", bool(re.fullmatch(r"[0-9a-f]{12}", value))
                     and getattr(device, what)() == value, repr(value))
    report.check("min_time_s() is a non-negative number", device.min_time_s() >= 0 and device.min_time_s(True) >= 0)
    arch = arch or _archs("ofa", 1, 4)[0]
    model = device.build(arch)
    if isinstance(model, onnx.ModelProto):
        try:
            onnx.checker.check_model(model)
            valid, why = True, ""
        except Exception as exc:  # noqa: BLE001 - any checker failure breaks the promise
            valid, why = False, str(exc).splitlines()[0]
        report.check("build(arch) is a valid ONNX model", valid, why)
    else:  # a device with its own format (LiteRT's .tflite) builds that; load() takes it
        report.check("build(arch) gives a model of one of its model_formats", len(device.model_formats) > 1,
                     f"{type(model).__name__}, model_formats {device.model_formats}")
    if not device.is_available():
        reason = device.unavailable_reason()
        report.check("unavailable_reason() says why it is not available", isinstance(reason, str) and bool(reason))
        report.raises("require_available() raises HwprofError when not available", device.require_available)
        report.skipped["running models"] = f"not available here: {reason}"
        return report
    session = device.load(model)
    report.check("load() returns a Session", isinstance(session, Session), type(session).__name__)
    times = session.run(5)
    report.check("run(5) returns 5 float64 seconds, finite and positive",
                 isinstance(times, np.ndarray) and times.shape == (5,) and times.dtype == np.float64
                 and bool(np.all(np.isfinite(times))) and bool(np.all(times > 0)), repr(times))
    session.close()
    from hwprof.prepare import crosses_processes

    # measure --prepare-workers hands the device to worker processes and their prepared models back
    prepared = device.prepare(device.build(arch))
    why = crosses_processes(device) or crosses_processes(prepared)
    report.check("the device and prepare(build(arch)) can be sent to a worker process (measure --prepare-workers)",
                 why is None, why or "")
    if prepared is not None:
        loaded = device.load(prepared)
        report.check("load() takes what prepare() returns", isinstance(loaded, Session), type(loaded).__name__)
        loaded.close()
    if device.simulated:
        again = make(0).run(model, 5)
        report.check("a simulated device is reproducible for a seed", np.array_equal(make(0).run(model, 5), again))
    from hwprof.interleave import measure_one

    one = measure_one(device, model, min_time_s=0.0 if device.simulated else 0.02)
    report.check("the measurement protocol times it", one.measurement.median_ms > 0, repr(one.measurement))
    try:
        ops = device.op_times(model, runs=2)
    except HwprofError:
        report.skipped["op_times"] = "the device cannot break latency down per op (it says so with HwprofError)"
    else:
        report.check("op_times() returns NodeTimes with non-negative ms",
                     all(isinstance(o, NodeTime) and o.ms >= 0 for o in ops) and bool(ops))
    return report


# --- predictors ------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def contract_data():
    """40 ofa networks and their blocks, measured on the simulated kirin-npu (seeded, a few seconds)."""
    import tempfile

    from devices import resolve
    from hwprof.dataset import Dataset
    from hwprof.predictors.data import load_measurements
    from hwprof.profiling import measure_into

    with tempfile.TemporaryDirectory(prefix="hwprof-contract-") as tmp:
        measure_into(Dataset(tmp), resolve("kirin-npu", seed=0), list(_archs("ofa", 40, 0)), mode="both")
        return load_measurements(tmp)


def check_predictor(factory: Any, setup: Callable[[Any], Any] | None = None, **params: Any) -> ContractReport:
    """Check a predictor plugin: a :class:`~hwprof.predictors.base.LatencyPredictor` subclass (or a function
    making one).

    It is fitted on 32 networks (and their blocks) measured on the simulated
    kirin-npu and tested on 8 more.

    Args:
        factory: The predictor class, called with ``params``.
        setup: Called on each new predictor before fitting (e.g. to hand a transfer predictor its sources).
        **params: Constructor arguments.

    Raises:
        ContractError: naming the first broken promise.
    """
    from hwprof.predictors import store
    from hwprof.predictors.base import LatencyPredictor

    def make() -> LatencyPredictor:
        predictor = factory(**params)
        if setup is not None:
            setup(predictor)
        return predictor

    data = contract_data()
    train, test, latency = list(data.archs[:32]), list(data.archs[32:]), np.asarray(data.latency_ms)
    predictor = make()
    report = ContractReport(getattr(predictor, "name", "") or type(predictor).__name__)
    report.check("is a hwprof LatencyPredictor", isinstance(predictor, LatencyPredictor), type(predictor).__name__)
    report.check("has a name", isinstance(predictor.name, str) and bool(predictor.name))
    report.check("get_params() is a dict of strict JSON", isinstance(predictor.get_params(), dict)
                 and _strict_json(predictor.get_params()))
    report.raises("predict() before fit() raises HwprofError", lambda: predictor.predict(test))

    def fitted() -> LatencyPredictor:
        p = make()
        out = p.fit(train, latency[:32], data.blocks if p.needs_blocks else None, seed=0)
        report.check("fit() returns the predictor itself", out is p, type(out).__name__)
        return p

    predictor = fitted()
    report.check("fitted state is in attributes ending with _", bool(predictor.is_fitted))
    predicted = np.asarray(predictor.predict(test))
    report.check("predict() gives one finite, positive ms per network",
                 predicted.shape == (len(test),) and bool(np.all(np.isfinite(predicted)))
                 and bool(np.all(predicted > 0)), repr(predicted))
    report.check("the same seed gives the same fit", np.array_equal(fitted().predict(test), predicted))
    restored = store.loads(store.dumps(predictor), "the saved predictor")
    report.check("saves and loads (JSON + npz/skops, no pickle) to the same predictions",
                 np.allclose(restored.predict(test), predicted, rtol=1e-9, atol=0))
    return report


# --- search spaces ---------------------------------------------------------------------------


def check_space(factory: Any, **kwargs: Any) -> ContractReport:
    """Check a search-space plugin: a :class:`~nas.spaces.base.SearchSpace` subclass (or a function making one).

    Raises:
        ContractError: naming the first broken promise.
    """
    import onnx

    from hwprof.build_onnx import build_onnx
    from nas.spaces.base import SearchSpace

    space = _make(factory, **kwargs)
    report = ContractReport(getattr(space, "name", "") or type(space).__name__)
    report.check("is a nas SearchSpace", isinstance(space, SearchSpace), type(space).__name__)
    report.check("has a name", isinstance(space.name, str) and bool(space.name))
    names = [v.name for v in space.variables]
    report.check("has variables with unique names", bool(names) and len(set(names)) == len(names))
    report.check("every variable has options, one label each, and kind layer or global",
                 all(v.options and len(v.labels) == len(v.options) and v.kind in ("layer", "global")
                     for v in space.variables))
    report.check("size() is at least 1", space.size() >= 1)
    report.check("info() is a dict of strict JSON", _strict_json(space.info()))
    first = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    again = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    report.check("sampling is reproducible for a seed", [a.hash for a in first] == [a.hash for a in again])
    for arch in first:
        report.check("a sampled network names its space and carries its genes",
                     arch.space == space.name and len(arch.genes) == space.n_variables)
        report.check("to_arch(genes_of(arch)) gives the network back", space.to_arch(space.genes_of(arch)) == arch)
        report.check("the network survives JSON", Arch.from_json(arch.to_json()) == arch)
    model = build_onnx(first[0])
    try:
        onnx.checker.check_model(model)
        valid = True
    except Exception:  # noqa: BLE001
        valid = False
    report.check("a sampled network builds a valid ONNX model", valid)
    report.check("a sampled network has MACs and parameters", first[0].macs > 0 and first[0].params > 0)
    return report


# --- searchers -------------------------------------------------------------------------------


def check_searcher(factory: Any, space: str = "ofa", budget: int = 30, **settings: Any) -> ContractReport:
    """Check a searcher plugin: a :class:`~nas.searchers.base.Searcher` subclass (or a function making one).

    It searches ``space`` under a latency constraint with a FLOPs-linear
    predictor and a parameter-count score (both cheap and seeded), twice.

    Raises:
        ContractError: naming the first broken promise.
    """
    from hwprof.predictors.linear import FlopsLinearPredictor
    from nas.accuracy.base import AccuracyEstimator
    from nas.searchers.base import Constraint, SearchResult, Searcher
    from nas.spaces import get_space

    class ParamsScore(AccuracyEstimator):  # a stand-in score: more parameters, higher score
        name, kind = "params", "stand-in"

        def score(self, archs: Sequence[Arch]) -> np.ndarray:
            return np.array([np.log10(a.params) for a in archs])

    searcher = _make(factory, **settings)
    report = ContractReport(getattr(searcher, "name", "") or type(searcher).__name__)
    report.check("is a nas Searcher", isinstance(searcher, Searcher), type(searcher).__name__)
    report.check("has a name", isinstance(searcher.name, str) and bool(searcher.name))
    report.check("settings() is a dict of strict JSON", _strict_json(searcher.settings()))
    sp = get_space(space)
    try:
        searcher.check_space(sp)
    except HwprofError as exc:
        report.skipped["searching"] = f"it cannot search '{space}': {exc}"
        return report
    archs = _archs(space, 30, 1)
    predictor = FlopsLinearPredictor().fit(list(archs), np.array([a.macs / 1e8 + 0.5 for a in archs]))
    latencies = predictor.predict(list(archs))
    constraint = Constraint(float(np.median(latencies)))

    def search() -> SearchResult:
        return _make(factory, **settings).search(sp, predictor, ParamsScore(), constraint, budget=budget, seed=3)

    result = search()
    report.check("search() returns a SearchResult", isinstance(result, SearchResult), type(result).__name__)
    hashes = [c.arch.hash for c in result.history]
    if getattr(searcher, "trains_supernet", False):  # its history is the networks its supernet derived, by epoch
        report.check("it derives networks", len(hashes) > 0)
    else:
        report.check("it scores distinct networks, at most the budget", 0 < len(hashes) <= budget
                     and len(set(hashes)) == len(hashes), f"{len(hashes)} scored, {len(set(hashes))} distinct")
    report.check("its networks come from the space", all(c.arch.space == sp.name for c in result.history))
    report.check("its winner meets the constraint", result.best is None
                 or result.best.latency_ms <= constraint.latency_ms)
    lat = np.array([c.latency_ms for c in result.pareto])
    report.check("its front is sorted by latency", bool(np.all(np.diff(lat) >= 0)))
    report.check("the same seed gives the same search", [c.arch.hash for c in search().history] == hashes)
    return report
