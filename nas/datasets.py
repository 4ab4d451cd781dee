"""Image data for training supernets and candidates: a user image folder or the bundled digits.

``--data DIR`` reads ``DIR/<class>/<image>``. Without it, hwprof uses the
handwritten digits that ship with scikit-learn (1,797 grey 8x8 images of 10
classes), upsampled and repeated to 3 channels. That dataset is small enough to
train a supernet on a laptop CPU in minutes; accuracy on it says how well a
network learns *digits*, and outputs name it so: it is not ImageNet accuracy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwprof.errors import HwprofError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
DIGITS_NAME = "scikit-learn digits (1,797 grey 8x8 images, 10 classes)"


@dataclass(frozen=True)
class ImageData:
    """A train/validation split of normalised NCHW float images.

    Attributes:
        x_train: Training images, shape (N, 3, r, r), float32.
        y_train: Training labels, int64.
        x_val: Held-out images.
        y_val: Held-out labels.
        classes: Class names.
        description: What the data is, for outputs (e.g. the digits' provenance).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    classes: tuple[str, ...]
    description: str

    @property
    def resolution(self) -> int:
        """Image height == width."""
        return int(self.x_train.shape[-1])

    @property
    def fingerprint(self) -> str:
        """Short hash of the images and labels (for cache keys and provenance)."""
        digest = hashlib.sha256()
        for arr in (self.x_train, self.y_train, self.x_val, self.y_val):
            digest.update(np.ascontiguousarray(arr).tobytes())
        return digest.hexdigest()[:12]


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
    return _normalise(np.stack(images)), np.array(labels, dtype=np.int64), classes


def _normalise(x: np.ndarray) -> np.ndarray:
    return ((x - x.mean(axis=(0, 2, 3), keepdims=True)) / (x.std(axis=(0, 2, 3), keepdims=True) + 1e-6)).astype(
        np.float32)


def _split(x: np.ndarray, y: np.ndarray, classes, description: str, val_fraction: float,
           seed: int) -> ImageData:
    order = np.random.default_rng(seed).permutation(len(y))
    n_val = max(1, int(round(len(y) * val_fraction)))
    val, train = order[:n_val], order[n_val:]
    return ImageData(x[train], y[train], x[val], y[val], tuple(map(str, classes)), description)


def digits(resolution: int = 32, val_fraction: float = 0.2, seed: int = 0, max_images: int | None = None) -> ImageData:
    """scikit-learn's digits, upsampled bilinearly to ``resolution`` and repeated to 3 channels.

    Args:
        resolution: Image size.
        val_fraction: Share of images held out.
        seed: Seed of the split (and of the subset when ``max_images`` is set).
        max_images: Use a random subset of this many images.
    """
    import torch
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)[:, None]
    x = torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    x, y = x.repeat(1, 3, 1, 1).numpy(), bunch.target.astype(np.int64)
    if max_images is not None and max_images < len(y):
        keep = np.sort(np.random.default_rng(seed).permutation(len(y))[:max_images])
        x, y = x[keep], y[keep]
    return _split(_normalise(x), y, range(10),
                  f"{DIGITS_NAME}, upsampled to {resolution} px", val_fraction, seed)


def load_training_data(data: str | Path | None, resolution: int, max_images: int = 5000,
                       val_fraction: float = 0.2, seed: int = 0) -> ImageData:
    """The user's image folder ``data`` or, when None, the bundled digits."""
    if data is None:
        return digits(resolution, val_fraction, seed, max_images)
    x, y, classes = load_image_folder(data, resolution, max_images, seed)
    return _split(x, y, classes, f"image folder {data} ({len(y)} images, {len(classes)} classes) at "
                  f"{resolution} px", val_fraction, seed)
