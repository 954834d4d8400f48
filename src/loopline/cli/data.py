"""`loopline data ...`: data contracts and validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from loopline.backends import local_owner
from loopline.cli.context import cli_context, print_json
from loopline.data.contract import Contract
from loopline.data.validation import ValidationReport, infer_contract, validate

app = typer.Typer(
    help="Data contracts: infer them from reference data, validate data against them.", no_args_is_help=True
)
DATA = typer.Argument(..., help="A CSV or Parquet file, or a registered dataset (NAME or NAME@VERSION).")


def _data(ctx: typer.Context, data: str) -> Any:
    if Path(data).exists():
        return Path(data)
    from loopline.datasets import Dataset

    service = cli_context(ctx).backends.datasets(local_owner())
    return Dataset(service.get(data), service)


@app.command("validate")
def validate_(
    ctx: typer.Context,
    data: str = DATA,
    contract: Path = typer.Option(..., "--contract", "-c", help="The contract, a YAML file."),
    run: str | None = typer.Option(
        None, help="Tag this run data_validation=passed|failed (the promotion gate reads it)."
    ),
    samples: int = typer.Option(5, help="Offending rows to show per failed rule."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check data against a contract; exits 1 when a rule fails."""
    report = validate(_data(ctx, data), Contract.load(contract), samples=samples)
    if run is not None:
        verdict = "passed" if report.passed else "failed"
        cli_context(ctx).tracking().log_batch(run, tags={"data_validation": verdict})
    if json_:
        print_json(report.to_dict())
    else:
        _render(Console(), report)
    if not report.passed:
        raise typer.Exit(1)


def _render(console: Console, report: ValidationReport) -> None:
    verdict = "[green]passed[/]" if report.passed else f"[red]failed {len(report.failures)} rule(s)[/]"
    console.print(f"{report.source}: {report.rows:,} rows, {report.checks} checks, {verdict}")
    if report.passed:
        return
    table = Table("rule", "column", "rows", "what", "examples (row: value)")
    for failure in report.failures:
        examples = "; ".join(
            f"{s['_row']}: " + ", ".join(f"{v}" for k, v in s.items() if k != "_row")
            for s in failure.samples[:3]
        )
        table.add_row(failure.check, failure.column or "", f"{failure.count:,}", failure.detail, examples)
    console.print(table)


@app.command("infer-contract")
def infer_contract_(
    ctx: typer.Context,
    data: str = DATA,
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the YAML here instead of printing it."
    ),
) -> None:
    """Write a contract the data passes, to review, edit and keep beside the code."""
    contract = infer_contract(_data(ctx, data))
    if output is None:
        typer.echo(contract.to_yaml(), nl=False)
        return
    contract.save(output)
    Console().print(f"wrote {output} ({len(contract.columns)} columns)")
