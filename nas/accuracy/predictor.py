"""An accuracy predictor fitted on (architecture, accuracy) pairs the user measured.

As Once-for-All does (Cai et al., ICLR 2020): a 3-layer MLP (400 units each)
on the one-hot encoding of the space's choices, fitted to accuracies the user
obtained (e.g. by evaluating supernet subnets). hwprof adds log MACs and log
params as features, and with fewer than ``MLP_MIN_PAIRS`` pairs (too few for
the MLP) fits a cross-validated ridge regression instead. Its output is a
*predicted* accuracy, labelled so.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hwprof.arch import Arch
from hwprof.errors import HwprofError
from hwprof.registry import ESTIMATORS
from nas.accuracy.base import AccuracyEstimator

ACCURACY_COLUMNS = ("accuracy", "acc", "top1")
MLP_MIN_PAIRS = 500
ARCH_COLUMNS = ("arch", "arch_json")


def read_accuracy_pairs(path: str | Path) -> tuple[list[Arch], np.ndarray]:
    """(arch, accuracy) pairs from a CSV (columns arch|arch_json, accuracy|acc|top1) or JSON Lines file.

    Raises:
        HwprofError: naming the file and line that cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise HwprofError(f"accuracy data {path} does not exist",
                          "give a CSV or JSONL file of (arch, accuracy) pairs with --accuracy-data")
    rows: list[dict] = []
    try:
        if path.suffix == ".csv":
            with open(path, newline="") as fh:
                rows = list(csv.DictReader(fh))
        else:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (ValueError, csv.Error, UnicodeDecodeError) as exc:
        raise HwprofError(f"cannot read accuracy data {path}: {exc}", "use CSV or JSON Lines") from None
    archs, acc = [], []
    for n, row in enumerate(rows, start=2 if path.suffix == ".csv" else 1):
        arch_field = next((row[c] for c in ARCH_COLUMNS if c in row), None)
        acc_field = next((row[c] for c in ACCURACY_COLUMNS if c in row), None)
        if arch_field is None or acc_field is None:
            raise HwprofError(f"{path} line {n}: needs an arch column ({'/'.join(ARCH_COLUMNS)}) and an accuracy "
                              f"column ({'/'.join(ACCURACY_COLUMNS)})", "see `nas search --help`")
        try:
            archs.append(Arch.from_dict(json.loads(arch_field) if isinstance(arch_field, str) else arch_field))
            acc.append(float(acc_field))
        except (ValueError, TypeError, HwprofError) as exc:
            raise HwprofError(f"{path} line {n}: {exc}", "each row needs a valid arch JSON and a number") from None
    if len(archs) < 10:
        raise HwprofError(f"{path} has {len(archs)} pairs; an accuracy predictor needs at least 10",
                          "measure the accuracy of more networks")
    return archs, np.array(acc)


@ESTIMATORS.register("predictor")
class AccuracyPredictorEstimator(AccuracyEstimator):
    """Predicted accuracy from a model fitted on the user's (arch, accuracy) pairs (OFA-style MLP, or ridge when few).

    Args:
        accuracy_data: CSV or JSONL file of (arch, accuracy) pairs.
        seed: Seed of the MLP's initialisation.
    """

    name = "predictor"
    kind = "predicted accuracy"

    def __init__(self, accuracy_data: str | Path | None = None, seed: int = 0) -> None:
        if accuracy_data is None:
            raise HwprofError("the predictor estimator needs --accuracy-data FILE",
                              "give a CSV/JSONL of (arch, accuracy) pairs, or use --estimator synflow")
        self.accuracy_data = str(accuracy_data)
        self.seed = seed
        archs, acc = read_accuracy_pairs(accuracy_data)
        spaces = {a.space for a in archs}
        if len(spaces) != 1 or "" in spaces:
            raise HwprofError(f"{accuracy_data} mixes spaces or has networks without one: {sorted(spaces)}",
                              "give pairs from the space you search")
        from sklearn.linear_model import RidgeCV
        from sklearn.neural_network import MLPRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        from nas.spaces import get_space

        self.space_ = spaces.pop()
        self._space = get_space(self.space_)
        x = self._features(archs)
        self.mean_, self.scale_ = float(acc.mean()), float(acc.std() or 1.0)
        if len(acc) >= MLP_MIN_PAIRS:
            self.kind_ = "MLP"
            regressor = MLPRegressor(hidden_layer_sizes=(400, 400, 400), alpha=1e-2, max_iter=300,
                                     random_state=seed)
        else:
            self.kind_ = "ridge"
            regressor = RidgeCV(alphas=np.logspace(-3, 3, 13))
        self.model_ = make_pipeline(StandardScaler(), regressor).fit(x, (acc - self.mean_) / self.scale_)
        self.n_pairs_ = len(acc)
        genes = np.array([self._space.genes_of(a) for a in archs])
        self.varied_ = {v.name for i, v in enumerate(self._space.variables) if len(set(genes[:, i])) > 1}

    @property
    def label(self) -> str:
        return f"predicted accuracy ({self.kind_} on {self.n_pairs_} user pairs)"

    def settings(self) -> dict[str, Any]:
        return {"accuracy_data": self.accuracy_data, "seed": self.seed}

    def sees(self, space) -> set[str]:
        """The variables its training pairs vary: it learnt nothing about the others."""
        return set(self.varied_)

    def blind_reason(self, variable: str) -> str:
        return f"its {self.n_pairs_} training pairs never vary it"

    def _features(self, archs: Sequence[Arch]) -> np.ndarray:
        """One-hot choices plus log MACs and log params."""
        genes = np.array([self._space.genes_of(a) for a in archs])
        cols = [np.eye(len(v.options))[genes[:, i]] for i, v in enumerate(self._space.variables)]
        cols.append(np.log([[a.macs, a.params] for a in archs]))
        return np.hstack(cols)

    def score(self, archs: Sequence[Arch]) -> np.ndarray:
        if any(a.space != self.space_ for a in archs):
            raise HwprofError(f"the accuracy data are for space '{self.space_}'", f"search with --space {self.space_}")
        return self.model_.predict(self._features(archs)) * self.scale_ + self.mean_
