"""`loopline gc [--dry-run]` and `loopline gc policy`: what storage keeps, and removing the rest."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from loopline.cli.context import cli_context, print_json
from loopline.cli.render import when
from loopline.core.errors import InvalidInput
from loopline.core.lifecycle import GcReport, RetentionPolicy
from loopline.services import Storage

app = typer.Typer(
    help="Remove what the retention policy no longer keeps: deleted runs, old prediction logs, "
    "unreferenced blobs.",
    invoke_without_command=True,
)
FOREVER = "forever"
SHOWN = 10  # names listed per kind; --json lists them all


def _storage(ctx: typer.Context) -> Storage:
    return cli_context(ctx).services.storage


@app.callback()
def gc(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would be removed; remove nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Purge runs deleted long ago, old prediction-log days and blobs nothing refers to, as the
    retention policy says (`loopline gc policy`); administrators only. Safe while others write."""
    if ctx.invoked_subcommand is not None:
        return
    report = _storage(ctx).gc(dry_run=dry_run)
    if as_json:
        print_json(report)
        return
    _print_report(report)


def _print_report(report: GcReport) -> None:
    console = Console(soft_wrap=True, highlight=False)
    verb = "would remove" if report.dry_run else "removed"
    console.print(f"gc {verb}:")
    console.print(f"  {len(report.purged_runs)} deleted runs ({report.artifact_rows} artifact entries)")
    for run_id in report.purged_runs[:SHOWN]:
        console.print(f"    {run_id}")
    console.print(f"  {len(report.partitions)} prediction-log partitions, {_bytes(report.partition_bytes)}")
    for p in report.partitions[:SHOWN]:
        console.print(f"    {p.table}/deployment={escape(p.deployment)}/date={p.date} ({p.files} files)")
    console.print(f"  {len(report.blobs)} unreferenced blobs, {_bytes(report.blob_bytes)}")
    if not report.dry_run:
        console.print(f"  {report.stale_temporaries} partial writes of stopped processes")
    for kept in report.kept_runs[:SHOWN]:
        console.print(f"kept run {kept.run_id}: {kept.reason}")
    for note in report.kept:
        console.print(f"kept {note}")


def _bytes(count: int) -> str:
    size = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _age(option: str, text: str | None, current: float | None) -> float | None:
    """The age an option gives: a number, or `forever` (None); `current` when not given."""
    if text is None:
        return current
    if text.strip().lower() == FOREVER:
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(f"{option} takes a number or '{FOREVER}', not {text!r}") from None


@app.command("policy")
def policy(
    ctx: typer.Context,
    deleted_runs_days: str | None = typer.Option(
        None, help="Purge runs deleted this many days ago ('forever': keep them)."
    ),
    prediction_log_days: str | None = typer.Option(
        None, help="Remove prediction-log days older than this ('forever': keep them)."
    ),
    unreferenced_blob_hours: float | None = typer.Option(
        None, help="Remove blobs nothing refers to once their file is this many hours old."
    ),
    reason: str = typer.Option("", help="Why, for the audit trail."),
    as_json: bool = typer.Option(False, "--json", help="Print the policy as JSON."),
) -> None:
    """Show the retention policy, or change what is given of it (administrators only)."""
    storage = _storage(ctx)
    current = storage.retention()
    given = (deleted_runs_days, prediction_log_days, unreferenced_blob_hours)
    if any(value is not None for value in given):
        grace = unreferenced_blob_hours
        current = storage.set_retention(
            deleted_runs_days=_age("--deleted-runs-days", deleted_runs_days, current.deleted_runs_days),
            prediction_log_days=_age(
                "--prediction-log-days", prediction_log_days, current.prediction_log_days
            ),
            unreferenced_blob_hours=current.unreferenced_blob_hours if grace is None else grace,
            reason=reason,
        )
    if as_json:
        print_json(current)
        return
    _print_policy(current)


def _print_policy(policy: RetentionPolicy) -> None:
    def days(value: float | None) -> str:
        return "kept forever" if value is None else f"removed after {value:g} days"

    console = Console(soft_wrap=True, highlight=False)
    console.print(f"deleted runs:            {days(policy.deleted_runs_days)}")
    console.print(f"prediction-log days:     {days(policy.prediction_log_days)}")
    console.print(f"unreferenced blobs:      removed after {policy.unreferenced_blob_hours:g} hours")
    if policy.updated_at is None:
        console.print("(the default policy: none was set)")
    else:
        console.print(f"set by {escape(policy.updated_by or '')} at {when(policy.updated_at)}")
