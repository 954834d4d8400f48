"""`loopline features ...`"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from loopline.cli.context import cli_context, print_json
from loopline.core.errors import InvalidInput

if TYPE_CHECKING:
    from loopline.services import Features, Materialized

app = typer.Typer(
    help="The feature store: feature views, training sets, online values.", no_args_is_help=True
)


def _service(ctx: typer.Context) -> Features:
    """The feature store: the local store's, or the server's when LOOPLINE_URI is set."""
    return cli_context(ctx).services.features


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
    on: str = typer.Option("local", "--on", help="local: in this process; ray: as a Ray task."),
    ray_address: str | None = typer.Option(
        None, help="With --on ray: the cluster's address (default: start Ray here)."
    ),
    end: str | None = typer.Option(
        None, help="Up to this ISO time, UTC unless it names a zone (default: now)."
    ),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Write the view's newest values known since its last run to the online store."""
    from loopline._pipelines import RayMaterialization
    from loopline.automation.jobs import materialize_job

    context = cli_context(ctx)
    # the same params, checked and run the same way, as a materialize job's
    given = {"on": on, "ray_address": ray_address, "end": end}
    params = {key: value for key, value in given.items() if value is not None}
    if context.settings.uri:  # the server materializes: a Ray task would open stores here
        done = materialize_job(context.services.features, _ray_through_a_server, view, params)
    else:
        on_ray = RayMaterialization(context.settings, context.local.principal)
        done = materialize_job(context.local.features, on_ray, view, params)
    if json_:
        print_json(done)
    else:
        Console().print(f"{done['view']}: {done['keys_written']:,} keys written ({done['on']})")


def _ray_through_a_server(ref: str, end: datetime | None, address: str) -> Materialized:
    raise InvalidInput(
        "--on ray runs where the store is; through a server, the server materializes: leave out "
        "--on, or queue a materialize job for its worker (loopline jobs enqueue)"
    )


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


@app.command()
def freshness(
    ctx: typer.Context,
    views: list[str] = typer.Argument(None, help="Views (name or name@N); all by default."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """How old each view's newest online value is, against its TTL."""
    found = _service(ctx).freshness(views or ())
    if json_:
        print_json([f.to_dict() for f in found])
        return
    table = Table("view", "newest value", "age", "ttl", "age / ttl", "materialized up to", "")
    for f in found:
        ratio = "" if f.age_ratio is None else f"{f.age_ratio:.2f}"
        table.add_row(
            f.view, _time(f.newest_us), "" if f.age_s is None else f"{f.age_s:,.0f} s",
            "" if f.ttl_s is None else f"{f.ttl_s:g} s", ratio, _time(f.watermark_us),
            "[red]stale[/red]" if f.stale else "[green]fresh[/green]",
        )  # fmt: skip
    Console().print(table)


def _time(us: int | None) -> str:
    return "never" if us is None else datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S")
