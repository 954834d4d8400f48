"""`loopline audit list|verify`: who changed what, and proof that nobody rewrote it."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from loopline.cli.context import cli_context, print_json
from loopline.cli.render import when
from loopline.services import Audit

app = typer.Typer(help="The tamper-evident audit trail of every change.", no_args_is_help=True)


def _trail(ctx: typer.Context) -> Audit:
    return cli_context(ctx).services.audit


def _short(value: object) -> str:
    text = "" if value is None else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


@app.command("list")
def list_entries(
    ctx: typer.Context,
    actor: str | None = typer.Option(None, help="Only this actor's changes."),
    action: str | None = typer.Option(
        None, help="Actions starting with this, e.g. alias or deployment.traffic."
    ),
    target: str | None = typer.Option(None, help="Targets starting with this, e.g. models:/churn."),
    limit: int = typer.Option(50, help="How many, newest first."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Changes, newest first: who, what, when, from what to what, and why."""
    entries = _trail(ctx).entries(actor=actor, action=action, target=target, limit=limit)
    if as_json:
        print_json(entries)
        return
    table = Table("id", "when", "who", "action", "target", "before", "after", "reason")
    for e in entries:
        table.add_row(
            str(e.id), when(e.at), e.actor, e.action, e.target, _short(e.before), _short(e.after), e.reason
        )
    Console(soft_wrap=True).print(table)


@app.command()
def verify(
    ctx: typer.Context,
    anchor: str | None = typer.Option(
        None, help="A head hash an earlier verify printed: entries removed since then from the end show too."
    ),
) -> None:
    """Check every entry against its hash and its link to the one before; exits 1 if broken.

    Keep the head it prints outside the database (a ticket, a log, another system) and pass
    it as --anchor next time: a trail cut short is otherwise still a whole chain. Entries
    sealed with a key (LOOPLINE_AUDIT_KEYS) cannot be rewritten without it."""
    result = _trail(ctx).verify(anchor=anchor)
    console = Console(soft_wrap=True)
    if result.intact:
        if result.unsealed:  # no key's seal: only an anchor proves these were not rewritten
            console.print(f"{result.unsealed} entries unsealed: configure LOOPLINE_AUDIT_KEYS to seal them")
        console.print(f"audit trail intact: {result.entries} entries, head {result.head}")  # the head last
        return
    console.print(f"[red]audit trail broken[/] ({result.entries} entries checked):")
    for problem in result.problems:
        console.print(f"  {problem}")
    raise typer.Exit(1)
