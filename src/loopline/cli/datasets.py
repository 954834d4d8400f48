"""`loopline datasets ...`: stored dataset versions: register, list, show, diff. Checks of any
data (contracts, validation, drift) are `loopline data`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from loopline.cli.context import cli_context, print_json
from loopline.cli.render import fmt, when
from loopline.core.datasets import DatasetVersion
from loopline.progress import progress_bar
from loopline.services import Datasets

app = typer.Typer(help="Datasets: versions by content, schemas, profiles, diffs.", no_args_is_help=True)
JSON = typer.Option(False, "--json", help="Print JSON.")


def _service(ctx: typer.Context) -> Datasets:
    return cli_context(ctx).services.datasets


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


@app.command()
def register(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Dataset name."),
    source: str = typer.Argument(
        ..., help="A CSV/TSV (optionally compressed) or Parquet file, or with --url a query."
    ),
    url: str | None = typer.Option(None, help="Run SOURCE as SQL on this database (a SQLAlchemy URL)."),
    description: str = typer.Option("", help="What the data is."),
    encoding: str = typer.Option("utf-8", help="Text encoding of a CSV file."),
    contract: Path | None = typer.Option(
        None,
        "--contract",
        help="A data contract (YAML) the rows must pass; its personal_data mask/hash columns are "
        "stored masked or hashed.",
    ),
    json_: bool = JSON,
) -> None:
    """Store a file or a query's rows as the next version of a dataset (read in chunks)."""
    from loopline.specs.contract import Contract

    rules = None if contract is None else Contract.load(contract)
    service = _service(ctx)
    data: str | Path = source if url is not None else Path(source)
    with progress_bar(
        f"reading {Path(source).name if url is None else 'query'}", unit_bytes=url is None
    ) as bar:
        version, created = service.register(
            name, data, sql_url=url, description=description, encoding=encoding, progress=bar,
            contract=rules,
        )  # fmt: skip
    if json_:
        print_json({"dataset": version, "created": created})
        return
    verb = "registered" if created else "unchanged: the same rows are"
    Console().print(f"{verb} {version.uri} ({version.rows:,} rows, sha256:{version.digest[:12]})")


@app.command("list")
def list_(ctx: typer.Context, json_: bool = JSON) -> None:
    """Every dataset with its newest version."""
    found = _service(ctx).list_datasets()
    if json_:
        print_json(found)
        return
    table = Table("name", "versions", "rows", "columns", "size", "updated (UTC)", "description")
    for v in found:
        table.add_row(
            v.name,
            str(v.version),
            f"{v.rows:,}",
            str(len(v.columns)),
            _size(v.size),
            when(v.created_at),
            v.description,
        )
    Console().print(table)


@app.command()
def versions(
    ctx: typer.Context, name: str = typer.Argument(..., help="Dataset name."), json_: bool = JSON
) -> None:
    """The versions of a dataset, oldest first."""
    found = _service(ctx).versions(name)
    if json_:
        print_json(found)
        return
    table = Table("version", "rows", "columns", "sha256", "source", "registered (UTC)", "by")
    for v in found:
        table.add_row(
            str(v.version),
            f"{v.rows:,}",
            str(len(v.columns)),
            v.digest[:12],
            v.source,
            when(v.created_at),
            v.created_by,
        )
    Console().print(table)


@app.command()
def show(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME (newest version), NAME@VERSION or datasets:/NAME/VERSION."),
    json_: bool = JSON,
) -> None:
    """A dataset version: schema and per-column profile."""
    version = _service(ctx).get(ref)
    if json_:
        print_json(version)
        return
    console = Console()
    console.print(
        f"[bold]{version.uri}[/]  {version.rows:,} rows, {_size(version.size)}, sha256:{version.digest}\n"
        f"from {version.source}, registered {when(version.created_at)} by {version.created_by}"
    )
    if version.description:
        console.print(version.description)
    if version.erased_at is not None:  # its rows and statistics are gone: only the schema is left
        rest = (
            "no row was left"
            if version.erased_into is None
            else f"version {version.erased_into} holds the rest"
        )
        console.print(f"[yellow]erased {when(version.erased_at)}[/]: an entity's rows were removed; {rest}")
    console.print(_profile_table(version))


def _profile_table(version: DatasetVersion) -> Table:
    table = Table(
        "column",
        "type",
        "nulls",
        "distinct",
        "min",
        "max",
        "mean",
        "std",
        "p50",
        "top values",
        "personal data",
    )
    for c in version.columns:
        quantiles: dict[str, Any] = c.get("quantiles") or {}
        top = ", ".join(f"{k} ({n:,})" for k, n in (c.get("top") or [])[:3])
        table.add_row(
            c["name"],
            c["type"],
            f"{c.get('nulls', 0):,}",
            fmt(c.get("distinct")),
            _short(c.get("min")),
            _short(c.get("max")),
            fmt(c.get("mean")),
            fmt(c.get("std")),
            fmt(quantiles.get("0.5")),
            top,
            personal_data(c.get("personal_data")),
        )
    return table


def personal_data(found: dict[str, Any] | None) -> str:
    """What a column's summary says of the personal data in it: `email (hashed)`."""
    if not found:
        return ""
    kind = " ".join(str(found[k]) for k in ("kind", "scheme") if found.get(k))
    by = " by name" if found.get("by") == "column name" else ""
    stored = f" ({found['stored']})" if found.get("stored") else ""
    return f"{kind}{by}{stored}"


def _short(value: Any) -> str:
    text = fmt(value)
    try:
        return fmt(float(text))
    except ValueError:
        return text if len(text) <= 24 else text[:23] + "…"


@app.command()
def scan(
    source: Path = typer.Argument(..., help="A CSV/TSV (optionally compressed) or Parquet file."),
    encoding: str = typer.Option("utf-8", help="Text encoding of a CSV file."),
    json_: bool = JSON,
) -> None:
    """Find the columns of a file that hold personal data, without registering it (here, on
    this machine: the file goes nowhere)."""
    from loopline.data.personal_data import scan as find

    found = find(source, encoding)
    if json_:
        print_json({name: kind.to_dict() for name, kind in found.items()})
        return
    if not found:
        Console().print(f"{source.name}: no column holds personal data that loopline recognises")
        return
    table = Table("column", "personal data", "found by")
    for name, kind in found.items():
        by = (
            "its column name"
            if kind.by != "values"
            else f"{kind.matched:,} of {kind.sampled:,} sampled values"
        )
        table.add_row(name, " ".join(filter(None, (kind.kind, kind.scheme))), by)
    Console().print(table)


@app.command()
def diff(
    ctx: typer.Context,
    old: str = typer.Argument(..., help="The older version (NAME@VERSION)."),
    new: str = typer.Argument(..., help="The newer version (NAME@VERSION)."),
    json_: bool = JSON,
) -> None:
    """Schema and profile changes between two versions, with a drift score per column."""
    service = _service(ctx)
    result = service.diff(service.get(old), service.get(new))
    if json_:
        print_json(result.to_dict())
        return
    console = Console()
    before, after = result.rows
    console.print(f"{result.old} -> {result.new}: rows {before:,} -> {after:,} ({after - before:+,})")
    for name in result.added:
        console.print(f"[green]+ column {name}[/]")
    for name in result.removed:
        console.print(f"[red]- column {name}[/]")
    for name, was, now in result.retyped:
        console.print(f"[yellow]~ column {name}: {was} -> {now}[/]")
    if not result.changes:
        console.print("no column changed")
        return
    table = Table("column", "drift", "score", "nulls", "mean", "distinct", "categories")
    for change in result.changes:
        categories = []
        if change.get("new_categories"):
            categories.append("new: " + ", ".join(change["new_categories"][:5]))
        if change.get("gone_categories"):
            categories.append("gone: " + ", ".join(change["gone_categories"][:5]))
        table.add_row(
            change["column"],
            "[red]drifted[/]" if change.get("drifted") else "",
            f"{change.get('test', '')} {fmt(change.get('score'))}",
            _pair(change.get("nulls")),
            _pair(change.get("mean")),
            _pair(change.get("distinct")),
            "; ".join(categories),
        )
    console.print(table)


def _pair(values: list[Any] | None) -> str:
    return "" if values is None else f"{fmt(values[0])} -> {fmt(values[1])}"
