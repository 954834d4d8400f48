"""`loopline erase --entity COLUMN=VALUE`"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from loopline.cli.context import cli_context, print_json
from loopline.core.privacy import Erasure, parse_entity


def erase(
    ctx: typer.Context,
    entity: str = typer.Option(..., "--entity", help="COLUMN=VALUE, e.g. email=ada@example.com."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be erased; change nothing."),
    reason: str = typer.Option("", help="Why, for the audit trail (e.g. the request's ticket)."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Erase one entity's personal data from prediction logs and dataset versions.

    Rows whose COLUMN equals VALUE leave the prediction logs (with the feedback and errors of
    their requests); each dataset version holding some is replaced by a new version without
    them, linked in the lineage. The audit trail records the counts, never the value.
    Administrators only."""
    column, value = parse_entity(entity)
    report = cli_context(ctx).services.privacy.erase(column, value, dry_run=dry_run, reason=reason)
    if json_:
        print_json(report)
        return
    _show(report)


def _show(report: Erasure) -> None:
    console = Console(soft_wrap=True, highlight=False)
    verb = "would remove" if report.dry_run else "removed"
    column = escape(report.column)
    if report.logs:
        table = Table("deployment", "predictions", "feedback", "errors", "files rewritten", "files removed",
                      title=f"prediction logs: rows where {column} matched")  # fmt: skip
        for log in report.logs:
            table.add_row(escape(log.deployment), *map(str, (log.predictions, log.feedback, log.errors,
                          log.files_rewritten, log.files_removed)))  # fmt: skip
        console.print(table)
    if report.datasets:
        table = Table(
            "dataset version", "rows", "replaced by", "files removed", "files kept (referred to by)",
            title=f"dataset versions holding the {column}",
        )  # fmt: skip
        for d in report.datasets:
            into = (
                "-"
                if report.dry_run
                else ("no rows left" if d.replaced_by is None else f"version {d.replaced_by}")
            )
            kept = escape("; ".join(d.blobs_kept))
            uri = f"datasets:/{escape(d.dataset)}/{d.version}"
            table.add_row(uri, str(d.rows), into, str(d.blobs_removed), kept)
        console.print(table)
    rows = f"{report.rows} row{'' if report.rows == 1 else 's'}"
    console.print(f"{'dry run: ' if report.dry_run else ''}{verb} {rows} where {column} matched")
    for left in report.not_erased:
        console.print(f"[yellow]not erased:[/yellow] {escape(left.where)}: {escape(left.why)}")
