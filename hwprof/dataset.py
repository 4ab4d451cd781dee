"""Append-only parquet dataset of measurements.

A dataset is a directory of parquet part files, one per flush. A part is
written to a hidden temp file and renamed into place, so a killed process
leaves only complete parts (readers skip hidden files). The directory reads
with plain ``pandas.read_parquet(path)``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hwprof.errors import HwprofError
from hwprof.io import current_umask

KEY_COLUMNS = ("arch_hash", "block_key", "device", "settings_hash")

SCHEMA = pa.schema([
    ("arch_hash", pa.string()), ("space", pa.string()), ("block_key", pa.string()),
    ("block_op", pa.string()), ("arch_json", pa.string()), ("block_json", pa.string()),
    ("macs", pa.int64()), ("params", pa.int64()), ("resolution", pa.int32()),
    ("device", pa.string()), ("device_kind", pa.string()), ("simulated", pa.bool_()),
    ("profile_hash", pa.string()), ("settings", pa.string()), ("settings_hash", pa.string()),
    ("protocol", pa.string()),
    ("median_ms", pa.float64()), ("mean_ms", pa.float64()), ("std_ms", pa.float64()),
    ("p10_ms", pa.float64()), ("p90_ms", pa.float64()), ("iqr_ms", pa.float64()),
    ("ci_low_ms", pa.float64()), ("ci_high_ms", pa.float64()), ("n", pa.int32()),
    ("n_rejected", pa.int32()), ("warmup", pa.int32()), ("converged", pa.bool_()),
    ("samples_ms", pa.list_(pa.float64())), ("warmup_ms", pa.list_(pa.float64())),
    ("host", pa.string()), ("hwprof_version", pa.string()), ("timestamp", pa.timestamp("us", tz="UTC")),
    ("ref_ms", pa.float64()),  # reference-network latency at the row's moment (real devices); null if untracked
    ("ops_json", pa.string()),  # per-kernel breakdown (hwprof.per_op) when measured with --per-op; else null
    # how disturbed the row's measurement was (chunked protocol, hwprof.quiet); null for the contiguous one
    ("quiet", pa.bool_()), ("chunks", pa.int32()), ("chunks_quiet", pa.int32()),
    ("slowdown", pa.float64()), ("foreign_load", pa.float64()),
    ("estimate", pa.string()),  # quiet | reference-corrected | fastest-chunks (see hwprof.interleave)
])


REQUIRED_COLUMNS = (*KEY_COLUMNS, "median_ms")  # in every part hwprof ever wrote


def _read_part(part: Path, columns: list[str] | None) -> pd.DataFrame:
    """One part as a DataFrame; columns added to the schema after it was written read as nulls.

    Raises:
        HwprofError: for a parquet file that is not an hwprof part (it lacks a key column or median_ms).
    """
    present = set(pq.read_schema(part).names)
    missing = [c for c in REQUIRED_COLUMNS if c not in present]
    if missing:
        raise HwprofError(f"{part} is not an hwprof measurement part (no column {missing[0]})",
                          "move that file out of the dataset directory and rerun")
    wanted = list(columns) if columns is not None else SCHEMA.names
    frame = pq.read_table(part, columns=[c for c in wanted if c in present]).to_pandas()
    for name in wanted:
        if name not in frame:
            kind = SCHEMA.field(name).type
            dtype = ("boolean" if pa.types.is_boolean(kind) else "Int64" if pa.types.is_integer(kind)
                     else kind.to_pandas_dtype())  # nullable, so a missing flag reads as unknown, not False
            frame[name] = pd.Series([None] * len(frame), dtype=dtype)
    return frame[wanted]


class Dataset:
    """A measurement dataset directory.

    Args:
        path: Directory holding parquet parts (created on first write).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise HwprofError(f"dataset path {self.path} is a file, not a directory",
                              "give a directory for --out (parts are written inside it)")

    def parts(self) -> list[Path]:
        """Complete part files, oldest first."""
        if not self.path.is_dir():
            return []
        return sorted(p for p in self.path.glob("*.parquet") if not p.name.startswith((".", "_")))

    def read(self, columns: list[str] | None = None) -> pd.DataFrame:
        """All rows as a DataFrame (empty with the schema's columns if none), in the order measured.

        Parts written within one second are named in random order, so rows are
        sorted by their timestamp when it is read: the same run gives the same
        row order, and fits on it the same predictor.

        Raises:
            HwprofError: naming the first part that cannot be read.
        """
        frames = []
        for part in self.parts():
            try:
                frames.append(_read_part(part, columns))
            except HwprofError:
                raise
            except Exception as exc:  # pyarrow raises several error types for damaged files
                raise HwprofError(f"corrupt dataset part {part}: {str(exc).splitlines()[0]}",
                                  "move that file out of the dataset directory and rerun") from None
        if not frames:
            return SCHEMA.empty_table().to_pandas() if columns is None else \
                SCHEMA.empty_table().select(columns).to_pandas()
        df = pd.concat(frames, ignore_index=True)
        if "timestamp" in df.columns:
            df = df.sort_values("timestamp", kind="stable", ignore_index=True)
        return df

    def keys(self) -> set[tuple[str, ...]]:
        """(arch_hash, block_key, device, settings_hash) of every stored row that holds a latency.

        A row without ``median_ms`` (written by another tool, or damaged) is not
        counted as measured, so measuring again repairs it.
        """
        df = self.read(columns=[*KEY_COLUMNS, "median_ms"])
        df = df[df["median_ms"].notna()]
        return set(map(tuple, df[list(KEY_COLUMNS)].itertuples(index=False, name=None)))

    @contextlib.contextmanager
    def writer(self) -> Iterator["Dataset"]:
        """Hold the dataset's writer lock while the block runs: one writer at a time.

        Two ``hwprof measure`` runs into one directory would each measure what
        the other is measuring and write it twice. The second is refused
        instead. The lock is an advisory ``flock`` on the dataset directory
        itself (no lock file is left behind), released by the kernel when the
        process ends, however it ends.

        Raises:
            HwprofError: if another process holds the lock.
        """
        if getattr(self, "_lock", None) is not None:  # this object holds it already (hold_writer)
            yield self
            return
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; one writer is then the user's care
            yield self
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            handle = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise HwprofError(f"cannot create dataset directory {self.path}: {exc.strerror}",
                              "choose a writable --out path") from None
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise HwprofError(f"dataset {self.path} is being written by another process",
                                  "wait for it to finish, then rerun to resume; or give another --out") from None
            self._lock = handle
            yield self
        finally:
            self._lock = None
            os.close(handle)

    def hold_writer(self) -> "Dataset":
        """Take the writer lock (see :meth:`writer`) until this process ends: a command takes it before any
        work, so a second writer is refused before it starts measuring."""
        self._holder = self.writer()
        self._holder.__enter__()
        return self

    def append(self, rows: list[dict]) -> Path | None:
        """Write rows as a new part, atomically. Returns the part's path."""
        if not rows:
            return None
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HwprofError(f"cannot create dataset directory {self.path}: {exc.strerror}",
                              "choose a writable --out path") from None
        table = pa.Table.from_pylist(rows, schema=SCHEMA)
        name = f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
        final = self.path / name
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".tmp-", suffix=".parquet")
        os.close(fd)
        try:
            os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes it private; a part is as readable as any file
            pq.write_table(table, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return final

    def clean_temp_files(self) -> int:
        """Remove temp files left by a killed writer; returns how many."""
        if not self.path.is_dir():
            return 0
        stale = list(self.path.glob(".tmp-*.parquet"))
        for p in stale:
            p.unlink(missing_ok=True)
        return len(stale)
