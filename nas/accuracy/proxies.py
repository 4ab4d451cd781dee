"""Zero-cost proxies computed on the real torch network.

- ``synflow``: Tanaka et al., "Pruning neural networks without any data by
  iteratively conserving synaptic flow", NeurIPS 2020, used as a NAS proxy by
  Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021: with
  every weight replaced by its absolute value and an all-ones input, the sum
  over parameters of |theta * dR/dtheta| where R is the summed output.
  Reported as log10.
- ``naswot``: Mellor et al., "Neural Architecture Search without Training",
  ICML 2021: the log-determinant of the kernel of binary activation codes
  (which side of zero each activation falls) over a minibatch.

Both are computed at a reduced input resolution (the space's smallest
resolution option, or ``resolution``) for speed, on freshly initialised
weights seeded by the arch hash, and cached on disk by arch hash. They are
proxies, and every output calls them so.
"""

from __future__ import annotations

import atexit
import inspect
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Sequence

import numpy as np

from hwprof.arch import Arch
from hwprof.registry import ESTIMATORS
from nas.accuracy.base import CachedEstimator

PARALLEL_MIN = 24  # networks below which a worker pool is not worth its start-up


def at_resolution(arch: Arch, resolution: int | None) -> Arch:
    """The same network at a smaller input resolution, rebuilt through its space when possible."""
    if resolution is None or not arch.space or not arch.genes:
        return arch
    from nas.spaces import get_space

    space = get_space(arch.space)
    names = [v.name for v in space.variables]
    if "resolution" in names:
        i = names.index("resolution")
        options = space.variables[i].options
        below = [j for j, o in enumerate(options) if o <= resolution]
        j = max(below, key=lambda j: options[j]) if below else int(np.argmin(options))
        genes = list(arch.genes)
        genes[i] = j
        return space.to_arch(genes)
    if "resolution" in inspect.signature(type(space)).parameters:
        return get_space(arch.space, resolution=resolution).to_arch(arch.genes)
    return arch


def _seed_of(arch: Arch) -> int:
    return int(arch.hash[:8], 16)


def synflow_score(arch: Arch) -> float:
    """log10 of the SynFlow saliency of a freshly initialised network."""
    import torch

    from hwprof.build_torch import build_torch

    torch.manual_seed(_seed_of(arch))
    # float64 only if float32 overflows; the float64 network takes the next weights of the same seeded
    # stream, so a score is still a function of the architecture alone
    for dtype in (torch.float32, torch.float64):
        net = build_torch(arch).to(dtype).eval()
        with torch.no_grad():
            for p in net.parameters():
                p.abs_()
        x = torch.ones((1, *arch.input_shape[1:]), dtype=dtype)
        flow = net(x).sum()
        if dtype == torch.float32 and not torch.isfinite(flow):
            continue  # R itself overflowed: the saliency, which sums to more than R, would too
        flow.backward()
        total = sum(float((p.detach() * p.grad).abs().sum()) for p in net.parameters() if p.grad is not None)
        if np.isfinite(total):
            break
    return float(np.log10(max(total, 1e-300)))


def naswot_score(arch: Arch, batch: int = 16) -> float:
    """NASWOT log-determinant of the activation-pattern kernel on a seeded random minibatch."""
    import torch
    from torch import nn

    from hwprof.build_torch import build_torch

    torch.manual_seed(_seed_of(arch))
    net = build_torch(arch).eval()
    kernel = torch.zeros((batch, batch), dtype=torch.float64)

    def accumulate(_module, _inputs, out) -> None:  # K += c c^T + (1-c)(1-c)^T, layer by layer
        c = (out.flatten(1) > 0).float()
        kernel.add_((c @ c.T + (1 - c) @ (1 - c).T).double())

    acts = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU)
    hooks = [m.register_forward_hook(accumulate) for m in net.modules() if isinstance(m, acts)]
    x = torch.randn((batch, *arch.input_shape[1:]), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    return float(torch.linalg.slogdet(kernel)[1])


_SCORERS = {"synflow": synflow_score, "naswot": naswot_score}


def _worker(name: str, resolution: int | None, arch_json: str) -> float:
    import torch

    torch.set_num_threads(1)
    return _SCORERS[name](at_resolution(Arch.from_json(arch_json), resolution))


class ZeroCostProxy(CachedEstimator):
    """A zero-cost proxy on the torch network at a reduced resolution.

    Args:
        resolution: Input resolution to score at (the nearest space option at or
            below it); None scores at the network's own resolution.
        workers: Processes for scoring many networks (default: CPU cores, at most 4).
        use_cache: Read and write the on-disk score cache.
    """

    kind = "proxy"

    def __init__(self, resolution: int | None = 128, workers: int | None = None, use_cache: bool = True) -> None:
        self.resolution = resolution
        self.workers = workers if workers is not None else min(4, os.cpu_count() or 1)
        self.use_cache = use_cache

    def settings(self) -> dict[str, Any]:
        return {"resolution": self.resolution}

    def sees(self, space) -> set[str]:
        """Every variable but those setting the input grid (resolution, patch size), when scored at one
        fixed resolution: at 128 px synflow ranks a ViT with 32-px patches (16 tokens) above the same
        ViT with 16-px patches (64 tokens)."""
        names = {v.name for v in space.variables}
        grid = set(getattr(getattr(space, "base", space), "input_grid_variables", ("resolution",)))
        return names if self.resolution is None else names - grid

    def blind_reason(self, variable: str) -> str:
        if variable == "resolution" and self.resolution is not None:
            return f"it is computed at {self.resolution} px for every network"
        if self.resolution is not None:
            return (f"at {self.resolution} px for every network it does not reward the finer input sampling "
                    f"that '{variable}' buys")
        return super().blind_reason(variable)

    _pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        """A worker pool kept for the life of the estimator (workers import torch once)."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"))
            atexit.register(self.close)
        return self._pool

    def __getstate__(self) -> dict[str, Any]:  # sent to other processes without its worker pool
        state = dict(self.__dict__)
        state.pop("_pool", None)
        return state

    def close(self) -> None:
        """Shut the worker pool down (also done at exit)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def compute(self, archs: Sequence[Arch]) -> np.ndarray:
        if self.workers > 1 and len(archs) >= PARALLEL_MIN:
            pool = self._executor()
            futures = [pool.submit(_worker, self.name, self.resolution, a.to_json()) for a in archs]
            return np.array([f.result() for f in futures])
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return np.array([_SCORERS[self.name](at_resolution(a, self.resolution)) for a in archs])
        finally:
            torch.set_num_threads(threads)


@ESTIMATORS.register("synflow")
class SynflowProxy(ZeroCostProxy):
    """SynFlow zero-cost proxy (log10), on the torch network at reduced resolution."""

    name = "synflow"

    @property
    def label(self) -> str:
        return "synflow proxy (log10)"


@ESTIMATORS.register("naswot")
class NaswotProxy(ZeroCostProxy):
    """NASWOT zero-cost proxy (activation-pattern log-determinant) at reduced resolution."""

    name = "naswot"

    @property
    def label(self) -> str:
        return "naswot proxy (log-det)"
