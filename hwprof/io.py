"""File helpers: atomic writes and reading architecture files."""

from __future__ import annotations

import json
import math
import os
import tempfile
import zlib
from pathlib import Path
from typing import Callable, Iterable

from hwprof.arch import Arch
from hwprof.errors import HwprofError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_STAMP_KEY = b"hwprof"  # tEXt keyword of PNGs hwprof wrote (so a rerun may overwrite them)


def _check_parent(path: Path) -> None:
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise HwprofError(f"cannot write {path}: {parent} is a file, not a directory",
                          "choose another output path")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HwprofError(f"cannot create directory {parent}: {exc.strerror}",
                          "choose a writable output path") from None
    if path.is_dir():
        raise HwprofError(f"cannot write {path}: it is a directory", "give a file path")


def current_umask() -> int:
    """The process's file-creation mask (read without changing it for long)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def strict(obj):
    """``obj`` with every non-finite float (NaN, infinity) replaced by None, for strict JSON readers."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    if hasattr(obj, "item") and hasattr(obj, "dtype"):  # a numpy scalar
        return strict(obj.item())
    return obj


def dumps(obj, **options) -> str:
    """Strict JSON text of ``obj`` (non-finite floats become null); ``json.dumps`` options pass through."""
    return json.dumps(strict(obj), allow_nan=False, **options)


def write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    """Write ``obj`` as strict JSON to ``path``, atomically."""
    atomic_write_text(path, dumps(obj, indent=indent) + "\n")


def probe_writable(directory: str | os.PathLike) -> None:
    """Create ``directory`` if needed and write and remove a probe file in it.

    Raises:
        OSError: if it cannot be created or written (callers say which option is wrong).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix=".hwprof-probe-", dir=directory)
    os.close(fd)
    os.unlink(probe)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory and a rename.

    Readers never see a half-written file; an interrupted write leaves the old
    file (if any) untouched.

    Raises:
        HwprofError: if the location is not writable.
    """
    path = Path(path)
    _check_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise HwprofError(f"cannot write to {path.parent}: {exc.strerror}",
                          "choose a writable output path") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_via(path: str | os.PathLike, write: Callable[[str], None], suffix: str = "") -> None:
    """Let ``write`` create a file at a scratch path (e.g. ``fig.savefig``), then place it at ``path`` atomically.

    A PNG is stamped as written by hwprof (:func:`stamp_png`), so a rerun may
    overwrite it while a user's own image is kept (:mod:`hwprof.outputs`).
    """
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / f"staged{suffix}"
        write(str(staged))
        atomic_write_bytes(path, stamp_png(staged.read_bytes()))


def stamp_png(data: bytes, value: str = "written by hwprof") -> bytes:
    """``data`` with a ``tEXt`` chunk (keyword ``hwprof``) inserted after the header; non-PNG data unchanged."""
    if not data.startswith(PNG_SIGNATURE) or len(data) < 33:
        return data
    header_end = 8 + 4 + 4 + 13 + 4  # signature, then IHDR: length, type, 13 bytes, CRC
    body = b"tEXt" + PNG_STAMP_KEY + b"\x00" + value.encode("latin-1")
    chunk = (len(body) - 4).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
    return data[:header_end] + chunk + data[header_end:]


def png_text_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (keyword, text) pairs of a PNG's ``tEXt`` chunks; empty for anything else."""
    if not data.startswith(PNG_SIGNATURE):
        return []
    chunks, pos = [], 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if kind == b"tEXt":
            key, _, value = data[pos + 8:pos + 8 + length].partition(b"\x00")
            chunks.append((key, value))
        if kind == b"IEND":
            break
        pos += 12 + length
    return chunks


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Text variant of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_archs(path: str | os.PathLike, archs: Iterable[Arch]) -> None:
    """Write architectures as JSON Lines (one arch per line), atomically."""
    atomic_write_text(path, "".join(a.to_json() + "\n" for a in archs))


def read_archs(path: str | os.PathLike) -> list[Arch]:
    """Read architectures from a ``.json`` file (one arch, or a list) or ``.jsonl`` file.

    Raises:
        HwprofError: naming the file (and line) if it is missing or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise HwprofError(f"architecture file not found: {path}",
                          "check the path, or create one with `nas sample --out FILE.jsonl`")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HwprofError(f"cannot read {path}: {exc}") from None
    if path.suffix == ".jsonl":
        archs = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                archs.append(Arch.from_json(line))
            except HwprofError as exc:
                raise HwprofError(f"{path}:{lineno}: {exc.message}", exc.hint) from None
        if not archs:
            raise HwprofError(f"{path} holds no architectures")
        return archs
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HwprofError(f"{path}: malformed JSON: {exc}",
                          "an arch file holds one object from `nas sample` or `nas export`") from None
    items = data if isinstance(data, list) else [data]
    archs = []
    for i, item in enumerate(items):
        try:
            archs.append(Arch.from_dict(item))
        except HwprofError as exc:
            where = f"{path}" if len(items) == 1 else f"{path}[{i}]"
            raise HwprofError(f"{where}: {exc.message}", exc.hint) from None
    return archs


def cache_dir() -> Path:
    """hwprof's cache directory: ``$HWPROF_CACHE``, else ``$XDG_CACHE_HOME/hwprof``, else ``~/.cache/hwprof``."""
    if os.environ.get("HWPROF_CACHE"):
        return Path(os.environ["HWPROF_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hwprof"
