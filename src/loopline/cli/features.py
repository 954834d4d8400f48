"""`loopline features ...`"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from loopline.cli.context import cli_context, print_json

app = typer.Typer(help="The feature store: entities, feature views, training sets.", no_args_is_help=True)


def _service(ctx: typer.Context):  # type: ignore[no-untyped-def]
    return cli_context(ctx).local.features


@app.command()
def apply(
    ctx: typer.Context,
    file: Path = typer.Argument(
        ..., help="A .yaml (entities:, feature_views:) or a .py file of definitions."
    ),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Register entities and feature views; a changed view gets a new version."""
    from loopline.feature_store.definitions import load_definitions
    from loopline.feature_store.service import describe

    entities, views = load_definitions(file)
    done = describe(_service(ctx).apply(entities, views))
    if json_:
        print_json(done)
        return
    table = Table("kind", "name", "result")
    for row in done:
        table.add_row(row["kind"], row["name"], row["result"])
    Console().print(table)


@app.command("list")
def list_(ctx: typer.Context, json_: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Feature views (their newest versions)."""
    views = _service(ctx).views()
    if json_:
        print_json([{"ref": v.ref, **v.view.to_dict(), "join_keys": list(v.join_keys)} for v in views])
        return
    table = Table("view", "entities", "features", "ttl", "source")
    for v in views:
        ttl = "" if v.view.ttl_s is None else f"{v.view.ttl_s:g} s"
        features = ", ".join(f"{f.name}:{f.dtype}" for f in v.view.features)
        table.add_row(v.ref, ", ".join(v.view.entities), features, ttl, v.view.source)
    Console().print(table)


@app.command()
def historical(
    ctx: typer.Context,
    entities: Path = typer.Option(
        ..., "--entities", help="Entity rows: Parquet or CSV, with keys and a time."
    ),
    features: list[str] = typer.Option(
        ..., "--features", "-f", help="view:feature, view@3:feature or view:*."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="The training set, as Parquet."),
    timestamp_column: str = typer.Option("event_timestamp", help="The entity rows' time column."),
    full_names: bool = typer.Option(False, "--full-names", help="Name columns view__feature."),
) -> None:
    """Join features to entity rows as of each row's time, out of core, into a Parquet file."""
    _service(ctx).get_historical(
        entities, features, timestamp_column=timestamp_column, full_names=full_names, output=output.resolve()
    )
    Console().print(f"wrote {output}")


@app.command()
def materialize(
    ctx: typer.Context,
    view: str = typer.Argument(..., help="A feature view, or view@VERSION."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Write the view's newest values known since its last run to the online store."""
    done = _service(ctx).materialize(view)
    if json_:
        print_json(done)
    else:
        Console().print(f"{done.view}: {done.keys_written:,} keys written")


@app.command()
def get(
    ctx: typer.Context,
    entity: list[str] = typer.Option(..., "--entity", "-e", help="KEY=VALUE, repeated for each entity."),
    features: list[str] = typer.Option(..., "--features", "-f", help="view:feature or view:*."),
) -> None:
    """Print the online values of entities, as JSON: `-e customer_id=1 -e customer_id=2`."""
    columns: dict[str, list[object]] = {}
    for item in entity:
        key, equals, value = item.partition("=")
        if not equals:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE")
        columns.setdefault(key, []).append(int(value) if value.lstrip("-").isdigit() else value)
    print_json(_service(ctx).get_online(columns, features))
