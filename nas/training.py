"""Small torch training utilities shared by the ``train`` estimator and the single-path searcher."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn


def batches(n: int, batch: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A shuffled epoch of index batches (a last batch of one image is dropped: BatchNorm needs two)."""
    return [c for c in torch.randperm(n, generator=generator).split(batch) if len(c) > 1]


def train_classifier(net: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, batch: int = 32,
                     seed: int = 0, max_lr: float = 0.1,
                     on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """Train ``net`` from its current weights with SGD and a one-cycle schedule.

    Args:
        net: The classifier.
        x: Images (N, C, H, W).
        y: Labels.
        epochs: Passes over the data.
        batch: Minibatch size.
        seed: Seed of the batch order (set torch's seed yourself for the initial weights).
        max_lr: Peak learning rate.
        on_step: Called with (step, loss) after each step.

    Returns:
        Mean training loss per epoch.
    """
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    per_epoch = max(1, len(batches(len(yt), batch, torch.Generator().manual_seed(seed))))
    opt = torch.optim.SGD(net.parameters(), lr=max_lr / 2, momentum=0.9, weight_decay=4e-5, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=epochs * per_epoch)
    net.train()
    losses, step = [], 0
    for _ in range(epochs):
        total, count = 0.0, 0
        for chunk in batches(len(yt), batch, gen)[:per_epoch]:
            loss = nn.functional.cross_entropy(net(xt[chunk]), yt[chunk])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            total, count = total + loss.item(), count + 1
            if on_step:
                on_step(step, loss.item())
        losses.append(total / max(count, 1))
    return losses


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      temperature: float = 1.0) -> torch.Tensor:
    """Self-knowledge distillation: KL divergence from the teacher's soft predictions to the student's.

    In a weight-sharing supernet the largest sub-network is the teacher and the
    sub-network being trained the student (GoldenNAS; Yu et al., BigNAS, ECCV
    2020, "inplace distillation"). The teacher's logits are taken as fixed
    targets (detached). Scaled by ``temperature**2`` so gradients keep their
    size across temperatures (Hinton et al., 2015).
    """
    t = float(temperature)
    teacher = nn.functional.softmax(teacher_logits.detach() / t, dim=1)
    student = nn.functional.log_softmax(student_logits / t, dim=1)
    return nn.functional.kl_div(student, teacher, reduction="batchmean") * t * t


@torch.no_grad()
def top1(net: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 256) -> float:
    """Top-1 accuracy of ``net`` (in eval mode) on images ``x`` with labels ``y``."""
    net.eval()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    pred = torch.cat([net(xt[i:i + batch]).argmax(1) for i in range(0, len(yt), batch)])
    return float((pred == yt).float().mean())


@torch.no_grad()
def recalibrate_bn(net: nn.Module, x: np.ndarray, batches_: int = 8, batch: int = 64, seed: int = 0) -> None:
    """Adaptive batch normalisation: re-estimate every BatchNorm's running statistics on a few batches.

    A sub-network taken from a supernet inherits running statistics gathered
    while other sub-networks were trained; its own activations have other
    means and variances. Forwarding a few training batches in train mode with
    cumulative averaging replaces them with the sub-network's own (Li et al.,
    "EagleEye", ECCV 2020; used by GoldenNAS and OFA).

    Args:
        net: The network (left in eval mode).
        x: Training images to draw batches from.
        batches_: Batches to forward.
        batch: Batch size.
        seed: Seed of the batch choice.
    """
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the batches below
    net.train()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    xt = torch.from_numpy(x)
    for i in range(batches_):
        idx = order[i * batch:(i + 1) * batch]
        if len(idx) < 2:
            break
        net(xt[idx])
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    net.eval()
