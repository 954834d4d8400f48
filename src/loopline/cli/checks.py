"""`loopline data ...`: checks of data, in files or stored dataset versions alike: infer a
contract, validate against it, detect drift. Storing and reading versions is `datasets`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from loopline.cli.context import cli_context, print_json
from loopline.core.datasets import ValidationReport
from loopline.data.validation import infer_contract
from loopline.specs.contract import Contract

app = typer.Typer(
    help="Check data (files or dataset versions): infer a contract, validate, detect drift.",
    no_args_is_help=True,
)
DATA = typer.Argument(..., help="A CSV or Parquet file, or a registered dataset (NAME or NAME@VERSION).")


def _data(ctx: typer.Context, data: str) -> Any:
    if Path(data).exists():
        return Path(data)
    from loopline.datasets import Dataset

    service = cli_context(ctx).services.datasets
    return Dataset(service.get(data), service)


@app.command("validate")
def validate_(
    ctx: typer.Context,
    data: str = DATA,
    contract: Path = typer.Option(..., "--contract", "-c", help="The contract, a YAML file."),
    run: str | None = typer.Option(
        None, help="Record the verdict on this running run (the data_validation promotion gate reads it)."
    ),
    samples: int = typer.Option(5, help="Offending rows to show per failed rule."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check data against a contract; exits 1 when a rule fails."""
    checked = _data(ctx, data)
    stored = getattr(checked, "info", checked)  # a dataset's version, or the path
    # The service checks, and with --run records the verdict: the gate's evidence.
    service = cli_context(ctx).services.datasets
    report = service.validate(stored, Contract.load(contract), run_id=run, samples=samples)
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


def _frame(ctx: typer.Context, data: str) -> Any:
    """A file read through the strict reader, or a registered dataset (its profile serves as
    a reference without reading it)."""
    found = _data(ctx, data)
    if not isinstance(found, Path):
        return found
    import tempfile

    import pyarrow.parquet as pq

    from loopline.data.ingest import stage_file

    with tempfile.TemporaryDirectory(prefix="loopline-drift-") as tmp:
        staged = stage_file(found, Path(tmp, "data.parquet"))
        return pq.read_table(staged.path).to_pandas()


@app.command()
def drift(
    ctx: typer.Context,
    reference: str = typer.Argument(
        ..., help="Reference: a CSV or Parquet file, or a dataset (NAME@VERSION)."
    ),
    current: str = typer.Argument(..., help="Current data: a CSV or Parquet file, or a dataset."),
    column: list[str] = typer.Option([], "--column", "-c", help="Test only these columns (repeatable)."),
    test: list[str] = typer.Option(
        [], help="COLUMN=TEST to override a column's test (ks, psi, wasserstein, ...)."
    ),
    drift_share: float = typer.Option(0.5, help="Share of drifted columns that makes the dataset drifted."),
    fail_on_drift: bool = typer.Option(False, help="Exit 1 when the dataset drifted."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Which columns drifted from the reference: per column test, statistic and threshold."""
    from loopline.core.errors import InvalidInput
    from loopline.monitoring import detect_drift

    tests = {}
    for item in test:
        name, sep, chosen = item.partition("=")
        if not sep:
            raise InvalidInput(f"--test {item!r}: write COLUMN=TEST")
        tests[name] = chosen
    result = detect_drift(
        _frame(ctx, reference),
        _frame(ctx, current),
        columns=column or None,
        tests=tests,
        drift_share=drift_share,
    )
    if json_:
        print_json(result.to_dict())
    else:
        console = Console()
        verdict = "[red]drifted[/]" if result.dataset_drift else "[green]no dataset drift[/]"
        console.print(
            f"{len(result.drifted_columns)} of {len(result.columns)} columns drifted "
            f"({result.share:.0%}, limit {result.drift_share:.0%}): {verdict}"
        )
        table = Table("column", "kind", "test", "statistic", "threshold", "drifted", "detail")
        for c in result.columns:
            statistic = "" if c.statistic is None else f"{c.statistic:.4g}"
            table.add_row(
                c.column,
                c.kind,
                c.test,
                statistic,
                f"{c.threshold:g}",
                "[red]yes[/]" if c.drifted else "",
                c.detail,
            )
        console.print(table)
        for warning in result.warnings:
            console.print(f"[yellow]warning:[/] {warning}")
    if fail_on_drift and result.dataset_drift:
        raise typer.Exit(1)
