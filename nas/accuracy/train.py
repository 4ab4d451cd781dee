"""Short training on the user's own images: top-1 after a few epochs.

For users with their own data: each candidate is built as a torch network
(classifier resized to the folder's classes), trained from scratch for a few
epochs on an image folder (``DIR/<class>/<image>``) at a small resolution, and
scored by top-1 accuracy on a held-out fifth of the images. It is an accuracy
after *short* training on *that* data, labelled so; it ranks networks, it does
not reproduce full-training accuracy.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hwprof.arch import Arch
from hwprof.errors import HwprofError
from hwprof.registry import ESTIMATORS
from nas.accuracy.base import CachedEstimator
from nas.datasets import load_image_folder


def with_classes(arch: Arch, n_classes: int) -> Arch:
    """The network with its final linear layer resized to ``n_classes``."""
    last = arch.blocks[-1]
    if last.op != "linear":
        raise HwprofError(f"network {arch.hash} does not end in a linear classifier", "use another estimator")
    return Arch(arch.blocks[:-1] + (dataclasses.replace(last, c_out=n_classes),), arch.space, arch.genes)


@ESTIMATORS.register("train")
class ShortTrainingEstimator(CachedEstimator):
    """Top-1 on a held-out fifth of a user image folder after a few epochs of training.

    Args:
        data: Image folder ``DIR/<class>/<image>``.
        epochs: Training epochs per network.
        resolution: Image size to train at (the space's nearest option at or below it).
        max_images: Images used at most.
        batch: Minibatch size.
        seed: Seed of the split, initialisation and batch order.
    """

    name = "train"
    kind = "short-training accuracy"

    def __init__(self, data: str | Path | None = None, epochs: int = 2, resolution: int = 64,
                 max_images: int = 2000, batch: int = 32, seed: int = 0) -> None:
        if data is None:
            raise HwprofError("the train estimator needs --data DIR (an image folder)",
                              "or use --estimator synflow / naswot")
        self.data, self.epochs, self.resolution = str(data), epochs, resolution
        self.max_images, self.batch, self.seed = max_images, batch, seed
        self._x, self._y, self._classes = load_image_folder(data, resolution, max_images, seed)
        self._fingerprint = hashlib.sha256(self._x.tobytes() + self._y.tobytes()).hexdigest()[:12]

    @property
    def label(self) -> str:
        return f"short-training accuracy ({self.epochs} epochs, {len(self._y)} images)"

    def settings(self) -> dict[str, Any]:
        return {"data": self._fingerprint, "epochs": self.epochs, "resolution": self.resolution,
                "max_images": self.max_images, "batch": self.batch, "seed": self.seed, "trainer": 2}

    def sees(self, space) -> set[str]:
        """Every variable but the input resolution: every network is trained at the same image size."""
        return {v.name for v in space.variables} - {"resolution"}

    def blind_reason(self, variable: str) -> str:
        if variable == "resolution":
            return f"every network is trained on {self.resolution} px images"
        return super().blind_reason(variable)

    def compute(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.array([self._train_one(a) for a in archs])

    def _train_one(self, arch: Arch) -> float:
        import torch

        from nas.accuracy.proxies import at_resolution
        from hwprof.build_torch import build_torch
        from nas.training import top1, train_classifier

        torch.manual_seed(self.seed)
        net = build_torch(with_classes(at_resolution(arch, self.resolution), len(self._classes)))

        n_val = max(1, len(self._y) // 5)
        train_classifier(net, self._x[n_val:], self._y[n_val:], self.epochs, self.batch, self.seed)
        return top1(net, self._x[:n_val], self._y[:n_val])
