"""`loopline db ...`"""

from __future__ import annotations

import typer
from rich.console import Console

from loopline.cli.context import cli_context
from loopline.store.database import Database
from loopline.store.engine import create_store_engine, redacted
from loopline.store.migrate import upgrade as upgrade_schema

app = typer.Typer(help="Manage the metadata database.", no_args_is_help=True)


@app.command()
def upgrade(ctx: typer.Context) -> None:
    """Apply pending schema migrations (opening a store does this too)."""
    url = cli_context(ctx).settings.resolved_store_uri
    db = Database(create_store_engine(url))
    try:
        before, after = upgrade_schema(db)
    finally:
        db.dispose()
    if before == after:
        Console().print(f"{redacted(url)} is up to date (schema {after})")
    else:
        Console().print(f"{redacted(url)}: schema {before or 'empty'} -> {after}")
