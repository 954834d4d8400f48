"""A Rich progress bar for long work (ingestion, scoring), shown only to a person watching."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from loopline.services import Progress as ProgressCallback


@contextmanager
def progress_bar(label: str, *, unit_bytes: bool = True, force: bool = False) -> Iterator[ProgressCallback]:
    """Yields a callback (done, total) that drives a bar on stderr; silent when stderr is
    not a terminal, unless `force`."""
    if not (force or sys.stderr.isatty()):
        yield lambda done, total: None
        return
    columns = [TextColumn("{task.description}"), BarColumn()]
    columns.append(DownloadColumn() if unit_bytes else TextColumn("{task.completed:,.0f} rows"))
    with Progress(*columns, TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def advance(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield advance
