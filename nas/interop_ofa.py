"""Once-for-All subnet configs <-> hwprof architectures.

OFA describes an OFA-MobileNetV3 subnet as ``{"ks": [20 kernel sizes],
"e": [20 expand ratios], "d": [5 depths], "r": [resolution]}`` (optionally
``"w"``, the width multiplier, 1.0 or 1.2). Blocks beyond a stage's depth are
inactive; OFA ignores their ``ks``/``e``. Importing gives an arch of our
``ofa`` space (width 1.0) or, for other widths, an arch with the same blocks
and no space. Exporting reads the blocks back, so any OFA-MobileNetV3 arch
converts; inactive entries are written as the stage's last active values
(the canonical form: a canonical config round-trips exactly).
"""

from __future__ import annotations

from typing import Any

from hwprof.arch import Arch
from hwprof.errors import HwprofError
from nas.spaces.ofa import EXPANDS, KERNELS, MAX_DEPTH, MIN_DEPTH, RESOLUTIONS, OFASpace

N_STAGES = 5


def _check(config: Any) -> tuple[list[int], list[int], list[int], int, float]:
    if not isinstance(config, dict):
        raise HwprofError("an OFA config must be a JSON object with ks, e, d (and r)")
    missing = [k for k in ("ks", "e", "d") if k not in config]
    if missing:
        raise HwprofError(f"OFA config lacks {', '.join(missing)}", 'expected {"ks": [...], "e": [...], "d": [...]}')
    ks, e, d = config["ks"], config["e"], config["d"]
    r = config.get("r", [224])
    r = r[0] if isinstance(r, list) else r
    w = float(config.get("w", 1.0))
    if len(ks) != N_STAGES * MAX_DEPTH or len(e) != N_STAGES * MAX_DEPTH or len(d) != N_STAGES:
        raise HwprofError(f"OFA config needs 20 ks, 20 e and 5 d values, got {len(ks)}, {len(e)}, {len(d)}")
    for name, values, allowed in (("ks", ks, KERNELS), ("e", e, EXPANDS), ("d", d, range(MIN_DEPTH, MAX_DEPTH + 1))):
        bad = [v for v in values if v not in allowed]
        if bad:
            raise HwprofError(f"OFA config {name} has {bad[0]}, not one of {list(allowed)}")
    if r not in RESOLUTIONS:
        raise HwprofError(f"OFA resolution {r} is not one of 128..224 in steps of 4")
    return list(ks), list(e), list(d), int(r), w


def from_ofa_config(config: dict[str, Any], width_mult: float | None = None) -> Arch:
    """The architecture of an OFA-MobileNetV3 subnet config.

    Args:
        config: ``{"ks": [...], "e": [...], "d": [...], "r": [...]}`` (``"w"`` optional).
        width_mult: Overrides the config's ``w``.

    Raises:
        HwprofError: for a malformed config.
    """
    ks, e, d, r, w = _check(config)
    w = width_mult if width_mult is not None else w
    space = OFASpace(width_mult=w)
    options = [(k, x) for k in KERNELS for x in EXPANDS]
    genes = [RESOLUTIONS.index(r)]
    for s in range(N_STAGES):
        for j in range(MAX_DEPTH):
            if j < d[s]:
                genes.append(options.index((ks[MAX_DEPTH * s + j], e[MAX_DEPTH * s + j])))
            else:
                genes.append(len(options))  # skip
    arch = space.to_arch(genes)
    return arch if w == 1.0 else Arch(arch.blocks, "", ())


def to_ofa_config(arch: Arch) -> dict[str, Any]:
    """The OFA subnet config of an OFA-MobileNetV3 architecture (read from its blocks).

    Raises:
        HwprofError: if the blocks are not an OFA-MobileNetV3 subnet.
    """
    blocks = arch.blocks
    if len(blocks) < 6 or blocks[0].op != "conv" or blocks[1].op != "mbconv":
        raise HwprofError(f"network {arch.hash} is not an OFA-MobileNetV3 subnet", "export it to ONNX instead")
    stem = blocks[0].c_out
    w = next((m for m in (1.0, 1.2) if OFASpace(width_mult=m).widths[0] == stem), None)
    if w is None:
        raise HwprofError(f"network {arch.hash} has stem width {stem}, not OFA w1.0 or w1.2")
    widths = OFASpace(width_mult=w).widths
    body = [b for b in blocks[2:] if b.op == "mbconv"]
    ks, e, d = [], [], []
    for s in range(N_STAGES):
        stage = [b for b in body if b.c_out == widths[s + 2]]
        if not MIN_DEPTH <= len(stage) <= MAX_DEPTH:
            raise HwprofError(f"stage {s + 1} of network {arch.hash} has {len(stage)} blocks, not 2-4")
        d.append(len(stage))
        for j in range(MAX_DEPTH):
            b = stage[min(j, len(stage) - 1)]
            ks.append(b.kernel[0])
            e.append(min(EXPANDS, key=lambda x: abs(b.mid - b.c_in * x)))
    config = {"ks": ks, "e": e, "d": d, "r": [arch.resolution], "w": w}
    if from_ofa_config(config).blocks != arch.blocks:
        raise HwprofError(f"network {arch.hash} is not an OFA-MobileNetV3 subnet (blocks do not match OFA's)")
    return config


def canonical_ofa_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config with inactive entries set to their stage's last active values."""
    return to_ofa_config(from_ofa_config(config))
