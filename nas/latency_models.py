"""Which latency predictor a search uses: a given file, a few-shot transfer fit, or the cached default."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from hwprof.errors import HwprofError


def latency_model_for(dev, sp, predictor_path: Path | None, few_shot: int | None,
                      transfer_from: str | None, latency_ms: float | None, out: Path, seed: int,
                      say: Callable[[str], None]):
    """The latency predictor for searching ``sp`` on ``dev``, and where it came from.

    ``dev`` is the resolved target (:func:`devices.resolve`): its label, graph style and measurement
    defaults come from it.

    - ``predictor_path``: that file (checked to be for this device and space);
    - ``few_shot`` with ``transfer_from``: ``few_shot`` informative networks are
      measured on the device and a transfer predictor is fitted from the source
      predictors (saved as ``out/few-shot.pred``);
    - otherwise the cached default predictor, built on first use (an impossible
      ``latency_ms`` is refused first by timing the smallest network).

    Returns:
        (predictor, its source as text).
    """
    from hwprof.predictors import store
    from hwprof.predictors.cache import cached_predictor

    if (few_shot is None) != (transfer_from is None) or (few_shot is not None and predictor_path is not None):
        raise HwprofError("--few-shot N and --transfer-from go together, without --predictor",
                          "e.g. --few-shot 20 --transfer-from kirin.pred,dsp.pred")
    if few_shot is not None:
        from hwprof.predictors.transfer import few_shot_predictor

        dev.require_available()
        latency_model = few_shot_predictor(dev, getattr(sp, "base", sp), transfer_from.split(","), few_shot,
                                           out / "few-shot-data", seed, status=say)
        predictor_source = str(out / "few-shot.pred")
        store.save(latency_model, predictor_source)
        say(f"saved the few-shot predictor {predictor_source}")
    elif predictor_path is not None:
        latency_model = store.load_for(predictor_path, dev, sp.name)
        latency_model.use_style(dev.graph_style)
        predictor_source = str(predictor_path)
    else:
        from hwprof.predictors.cache import cache_path
        from nas.results import precheck_constraint

        if latency_ms is not None and not cache_path(dev, sp).exists():
            smallest_ms = precheck_constraint(latency_ms, sp, dev)
            say(f"the smallest network of {sp.name} measures {smallest_ms:.3f} ms on {dev.label}; the exact feasible "
                "range is checked once the predictor is built")
        latency_model, cached_path, built = cached_predictor(dev, sp, status=say)
        predictor_source = str(cached_path)
        say(f"{'built and cached' if built else 'using cached'} latency predictor {cached_path}")
    return latency_model, predictor_source


def few_shot_refitter(dev, sp, transfer_from: str, out: Path, seed: int, say: Callable[[str], None]):
    """For :func:`nas.recalibration.recalibrate`: a function that measures networks on ``dev`` into the
    few-shot data of ``out``, refits the transfer predictor on all of it (saved over ``out/few-shot.pred``), and
    returns it with the networks' measured ms by hash."""
    def refit(archs):
        from hwprof.predictors import store
        from hwprof.predictors.transfer import fit_few_shot

        predictor, data = fit_few_shot(dev, getattr(sp, "base", sp), transfer_from.split(","), archs,
                                       out / "few-shot-data", seed, status=say)
        store.save(predictor, out / "few-shot.pred")
        return predictor, dict(zip((a.hash for a in data.archs), map(float, data.latency_ms)))

    return refit
