"""The plugin contract suite (hwprof.testing) over every registered plugin, the example plugin and broken ones."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from hwprof.registry import DEVICES, PREDICTORS, SEARCHERS, SPACES
from hwprof.testing import ContractError, check_device, check_predictor, check_searcher, check_space, contract_data
from tests.conftest import REPO


@pytest.mark.parametrize("name", DEVICES.names())
def test_every_registered_device_keeps_the_contract(name):
    report = check_device(DEVICES.factory(name))
    assert "has a name" in report.passed
    assert ("run(5) returns 5 float64 seconds, finite and positive" in report.passed) or report.skipped


def _transfer_sources(predictor) -> None:
    from hwprof.predictors.linear import AdditivePredictor, FlopsLinearPredictor

    data = contract_data()
    archs, latency = list(data.archs), np.asarray(data.latency_ms)
    predictor.with_sources([FlopsLinearPredictor().fit(archs, latency * 1.3),
                            AdditivePredictor().fit(archs, latency * 0.8)])


@pytest.mark.parametrize("name", PREDICTORS.names())
def test_every_registered_predictor_keeps_the_contract(name):
    report = check_predictor(PREDICTORS.factory(name), setup=_transfer_sources if name == "transfer" else None)
    assert "saves and loads (JSON + npz/skops, no pickle) to the same predictions" in report.passed


@pytest.mark.parametrize("name", SPACES.names())
def test_every_registered_space_keeps_the_contract(name):
    assert "to_arch(genes_of(arch)) gives the network back" in check_space(SPACES.factory(name)).passed


@pytest.mark.parametrize("name", SEARCHERS.names())
def test_every_registered_searcher_keeps_the_contract(name):
    quick = ({"epochs": 2, "warmup_epochs": 1, "batch": 32, "max_images": 96, "train_resolution": 16}
             if name == "single-path" else {})  # it trains a supernet: a small one
    report = check_searcher(SEARCHERS.factory(name), **quick)
    assert "the same seed gives the same search" in report.passed or report.skipped


def test_the_example_device_plugin_keeps_the_contract(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "examples" / "hwprof-device-example"))
    from hwprof_device_example import UnoptimizedOrtDevice

    report = check_device(UnoptimizedOrtDevice)
    assert "run(5) returns 5 float64 seconds, finite and positive" in report.passed
    sys.modules.pop("hwprof_device_example", None)


def test_a_broken_device_fails_the_contract_naming_the_promise():
    from hwprof.device import Device, Session

    class ListSession(Session):
        def run(self, n):
            return [0.001] * n  # a list, not an array of float64 seconds

    class ListDevice(Device):
        name, kind = "lists", "cpu"

        def is_available(self):
            return True

        def info(self):
            return {"simulated": False}

        def load(self, model):
            return ListSession()

    with pytest.raises(ContractError, match=r"run\(5\) returns 5 float64 seconds"):
        check_device(ListDevice)

    class WrongKind(ListDevice):
        kind = "tpu"

    with pytest.raises(ContractError, match="kind is one of"):
        check_device(WrongKind)


def test_a_broken_predictor_fails_the_contract():
    from hwprof.predictors.linear import FlopsLinearPredictor

    class ForgetsToReturnSelf(FlopsLinearPredictor):
        def fit(self, *args, **kwargs):
            super().fit(*args, **kwargs)

    with pytest.raises(ContractError, match="fit\\(\\) returns the predictor itself"):
        check_predictor(ForgetsToReturnSelf)


def test_a_broken_searcher_fails_the_contract():
    from nas.searchers.random_search import RandomSearcher

    class Unseeded(RandomSearcher):
        def run(self, evaluator, constraint, rng):
            return super().run(evaluator, constraint, np.random.default_rng())

    with pytest.raises(ContractError, match="same seed gives the same search"):
        check_searcher(Unseeded)
