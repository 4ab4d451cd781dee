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

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def load_image_folder(root: str | Path, resolution: int, max_images: int, seed: int = 0):
    """Images of ``root/<class>/*`` as a float array (N, 3, r, r), labels, and class names."""
    from PIL import Image

    root = Path(root)
    if not root.is_dir():
        raise HwprofError(f"image folder {root} does not exist", "give --data DIR with one sub-folder per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files = [(f, c) for c, name in enumerate(classes) for f in sorted((root / name).iterdir())
             if f.suffix.lower() in IMAGE_SUFFIXES]
    if len(classes) < 2 or len(files) < 10:
        raise HwprofError(f"{root} needs at least 2 class folders and 10 images (found {len(classes)} and "
                          f"{len(files)})", "lay it out as DIR/<class>/<image>.png")
    order = np.random.default_rng(seed).permutation(len(files))[:max_images]
    images, labels = [], []
    for i in order:
        path, label = files[i]
        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB").resize((resolution, resolution)), dtype=np.float32) / 255.0
        except OSError as exc:
            raise HwprofError(f"cannot read image {path}: {exc}", "remove or fix the file") from None
        images.append(arr.transpose(2, 0, 1))
        labels.append(label)
    x = np.stack(images)
    x = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / (x.std(axis=(0, 2, 3), keepdims=True) + 1e-6)
    return x, np.array(labels), classes


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
                "max_images": self.max_images, "batch": self.batch, "seed": self.seed}

    def compute(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.array([self._train_one(a) for a in archs])

    def _train_one(self, arch: Arch) -> float:
        import torch

        from nas.accuracy.proxies import at_resolution
        from nas.torch_build import build_torch

        torch.manual_seed(self.seed)
        net = build_torch(with_classes(at_resolution(arch, self.resolution), len(self._classes)))
        x, y = torch.from_numpy(self._x), torch.from_numpy(self._y)
        n_val = max(1, len(y) // 5)
        train_idx, val_idx = torch.arange(n_val, len(y)), torch.arange(n_val)
        steps = self.epochs * max(1, len(train_idx) // self.batch)
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=4e-5, nesterov=True)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps)
        gen = torch.Generator().manual_seed(self.seed)
        net.train()
        step = 0
        while step < steps:
            for chunk in train_idx[torch.randperm(len(train_idx), generator=gen)].split(self.batch):
                if step >= steps or len(chunk) < 2:
                    break
                loss = torch.nn.functional.cross_entropy(net(x[chunk]), y[chunk])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                step += 1
        net.eval()
        with torch.no_grad():
            pred = torch.cat([net(x[c]).argmax(1) for c in val_idx.split(256)])
        return float((pred == y[val_idx]).float().mean())
