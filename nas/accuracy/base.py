"""The accuracy-estimator interface and the on-disk cache of proxy scores.

An estimator says what its number is: ``kind`` is ``"proxy"`` (a zero-cost
score that correlates with accuracy, not an accuracy), ``"predicted accuracy"``
(a model fitted to accuracies the user measured) or ``"short-training
accuracy"`` (top-1 after a few epochs on the user's data). Outputs print the
label, so a proxy is never shown as an accuracy.
"""

from __future__ import annotations

import functools

import hashlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from hwprof.arch import Arch
from hwprof.io import cache_dir


class AccuracyEstimator(ABC):
    """Base class of accuracy estimators: higher score = better network."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "proxy"

    @property
    def label(self) -> str:
        """What the score is, for tables and plots (e.g. ``synflow proxy (log10)``)."""
        return f"{self.name} {self.kind}"

    def settings(self) -> dict[str, Any]:
        """Settings that change the score (part of cache keys)."""
        return {}

    def sees(self, space) -> set[str]:
        """Names of the space variables whose changes move the score (see :mod:`nas.dimensions`).

        Searchers hold every other variable fixed. The default, every variable,
        suits an estimator that scores exactly the network it is given.
        """
        return {v.name for v in space.variables}

    def blind_reason(self, variable: str) -> str:
        """Why the score cannot judge ``variable`` (for search summaries)."""
        return "its score does not change with it"

    @abstractmethod
    def score(self, archs: Sequence[Arch]) -> np.ndarray:
        """One score per architecture."""


class ScoreCache:
    """Append-only JSON-lines cache of scores, keyed by estimator settings and arch hash.

    Each line is written with one ``write`` call, so a killed process leaves at
    most one partial last line, which is skipped on reading.
    """

    def __init__(self, estimator: AccuracyEstimator, directory: Path | None = None) -> None:
        settings = json.dumps({"name": estimator.name, **estimator.settings()}, sort_keys=True)
        tag = hashlib.sha256(settings.encode()).hexdigest()[:12]
        self.path = (directory or cache_dir() / "scores") / f"{estimator.name}-{tag}.jsonl"
        self._values: dict[str, float] | None = None

    def _load(self) -> dict[str, float]:
        if self._values is None:
            self._values = {}
            if self.path.exists():
                for line in self.path.read_text().splitlines():
                    try:
                        row = json.loads(line)
                        self._values[row["arch"]] = float(row["score"])
                    except (ValueError, KeyError, TypeError):
                        continue  # a torn last line from a killed run
        return self._values

    def get(self, arch_hash: str) -> float | None:
        """Cached score, or None."""
        return self._load().get(arch_hash)

    def put(self, scores: dict[str, float]) -> None:
        """Add scores (best effort: an unwritable cache is skipped, not fatal)."""
        values = self._load()
        values.update(scores)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as fh:
                fh.write("".join(json.dumps({"arch": k, "score": v}) + "\n" for k, v in scores.items()))
        except OSError:
            pass


def cached_scores(estimator: AccuracyEstimator, archs: Sequence[Arch],
                  compute: Callable[[list[Arch]], np.ndarray]) -> np.ndarray:
    """Scores of ``archs``: from ``estimator``'s disk cache where present, the rest by ``compute`` (then cached)."""
    cache = ScoreCache(estimator) if getattr(estimator, "use_cache", True) else None
    out = np.empty(len(archs))
    todo = []
    for i, a in enumerate(archs):
        hit = cache.get(a.hash) if cache else None
        if hit is None:
            todo.append(i)
        else:
            out[i] = hit
    if todo:
        fresh = compute([archs[i] for i in todo])
        out[todo] = fresh
        if cache:
            cache.put({archs[i].hash: float(v) for i, v in zip(todo, fresh)})
    return out


class CachedEstimator(AccuracyEstimator):
    """An estimator whose per-network scores are cached on disk by arch hash."""

    use_cache: bool = True

    def score(self, archs: Sequence[Arch]) -> np.ndarray:
        return cached_scores(self, archs, self.compute)

    @abstractmethod
    def compute(self, archs: Sequence[Arch]) -> np.ndarray:
        """Scores of networks not in the cache."""


class ExecutorEstimator(AccuracyEstimator):
    """Scores candidates through an executor (e.g. on Ray workers), in chunks; same scores as ``inner``.

    The on-disk score cache of a :class:`CachedEstimator` stays on the driver:
    only networks it lacks go out. Scores come back in order, so a seeded
    search takes the same path as with the local executor.

    Args:
        inner: The estimator (sent to the workers by value).
        executor: A :class:`hwprof.executors.Executor`.
        chunk: Networks per remote task.
    """

    def __init__(self, inner: AccuracyEstimator, executor, chunk: int = 8) -> None:
        self.inner = inner
        self.executor = executor
        self.chunk = max(1, int(chunk))
        self.name = inner.name
        self.kind = getattr(inner, "kind", "proxy")

    @property
    def label(self) -> str:
        return getattr(self.inner, "label", self.inner.name)

    def settings(self) -> dict[str, Any]:
        return self.inner.settings()

    def sees(self, space) -> set[str]:
        return self.inner.sees(space)

    def blind_reason(self, variable: str) -> str:
        return self.inner.blind_reason(variable)

    def score(self, archs: Sequence[Arch]) -> np.ndarray:
        if isinstance(self.inner, CachedEstimator):
            return cached_scores(self.inner, archs, lambda todo: self._remote(_compute_chunk, todo))
        return self._remote(_score_chunk, archs)

    def _remote(self, method, archs: Sequence[Arch]) -> np.ndarray:
        work = [list(archs[k:k + self.chunk]) for k in range(0, len(archs), self.chunk)]
        results = self.executor.map(functools.partial(method, self.inner), work)
        return np.concatenate([np.asarray(r, dtype=float) for r in results]) if results else np.empty(0)


def _compute_chunk(estimator: CachedEstimator, archs: list[Arch]) -> list[float]:
    return [float(v) for v in estimator.compute(archs)]


def _score_chunk(estimator: AccuracyEstimator, archs: list[Arch]) -> list[float]:
    return [float(v) for v in estimator.score(archs)]
