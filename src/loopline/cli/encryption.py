"""`loopline encryption status|rewrap`: the keys that seal the artifact store's files, and
key rotation. They run where the store is, with LOOPLINE_ENCRYPTION_KEYS set."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from loopline.cli.context import cli_context, print_json, to_jsonable

app = typer.Typer(help="Encryption at rest of blobs and logs: key status and rotation.", no_args_is_help=True)


@app.command()
def status(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """How many blob and table files each key seals, and how many are plaintext."""
    found = cli_context(ctx).local.encryption.status()
    if as_json:
        print_json(found)
        return
    console = Console(soft_wrap=True, highlight=False)
    if found.current_key is None:
        console.print("encryption at rest is off: LOOPLINE_ENCRYPTION_KEYS is not set")
    else:
        console.print(f"new files are encrypted under key {escape(found.current_key)!r}")
    table = Table("sealed under", "blobs", "table files")
    for key in sorted(set(found.blobs) | set(found.tables)):
        table.add_row(escape(key), str(found.blobs.get(key, 0)), str(found.tables.get(key, 0)))
    console.print(table)


@app.command()
def rewrap(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would change; change nothing."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Put every blob and table file under the first key of LOOPLINE_ENCRYPTION_KEYS: files
    under an older key get their data key wrapped anew, plaintext files are encrypted. Exits 1
    if some file is under a key that is not configured.

    Rotation: put a new key first in LOOPLINE_ENCRYPTION_KEYS, keep the old ones, run this,
    then remove the old keys."""
    report = cli_context(ctx).local.encryption.rewrap(dry_run=dry_run)
    total = report.total
    if as_json:
        print_json({**to_jsonable(report), "total": to_jsonable(total)})
    else:
        console = Console(soft_wrap=True, highlight=False)
        action = "would put (dry run)" if dry_run else "put"
        console.print(f"{action} every file under key {escape(report.key)!r}")
        table = Table("files", "blobs", "table files")
        for label, attribute in (
            ("rewrapped (were under an older key)", "rewrapped"),
            ("encrypted (were plaintext)", "encrypted"),
            ("unchanged (under it already)", "current"),
        ):
            table.add_row(
                label, str(getattr(report.blobs, attribute)), str(getattr(report.tables, attribute))
            )
        console.print(table)
        for problem in total.problems:
            console.print(f"[red]cannot rewrap:[/red] {escape(problem)}")
    if total.problems:
        raise typer.Exit(1)
