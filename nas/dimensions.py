"""What a search may vary: estimators declare what they see, the rest is held fixed and said so.

An accuracy estimator's score can only rank networks along the dimensions
it responds to. A zero-cost proxy computed at one fixed input resolution
gives two networks that differ only in resolution the same score, so a
search scored by it would spend its latency budget on whatever else it can
see and leave resolution wherever latency is lowest: the bottom of the
range. Each estimator therefore declares ``sees(space)``, the variables it
can judge; :func:`hold_unseen` holds every other variable at a value the user
gives (``--fix NAME=VALUE``) or at the space's documented deployment value
(``SearchSpace.deployment_values``, e.g. 224 px for the ImageNet spaces), and
returns what it held and why, for the summary.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from hwprof.errors import HwprofError


@dataclass(frozen=True)
class Held:
    """A variable a search holds fixed.

    Attributes:
        variable: Variable name.
        value: The option label it is held at.
        reason: Why (given by the user, or unseen by the estimator).
    """

    variable: str
    value: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def parse_fix(texts: Sequence[str], space) -> dict[str, int]:
    """``NAME=VALUE`` strings to {variable index: option index}.

    Raises:
        HwprofError: naming the variables or the allowed values when one is unknown.
    """
    out: dict[str, int] = {}
    names = [v.name for v in space.variables]
    for text in texts:
        name, sep, value = text.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise HwprofError(f"--fix '{text}' is not NAME=VALUE", "e.g. --fix resolution=224")
        if name not in names:
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            raise HwprofError(f"--fix: space '{space.name}' has no variable '{name}'", f"its variables are: {shown}")
        variable = space.variables[names.index(name)]
        labels = [str(lab) for lab in variable.labels]
        options = [str(o) for o in variable.options]
        allowed = space.option_mask()[names.index(name)]
        match = next((j for j in allowed if value in (labels[j], options[j])), None)
        if match is None:
            raise HwprofError(f"--fix {name}={value} is not an option of '{name}'",
                              f"allowed values: {', '.join(labels[j] for j in allowed)}")
        out[name] = match
    return {names.index(k): v for k, v in out.items()}


def _deployment_option(space, index: int) -> int:
    """The option a variable is held at by default: the space's deployment value, else its largest option."""
    variable = space.variables[index]
    allowed = space.option_mask()[index]
    wanted = getattr(space, "deployment_values", {}).get(variable.name)
    if wanted is not None and wanted in variable.options and variable.options.index(wanted) in allowed:
        return variable.options.index(wanted)
    try:
        return max(allowed, key=lambda j: float(variable.options[j]))
    except (TypeError, ValueError):
        return allowed[0]


def hold_unseen(space, estimator, fixed: dict[int, int] | None = None) -> tuple[Any, list[Held]]:
    """``space`` restricted so that no variable the estimator cannot judge is searched.

    Args:
        space: A search space (or reduced space).
        estimator: An accuracy estimator with ``sees(space)``, or None (a searcher
            that scores networks itself, e.g. single-path).
        fixed: {variable index: option index} the user fixed (``--fix``).

    Returns:
        The space to search (the same object when nothing is held), and what is held and why.
    """
    from nas.spaces.reduced import ReducedSpace

    fixed = dict(fixed or {})
    held: list[Held] = []
    for i, j in fixed.items():
        v = space.variables[i]
        held.append(Held(v.name, str(v.labels[j]), "fixed with --fix"))
    if estimator is not None:
        seen = estimator.sees(space)
        for i, v in enumerate(space.variables):
            allowed = space.option_mask()[i]
            if i in fixed or v.name in seen or len(allowed) < 2:
                continue
            j = _deployment_option(space, i)
            fixed[i] = j
            documented = getattr(space, "deployment_values", {}).get(v.name) == v.options[j]
            where = "the space's deployment value" if documented else "its largest option"
            held.append(Held(v.name, str(v.labels[j]), f"the {estimator.label} cannot judge it "
                             f"({estimator.blind_reason(v.name)}); held at {where} (choose another with --fix)"))
    if not fixed:
        return space, held
    base = getattr(space, "base", space)
    mask = space.option_mask()
    for i, j in fixed.items():
        mask[i] = [j]
    source = getattr(space, "source", "")
    return ReducedSpace(base, mask, source or "held fixed: " + ", ".join(f"{h.variable}={h.value}" for h in held)), held


def front_distribution(space, archs: Sequence) -> dict[str, dict[str, int]]:
    """How often each option label occurs on ``archs`` (e.g. a Pareto front), per variable."""
    out: dict[str, dict[str, int]] = {}
    for i, v in enumerate(space.variables):
        counts = Counter(str(v.labels[space.genes_of(a)[i]]) for a in archs)
        out[v.name] = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
    return out


def layer_token_distribution(space, archs: Sequence) -> dict[str, int]:
    """Layer choices pooled over every layer, by label token (``k3``, ``e6``, ``skip``, ...)."""
    counts: Counter = Counter()
    for i, v in enumerate(space.variables):
        if v.kind != "layer":
            continue
        for a in archs:
            counts.update(str(v.labels[space.genes_of(a)[i]]).split("_"))
    return dict(sorted(counts.items()))
