"""Saving and loading predictors without pickle.

A predictor file is a zip archive:

- ``manifest.json``: format and version, predictor name and parameters, its
  JSON state, provenance (device, profile hash, space, training-set hash) and
  the SHA-256 of every other member and of the manifest itself;
- ``arrays.npz``: numpy arrays, loaded with ``allow_pickle=False``;
- ``models.skops``: scikit-learn estimators (trees), loaded by skops with only
  scikit-learn and numpy types trusted.

A damaged or edited file fails its checksums and is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np

import hwprof
from hwprof.errors import HwprofError
from hwprof.io import atomic_write_bytes
from hwprof.predictors.base import LatencyPredictor

FORMAT = "hwprof.predictor"
VERSION = 1
_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "builtins.", "scipy.")
# HistGradientBoosting keeps functools.partial(sklearn.utils.validation.check_array);
# skops vets the wrapped function separately, so a partial alone cannot smuggle code.
_TRUSTED_TYPES = {"functools.partial"}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest_digest(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return _sha(json.dumps(body, sort_keys=True).encode())


def dumps(predictor: LatencyPredictor) -> bytes:
    """Serialise a fitted predictor to the bytes of a predictor file."""
    predictor._check_fitted()
    meta, arrays, models = predictor.get_state()
    members: dict[str, bytes] = {}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    members["arrays.npz"] = buf.getvalue()
    if models:
        import skops.io as sio

        members["models.skops"] = sio.dumps(models)
    manifest = {
        "format": FORMAT, "version": VERSION, "predictor": predictor.name, "params": predictor.get_params(),
        "state": meta, "provenance": predictor.provenance_, "hwprof_version": hwprof.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "members": {name: _sha(data) for name, data in members.items()},
    }
    manifest["manifest_sha256"] = _manifest_digest(manifest)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def save(predictor: LatencyPredictor, path: str | Path) -> None:
    """Write a predictor file atomically (temp file, then rename)."""
    atomic_write_bytes(path, dumps(predictor))


def load(path: str | Path) -> LatencyPredictor:
    """Read a predictor file written by :func:`save`.

    Raises:
        HwprofError: if the file is missing, not a predictor, of a newer format,
            corrupt, or edited after saving.
    """
    path = Path(path)
    if not path.is_file():
        raise HwprofError(f"predictor file {path} does not exist", "fit one with `hwprof fit-predictor`")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise HwprofError(f"{path} cannot be read ({exc.strerror})") from None
    return loads(data, str(path))


def check_output(path: str | Path, force: bool = False, inputs: Iterable[str | Path | None] = ()) -> None:
    """Fail before fitting if ``path`` cannot take a predictor: a directory, an unwritable place, an
    input of the command, or an existing file that is not a predictor (kept unless ``force``).

    Raises:
        HwprofError: naming the path and what to do.
    """
    from hwprof.outputs import guard_output

    guard_output(path, "--out", "predictor", lambda p: load(p) is not None, force, inputs)  # loads: a predictor


def load_for(path: str | Path, device, space_name: str) -> LatencyPredictor:
    """:func:`load`, checked to have been fitted for ``device`` (name and settings) and ``space_name``.

    The dtype is compared (a target token can name it: ``cpu:int8``), so an
    int8 predictor is never used for a float32 target; the graph style is left
    to :meth:`LatencyPredictor.use_style`.

    Raises:
        HwprofError: if the file cannot be loaded or was fitted for another device, settings or space.
    """
    predictor = load(path)
    if predictor.provenance_.get("space") not in (None, space_name):
        raise HwprofError(f"{path} was fitted for space '{predictor.provenance_['space']}', not '{space_name}'",
                          f"fit one with `hwprof fit-predictor` on space '{space_name}'")
    check_device(predictor, device, path)
    return predictor


def check_device(predictor: LatencyPredictor, device, path: str | Path) -> None:
    """Refuse a predictor fitted for another device, or for the same device with another dtype.

    Raises:
        HwprofError: naming the device (or dtype) it was fitted for.
    """
    prov = predictor.provenance_
    if prov.get("device") not in (None, device.name):
        raise HwprofError(f"{path} was fitted for device '{prov['device']}', not '{device.name}'",
                          f"fit one with `hwprof fit-predictor` on device '{device.name}'")
    fitted = json.loads(prov["settings"]) if prov.get("settings") else {}
    ours = device.settings().get("dtype")
    if fitted.get("dtype") not in (None, ours):
        raise HwprofError(f"{path} was fitted for {device.name} with dtype={fitted['dtype']}, not dtype={ours}",
                          f"fit one on data measured with {device.name}:{ours}")


def loads(data: bytes, origin: str = "the predictor") -> LatencyPredictor:
    """A predictor from the bytes of a predictor file (``origin`` names it in errors); see :func:`load`."""
    bad = f"{origin} is not a valid hwprof predictor file"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            members = {name: zf.read(name) for name in manifest.get("members", {})}
    except Exception as exc:  # a damaged zip raises many kinds (BadZipFile, zlib.error, NotImplementedError, ...)
        raise HwprofError(f"{bad} ({type(exc).__name__}: {exc})", "refit it with `hwprof fit-predictor`") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise HwprofError(bad, "refit it with `hwprof fit-predictor`")
    if manifest.get("version", 0) > VERSION:
        raise HwprofError(f"{origin} uses predictor format {manifest.get('version')}, newer than this hwprof reads "
                          f"({VERSION})", "upgrade hwprof")
    if manifest.get("manifest_sha256") != _manifest_digest(manifest) or any(
            _sha(data) != manifest["members"][name] for name, data in members.items()):
        raise HwprofError(f"{origin} is corrupt or was modified after saving (checksum mismatch)",
                          "refit it with `hwprof fit-predictor`")
    try:
        with np.load(io.BytesIO(members["arrays.npz"]), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        models = _load_models(members["models.skops"]) if "models.skops" in members else {}
        from hwprof.predictors import create_predictor

        predictor = create_predictor(manifest["predictor"], **manifest.get("params", {}))
        predictor.set_state(manifest.get("state", {}), arrays, models)
    except HwprofError:
        raise
    except Exception as exc:  # any failure to rebuild the state means a bad file
        raise HwprofError(f"{bad} ({type(exc).__name__}: {exc})", "refit it with `hwprof fit-predictor`") from None
    predictor.provenance_ = manifest.get("provenance", {})
    predictor.use_style(predictor.fitted_styles()[0])
    return predictor


def _load_models(data: bytes) -> dict[str, Any]:
    import skops.io as sio

    untrusted = sio.get_untrusted_types(data=data)
    refused = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES) and t not in _TRUSTED_TYPES]
    if refused:
        raise HwprofError(f"predictor file holds objects of untrusted types: {', '.join(refused[:3])}",
                          "only load predictor files that hwprof wrote")
    return sio.loads(data, trusted=untrusted)
