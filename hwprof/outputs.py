"""Guard output paths: never overwrite an input, or an existing file hwprof did not write of the same kind.

Every command that writes a file checks its output path here *before* doing
the work, so a refusal costs nothing and a bad path never leaves a
half-written file behind. A file counts as "ours" when a recogniser for its
kind accepts it (an architecture file that parses, an ONNX graph whose
producer is hwprof, a PNG stamped by :func:`hwprof.io.atomic_write_via`, ...);
anything else is kept unless the user passes ``--force``. An input file is
never overwritten, ``--force`` or not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable

from hwprof.errors import HwprofError
from hwprof.io import PNG_STAMP_KEY, png_text_chunks, probe_writable


def guard_output(path: str | os.PathLike, option: str, kind: str, is_ours: Callable[[Path], bool],
                 force: bool = False, inputs: Iterable[str | os.PathLike | None] = ()) -> None:
    """Refuse an output path before any work is done.

    Args:
        path: Where the command will write.
        option: The option that named it, for the message (e.g. ``"--out"``).
        kind: What the command writes, for the message (e.g. ``"architecture file"``).
        is_ours: Whether an existing file at ``path`` is a hwprof output of this kind (may be overwritten).
        force: Overwrite an existing file that ``is_ours`` does not accept.
        inputs: The command's input files; ``path`` may never be one of them.

    Raises:
        HwprofError: naming the path and the way out.
    """
    path = Path(path)
    for source in inputs:
        if source is not None and path.exists() and Path(source).exists() and _same_file(path, Path(source)):
            raise HwprofError(f"{option} {path} is also an input of this command; it would be overwritten",
                              f"write the {kind} to another file")
    if path.is_dir():
        raise HwprofError(f"{option} {path} is a directory", f"give a file name for the {kind}")
    if path.exists() and not force and not _accepts(is_ours, path):
        raise HwprofError(f"{option} {path} exists and is not an hwprof {kind}",
                          "give a new file name, or add --force to overwrite it")
    existing = path.absolute().parent
    while not existing.exists():  # probe the nearest existing folder: a refusal leaves no folder behind
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is a file")
        probe_writable(existing)
    except OSError as exc:
        raise HwprofError(f"{option} {path} cannot be written ({exc.strerror or exc})",
                          f"choose a writable place for the {kind}") from None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _accepts(is_ours: Callable[[Path], bool], path: Path) -> bool:
    try:
        return bool(is_ours(path))
    except Exception:  # a recogniser that chokes on a foreign file has not recognised it
        return False


# --- recognisers -------------------------------------------------------------------------


# A recogniser may raise on a file it cannot read: guard_output takes that as "not ours".


def is_arch_file(path: Path) -> bool:
    """An architecture file (``.json`` or ``.jsonl``) that hwprof can read."""
    from hwprof.io import read_archs

    return bool(read_archs(path))


def is_json_records(path: Path, keys: set[str]) -> bool:
    """A JSON object, a list of objects or JSON Lines of objects, each with all of ``keys``."""
    text = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
        records = doc if isinstance(doc, list) else [doc]
    except ValueError:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    return bool(records) and all(isinstance(r, dict) and keys <= set(r) for r in records)


def is_hwprof_onnx(path: Path) -> bool:
    """An ONNX model whose producer is hwprof (``nas export``)."""
    import onnx

    return onnx.load(str(path), load_external_data=False).producer_name == "hwprof"


def is_hwprof_png(path: Path) -> bool:
    """A PNG image carrying hwprof's stamp (see :func:`hwprof.io.stamp_png`)."""
    return any(key == PNG_STAMP_KEY for key, _ in png_text_chunks(path.read_bytes()))
