"""How hwprof shows results on a terminal: consoles, tables, lines, JSON, progress.

The ``hwprof`` and ``nas`` commands print through these, so every table looks
alike, a table piped into a CI log keeps its columns whole, and names or paths
with brackets are shown as they are (never read as rich markup).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, Iterable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

PIPED_WIDTH = 240  # a table written to a pipe or file (a CI log) keeps its columns whole


def make_console(stderr: bool = False) -> Console:
    """A rich console; when the output is not a terminal, as wide as a table needs (up to PIPED_WIDTH)."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty() or os.environ.get("COLUMNS"):
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=PIPED_WIDTH)


console = make_console()


def print_json(obj: Any) -> None:
    """Print ``obj`` as strict JSON (no NaN), indented."""
    from hwprof.io import dumps

    sys.stdout.write(dumps(obj, indent=2) + "\n")


def say(text: str) -> None:
    """Print a line as it is (no rich markup: paths and names may hold brackets)."""
    console.print(text, markup=False, highlight=False)


def show(title: str, columns: str, rows: Iterable, caption: str | None = None, fold: bool = False,
         escape_cells: bool = True) -> None:
    """Print a table. ``columns``: names separated by ``|``; a leading ``>`` right-aligns a column."""
    table = Table(title=title, caption=caption)
    for name in columns.split("|"):
        table.add_column(name.lstrip(">"), justify="right" if name.startswith(">") else "left",
                         overflow="fold" if fold else "ellipsis")
    for row in rows:
        table.add_row(*(escape(str(c)) if escape_cells else str(c) for c in row))
    console.print(table)


def show_metrics(title: str, rows: dict[str, dict]) -> None:
    """Print a predictor-accuracy table: one row of :func:`hwprof.predictors.metrics.prediction_metrics` per name."""
    show(title, "model|>n|>RMSE ms|>MAPE|>within ±5%|>within ±10%|>Kendall τ|>Spearman ρ",
         [[name, str(m["n"]), f"{m['rmse_ms']:.3f}", f"{m['mape']:.2%}", f"{m['within_5pct']:.1%}",
           f"{m['within_10pct']:.1%}", f"{m['kendall_tau']:.3f}", f"{m['spearman_rho']:.3f}"]
          for name, m in rows.items()])


def status_printer(quiet: bool) -> Callable[[str], None]:
    """Status lines for long work, dimmed on stderr (none when ``quiet``, e.g. with --json)."""
    if quiet:
        return lambda _message: None
    err = make_console(stderr=True)
    return lambda message: err.print(message, style="dim", markup=False, highlight=False)


class TaskProgress:
    """A progress bar on stderr for work done task by task: count, rate, time left.

    Use as a context manager; pass :meth:`start` and :meth:`advance` as the
    job's callbacks (tasks skipped because they were done before count as done,
    but not towards the rate).
    """

    def __init__(self, description: str, disable: bool = False) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                                 console=make_console(stderr=True), disable=disable)
        self.description = description
        self.skipped = 0
        self.started = time.perf_counter()

    def __enter__(self) -> "TaskProgress":
        self.progress.__enter__()
        self.bar = self.progress.add_task(escape(self.description), total=None, rate="")
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def start(self, total: int, skipped: int = 0) -> None:
        """The work begins: ``total`` tasks, ``skipped`` of them done already."""
        self.skipped, self.started = skipped, time.perf_counter()
        self.progress.update(self.bar, total=total, completed=skipped)

    def advance(self, _task: Any = None) -> None:
        """One more task done."""
        self.progress.advance(self.bar)
        done = self.progress.tasks[0].completed - self.skipped
        self.progress.update(self.bar, rate=f"{done / max(time.perf_counter() - self.started, 1e-9):6.1f}/s")
