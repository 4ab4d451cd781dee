"""A predictor per (device, settings, profile, space), built on first use and cached.

``nas search`` without ``--predictor`` uses this: it measures a sample of the
space on the target (resumably, into the cache), fits the default predictor,
and saves it, so later searches on the same target start at once. The default
is a lookup table of blocks (kernel-rf fallback) on simulated chips, and on a
real runtime the predictor with the lowest cross-validated error on the
sample (:mod:`hwprof.predictors.selection`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from hwprof.device import Device
from hwprof.dataset import Dataset
from hwprof.io import cache_dir
from hwprof.protocol import Protocol
from hwprof.predictors import store
from hwprof.predictors.base import LatencyPredictor
from hwprof.predictors.data import load_measurements
from hwprof.predictors.selection import select_predictor
from hwprof.predictors.fitting import fit_on
from hwprof.profiling import measure_into

SIMULATED_SAMPLES = 300
REAL_SAMPLES = 60


def cache_key(device: Device, space_name: str) -> str:
    """File-name-safe key of a device (with its settings and profile) and a space."""
    return f"{device.name}-{space_name}-{device.settings_hash()}-{device.profile_hash()}"


def cache_path(device: Device, space) -> Path:
    """Where the cached predictor for ``device`` and ``space`` is (or will be) kept."""
    base = getattr(space, "base", space)  # a reduced space shares its base's predictor
    spec = getattr(base, "spec", base.name)  # constructor arguments (vit:gelu=tanh) make another space
    return cache_dir() / "predictors" / f"{cache_key(device, spec.replace(':', '-').replace(',', '-'))}.pred"


def cached_predictor(device: Device, space, seed: int = 0,
                     status: Callable[[str], None] = lambda _m: None) -> tuple[LatencyPredictor, Path, bool]:
    """The cached predictor for ``device`` and ``space``, building it if missing.

    Returns:
        (predictor, its file, whether it was built now).
    """
    path = cache_path(device, space)
    root, key = path.parent, path.stem
    if path.exists():
        return store.load(path), path, False
    device.require_available()
    n = SIMULATED_SAMPLES if device.simulated else REAL_SAMPLES
    rng = np.random.default_rng(seed)
    full = getattr(space, "base", space)  # a reduced space shares its base's predictor: sample the whole base
    archs = [full.sample(rng) for _ in range(n)]
    data_dir = root / f"{key}.data"
    status(f"no cached predictor for {key}: measuring {n} {space.name} networks and their blocks on the target")
    protocol = Protocol(min_time_s=device.min_time_s(quick=True), time_cap_s=2.0)
    measure_into(Dataset(data_dir), device, archs, mode="both", protocol=protocol)
    data = load_measurements(data_dir, device=device.name, space=space.name)
    if device.simulated:
        status(f"fitting the default predictor (lut with kernel-rf fallback) on {n} networks")
        predictor = fit_on("lut", data, seed=seed, fallback="kernel-rf")
    else:  # real runtimes differ in which model fits them (see hwprof.predictors.selection)
        selection = select_predictor(data, seed=seed, status=status)
        status(f"fitting {selection.name}, the lowest cross-validated error of "
               f"{', '.join(selection.scores)}, on {n} networks")
        predictor = fit_on(selection.name, data, seed=seed)
        predictor.provenance_["selection"] = selection.as_dict()
    root.mkdir(parents=True, exist_ok=True)
    store.save(predictor, path)
    return predictor, path, True
