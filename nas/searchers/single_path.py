"""Single-path differentiable search (Single-Path NAS with S3NAS's latency-aware loss).

One supernet (:mod:`nas.supernet`) is trained on images; its weights and its
thresholds are updated together by gradient descent on

    loss = cross-entropy + lambda1 * log(1 + lambda2 * relu(E[latency] / T - 1))
                         + lambda1 * log(1 + lambda2 * relu(1 - band - E[latency] / T))

where ``E[latency]`` comes from the latency predictor's cost table and ``T`` is
the latency target. This is S3NAS's form (Lee et al., IEEE TCAD 2022): the
penalty is zero below the target and measured relative to it, so one
``(lambda1, lambda2)`` serves every target, where Single-Path NAS's
``lambda * log(latency)`` needs a lambda per target. The supernet starts with
every option on (the largest network); the penalty shrinks it to the target
and the cross-entropy keeps what helps.

One deviation, measured on the bundled digits: S3NAS relies on the accuracy
term to grow the network back up to the target, but on a small dataset
accuracy barely rewards capacity, and the networks settled 10-24 % under the
target (kirin-npu, three targets). The second term, the mirror image of the
first below ``(1 - band) * T`` (band 0.05 by default), pulls them back into
the band; ``band=1`` turns it off and gives S3NAS's loss exactly.

The score of a network is its top-1 on the held-out part of the training data
with supernet weights: labelled as such, never as ImageNet accuracy.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hwprof.errors import HwprofError
from hwprof.registry import SEARCHERS
from nas.searchers.base import Candidate, Constraint, SearchResult, Searcher, default_reference, hypervolume, \
    pareto_indices


@dataclass
class TrainingStep:
    """One optimisation step of the supernet."""

    step: int
    epoch: float
    loss: float
    cross_entropy: float
    latency_penalty: float
    expected_latency_ms: float


@SEARCHERS.register("single-path")
class SinglePathSearcher(Searcher):
    """Single-path differentiable search with a latency-aware loss (S3NAS).

    Args:
        epochs: Supernet training epochs.
        warmup_epochs: Epochs that train weights only, with every option on,
            before the thresholds start to move.
        batch: Minibatch size.
        lr: Peak learning rate of the weights (SGD, cosine decay).
        arch_lr: Learning rate of the thresholds (Adam).
        lambda1: Weight of the latency term.
        lambda2: Sharpness of the latency term.
        band: Networks within ``[(1 - band) * T, T]`` are not penalised; below, a
            mirrored term pulls them up (1: S3NAS's one-sided loss).
        train_resolution: Image size the supernet trains at.
        distill: Self-knowledge distillation (GoldenNAS): each step the largest
            sub-network's soft predictions teach the chosen sub-network
            (:func:`nas.training.distillation_loss`); costs a second forward pass.
        distill_weight: Weight of the distillation term.
        data: Image folder ``DIR/<class>/<image>``; None: the bundled digits.
        max_images: Images read from ``data`` at most.
        threads: torch threads (0: torch's default).
    """

    name = "single-path"
    trains_supernet = True

    def __init__(self, epochs: int = 8, warmup_epochs: int = 1, batch: int = 64, lr: float = 0.05,
                 arch_lr: float = 0.02, lambda1: float = 1.0, lambda2: float = 10.0, band: float = 0.05,
                 train_resolution: int = 32, distill: bool = False, distill_weight: float = 1.0,
                 data: str | Path | None = None, max_images: int = 5000, threads: int = 0) -> None:
        if epochs < 1 or warmup_epochs < 0 or warmup_epochs >= epochs:
            raise HwprofError(f"single-path search needs epochs >= 1 and 0 <= warmup_epochs < epochs "
                              f"(got {epochs} and {warmup_epochs})", "raise --epochs")
        self.epochs, self.warmup_epochs, self.batch = int(epochs), int(warmup_epochs), int(batch)
        self.lr, self.arch_lr = float(lr), float(arch_lr)
        self.lambda1, self.lambda2, self.band = float(lambda1), float(lambda2), float(band)
        self.train_resolution, self.max_images = int(train_resolution), int(max_images)
        self.distill, self.distill_weight = bool(distill), float(distill_weight)
        self.data = None if data is None else str(data)
        self.threads = int(threads)
        self.data_description = ""
        self.data_ = None

    def settings(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "warmup_epochs": self.warmup_epochs, "batch": self.batch, "lr": self.lr,
                "arch_lr": self.arch_lr, "lambda1": self.lambda1, "lambda2": self.lambda2, "band": self.band,
                "train_resolution": self.train_resolution, "distill": self.distill,
                "distill_weight": self.distill_weight, "data": self.data, "max_images": self.max_images}

    def check_space(self, space) -> None:
        from nas.supernet import supernet_layout

        supernet_layout(space)

    def score_label(self) -> str:
        """What the score of a candidate is."""
        return f"supernet top-1 on held-out {self.data_description or 'training data'}"

    def penalty(self, expected_ms, target_ms: float):
        """S3NAS's latency term ``lambda1 * log(1 + lambda2 * relu(E / T - 1))`` plus its mirror below the band."""
        import torch

        ratio = expected_ms / target_ms
        over = torch.log1p(self.lambda2 * torch.relu(ratio - 1))
        under = torch.log1p(self.lambda2 * torch.relu(1 - self.band - ratio))
        return self.lambda1 * (over + under)

    def run(self, evaluator, constraint, rng):  # pragma: no cover - search() is overridden
        raise NotImplementedError

    def search(self, space, predictor, estimator=None, constraint: Constraint = Constraint(), budget: int = 0,
               seed: int = 0, on_progress: Callable[[dict], None] | None = None) -> SearchResult:
        """Train the supernet against the latency target and return the chosen network.

        ``estimator`` and ``budget`` are not used: the supernet's own held-out
        top-1 scores networks, and ``epochs`` sets the cost. ``on_progress`` is
        called after every step with a dict (step, total_steps, epoch, loss,
        expected_latency_ms, val_top1 when an epoch ends).

        Raises:
            HwprofError: without a latency target, or for a space the supernet cannot represent.
        """
        import torch

        from nas.datasets import load_training_data
        from nas.supernet import Supernet
        from nas.training import batches, distillation_loss, recalibrate_bn, top1

        if constraint.latency_ms is None:
            raise HwprofError("single-path search needs a latency target", "give --latency-ms")
        target = float(constraint.latency_ms)
        start = time.perf_counter()
        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            torch.manual_seed(seed)
            data = load_training_data(self.data, self.train_resolution, self.max_images, seed=seed)
            self.data_description, self.data_ = data.description, data
            table = predictor.cost_table(space)
            net = Supernet(space, len(data.classes), table)
            x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
            gen = torch.Generator().manual_seed(seed)
            per_epoch = len(batches(len(y), self.batch, torch.Generator().manual_seed(seed)))
            total = self.epochs * per_epoch
            opt_w = torch.optim.SGD(net.weights(), lr=self.lr, momentum=0.9, weight_decay=4e-5, nesterov=True)
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt_w, lambda s: min(1.0, (s + 1) / per_epoch) * 0.5 * (1 + math.cos(math.pi * s / total)))
            opt_t = torch.optim.Adam(net.thresholds(), lr=self.arch_lr, betas=(0.5, 0.9))
            search_steps = (self.epochs - self.warmup_epochs) * per_epoch
            sched_t = torch.optim.lr_scheduler.LambdaLR(  # settle at the end: cosine decay to 10 %
                opt_t, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, search_steps) / search_steps)))
            curve: list[TrainingStep] = []
            history: list[Candidate] = []
            visited: dict[tuple[int, ...], int] = {}
            step = 0
            for epoch in range(self.epochs):
                searching = epoch >= self.warmup_epochs
                net.train()
                for chunk in batches(len(y), self.batch, gen)[:per_epoch]:
                    logits = net(x[chunk])
                    ce = torch.nn.functional.cross_entropy(logits, y[chunk])
                    kd = (self.distill_weight * distillation_loss(logits, net.teacher_logits(x[chunk]))
                          if self.distill else torch.zeros(()))  # the largest sub-network teaches the chosen one
                    expected = net.expected_latency()
                    pen = self.penalty(expected, target) if searching else torch.zeros(())
                    loss = ce + kd + pen
                    opt_w.zero_grad()
                    opt_t.zero_grad()
                    loss.backward()
                    opt_w.step()
                    sched.step()
                    if searching:
                        opt_t.step()
                        sched_t.step()
                    step += 1
                    curve.append(TrainingStep(step, step / per_epoch, loss.item(), ce.item(), pen.item(),
                                              expected.item()))
                    if searching:
                        genes = net.genes()
                        visited[genes] = step
                    if on_progress:
                        on_progress({"step": step, "total_steps": total, "epoch": epoch + 1,
                                     "loss": float(loss), "expected_latency_ms": float(expected)})
                recalibrate_bn(net, data.x_train, seed=seed)
                val = top1(net, data.x_val, data.y_val)
                genes = net.genes()
                arch = space.to_arch(genes)
                lat = float(predictor.predict_genes(space, np.array([genes]))[0])
                history.append(Candidate(arch, lat, val, epoch + 1, len(history)))
                if on_progress:
                    on_progress({"step": step, "total_steps": total, "epoch": epoch + 1, "loss": float(loss),
                                 "expected_latency_ms": float(expected), "val_top1": val,
                                 "latency_ms": lat})
        finally:
            torch.set_num_threads(threads)
        final = history[-1]
        chosen, note = final, "the network the thresholds chose at the end of training"
        if final.latency_ms > target:
            # the penalty acts only above the target, so training may end just over it: take the
            # last network visited in the search that met it, scored with the final supernet weights
            feasible = sorted(((s, g) for g, s in visited.items()), reverse=True)
            genes_ok = [g for _, g in feasible
                        if predictor.predict_genes(space, np.array([g]))[0] <= target]
            if genes_ok:
                net.eval()
                arch = space.to_arch(genes_ok[0])
                lat = float(predictor.predict_genes(space, np.array([genes_ok[0]]))[0])
                score = _score_genes(net, genes_ok[0], data)
                chosen = Candidate(arch, lat, score, self.epochs, len(history))
                history.append(chosen)
                note = ("the last network visited during the search that met the target (the one chosen at the "
                        "end was over it)")
        lat_all = np.array([c.latency_ms for c in history])
        score_all = np.array([c.score for c in history])
        front = [history[i] for i in pareto_indices(lat_all, score_all)]
        reference = default_reference(lat_all, score_all, constraint)
        best = chosen if chosen.latency_ms <= target else None
        extra = {"training_curve": [vars(c) for c in curve], "data": data.description,
                 "chosen": note, "search_latency_ms": chosen.latency_ms,
                 "search_latency_vs_target": chosen.latency_ms / target - 1,
                 "distinct_networks_visited": len(visited), "cost_table_exact": table.exact}
        return SearchResult(self.name, space.name, self.score_label(), constraint, history,
                            sorted(front, key=lambda c: c.latency_ms), best,
                            hypervolume(lat_all, score_all, reference), reference, time.perf_counter() - start,
                            self.settings(), extra)


def _score_genes(net, genes, data) -> float:
    """Held-out top-1 of the supernet with its choices forced to ``genes`` (thresholds restored after)."""
    from nas.training import top1

    from nas.training import recalibrate_bn

    saved = [t.detach().clone() for t in net.thresholds()]
    try:
        net.force(genes)
        recalibrate_bn(net, data.x_train)
        return top1(net, data.x_val, data.y_val)
    finally:
        for t, s in zip(net.thresholds(), saved):
            t.data.copy_(s)
