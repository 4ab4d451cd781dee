"""Shared fixtures: a few sampled networks per space (seeded)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nas.spaces import get_space, space_names

SPACES = ["ofa", "ofa-width", "proxyless", "resnet", "fbnet", "s3nas", "hurricane"]
ATTENTION_SPACES = ["vit", "hybrid"]  # tested in tests/test_attention.py
REPO = Path(__file__).resolve().parents[1]


def samples(space: str, n: int, seed: int = 0):
    """``n`` seeded samples of ``space``."""
    sp = get_space(space)
    rng = np.random.default_rng(seed)
    return [sp.sample(rng) for _ in range(n)]


def measured_dir(path: Path, device: str, space: str, n: int, seed: int, mode: str = "both") -> Path:
    """A dataset at ``path`` of ``n`` seeded ``space`` networks measured on a simulated ``device`` (noise seed 0)."""
    from devices import resolve
    from hwprof.dataset import Dataset
    from hwprof.profiling import measure_into

    measure_into(Dataset(path), resolve(device, seed=0), samples(space, n, seed=seed), mode=mode)
    return path


def run_cli(*args: str, cwd: Path | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """Run a console script (``hwprof`` or ``nas``) of this environment as a user would."""
    exe = Path(sys.executable).parent / args[0]
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run([str(exe), *args[1:]], capture_output=True, text=True, cwd=cwd, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}): {proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def _test_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hwprof-cache")


@pytest.fixture(autouse=True)
def _own_cache(_test_cache, monkeypatch):
    """Tests never read or fill the user's hwprof cache, and two test processes (``make test`` runs the suite
    in several) never share one: each process has its own, which a test may replace with its own again."""
    monkeypatch.setenv("HWPROF_CACHE", str(_test_cache))


@pytest.fixture(scope="session")
def all_space_names():
    return space_names()
