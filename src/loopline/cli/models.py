"""`loopline models ...`"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from loopline.cli.context import cli_context, print_json
from loopline.cli.render import fmt, when
from loopline.core.errors import InvalidInput
from loopline.core.promotion import PromotionRefused
from loopline.core.registry import TRUSTED_TYPES_TAG, ModelVersion

if TYPE_CHECKING:
    import pandas as pd

    from loopline.registry.policy import Policy

app = typer.Typer(help="Registered models: versions, aliases, promotion, cards.", no_args_is_help=True)
JSON = typer.Option(False, "--json", help="Print JSON.")


def read_table(path: Path) -> pd.DataFrame:
    """A CSV, Parquet or JSON-lines file as a DataFrame."""
    import pandas as pd

    if not path.is_file():
        raise InvalidInput(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".jsonl", ".ndjson"):
        return pd.read_json(path, lines=True)
    raise InvalidInput(f"data file {path}: use .csv, .parquet or .jsonl")


@app.command("list")
def list_(ctx: typer.Context, json_: bool = JSON) -> None:
    """List registered models."""
    models = cli_context(ctx).services.registry.list_models()
    if json_:
        print_json(models)
        return
    table = Table("name", "project", "latest version", "aliases", "description")
    for m in models:
        aliases = ", ".join(f"@{a}={v}" for a, v in sorted(m.aliases.items()))
        table.add_row(m.display_name, m.project, str(m.latest_version), aliases, m.description)
    Console().print(table)


def _versions_table(versions: list[ModelVersion]) -> Table:
    table = Table("version", "status", "flavor", "task", "registered (UTC)", "aliases", "metrics", "run")
    for v in versions:
        shown = sorted(v.metrics.items())[:2]
        metrics = ", ".join(f"{k}={fmt(x)}" for k, x in shown)
        status = v.status.value + (" (deleted)" if v.deleted else "")
        aliases = ", ".join(f"@{a}" for a in v.aliases)
        row = [
            str(v.version),
            status,
            v.flavor,
            v.task or "",
            when(v.created_at),
            aliases,
            metrics,
            v.run_id or "",
        ]
        table.add_row(*row)
    return table


@app.command()
def show(ctx: typer.Context, name: str = typer.Argument(..., help="Model name."), json_: bool = JSON) -> None:
    """Show a model and its versions."""
    registry = cli_context(ctx).services.registry
    model = registry.get_model(name)
    versions = registry.list_versions(name)
    if json_:
        print_json({"model": model, "versions": versions})
        return
    console = Console()
    console.print(f"[bold]{model.display_name}[/bold]  {model.description}")
    for key, value in sorted(model.tags.items()):
        console.print(f"  {key} = {value}")
    console.print(_versions_table(versions))


@app.command()
def versions(
    ctx: typer.Context, name: str = typer.Argument(..., help="Model name."), json_: bool = JSON
) -> None:
    """List the versions of a model."""
    found = cli_context(ctx).services.registry.list_versions(name)
    if json_:
        print_json(found)
    else:
        Console().print(_versions_table(found))


@app.command()
def promote(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    version: int = typer.Argument(..., help="Version to promote."),
    alias: str = typer.Option("champion", help="Alias to move."),
    policy: Path | None = typer.Option(None, help="Policy YAML; default: signature compatible and better."),
    data: Path | None = typer.Option(None, help="Evaluation data (.csv, .parquet, .jsonl)."),
    target: str | None = typer.Option(None, help="Target column of the evaluation data."),
    force: bool = typer.Option(False, help="Promote even if gates fail (needs --reason)."),
    reason: str | None = typer.Option(None, help="Why the promotion is forced; recorded."),
    trust: bool = typer.Option(False, help="Allow loading pickled (python_function) models."),
    json_: bool = JSON,
) -> None:
    """Move an alias to a version if it passes the promotion gates."""
    if force and not reason:
        raise InvalidInput("--force needs --reason, which is recorded with the promotion")
    if reason and not force:
        raise InvalidInput("--reason goes with --force")
    service = cli_context(ctx).services.promotion
    frame = read_table(data) if data is not None else None
    try:
        report = service.promote(
            name,
            version,
            alias,
            policy=_policy(policy),
            data=frame,
            target=target,
            force_reason=reason if force else None,
            trust=trust,
        )
    except PromotionRefused as refused:
        if json_:
            print_json(refused.report.to_dict())
        else:
            Console(stderr=True, highlight=False).print(refused.report.summary(), markup=False)
        raise typer.Exit(1) from None
    if json_:
        print_json(report.to_dict())
    else:
        Console(highlight=False).print(report.summary(), markup=False)


@app.command()
def alias(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    alias_: str = typer.Argument(..., metavar="ALIAS", help="Alias to set or delete."),
    version: int | None = typer.Argument(None, help="Version to point the alias at."),
    delete: bool = typer.Option(False, "--delete", help="Remove the alias instead."),
    reason: str = typer.Option("", help="Why; recorded with the move."),
    json_: bool = JSON,
) -> None:
    """Point an alias at a version, or remove it, without gates (on the record)."""
    registry = cli_context(ctx).services.registry
    if delete == (version is not None):
        raise InvalidInput(
            f"give the VERSION @{alias_} should point at, or --delete (not both); "
            f"`loopline models alias-history {name}` shows where it pointed"
        )
    if version is None:
        event = registry.remove_alias(name, alias_, reason=reason)
    else:
        event = registry.set_alias(name, alias_, version, reason=reason or "set by hand, without gates")
    if json_:
        print_json(event)
    else:
        Console().print(f"@{event.alias} of {event.model}: {event.from_version} -> {event.to_version}")


@app.command("alias-history")
def alias_history(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    alias_: str | None = typer.Argument(None, metavar="[ALIAS]", help="Only this alias."),
    json_: bool = JSON,
) -> None:
    """Every move of the model's aliases (or of one): when, from, to, by whom, why."""
    history = cli_context(ctx).services.registry.alias_history(name, alias_)
    if json_:
        print_json(history)
        return
    table = Table("when", "alias", "from", "to", "by", "forced", "reason")
    for e in history:
        moved = [str(e.from_version or ""), str(e.to_version or "removed")]
        table.add_row(when(e.at), f"@{e.alias}", *moved, e.actor, "yes" if e.forced else "", e.reason)
    Console().print(table)


@app.command()
def card(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    version: int = typer.Argument(..., help="Version."),
    html: bool = typer.Option(False, "--html", help="HTML instead of Markdown."),
    output: Path | None = typer.Option(None, help="Write to this file instead of printing."),
) -> None:
    """The model card of a version."""
    text = cli_context(ctx).services.promotion.model_card(name, version, html=html)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text)
        Console().print(f"wrote {output}")


@app.command()
def evaluate(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    version: int = typer.Argument(..., help="Version."),
    data: Path = typer.Option(..., help="Evaluation data (.csv, .parquet, .jsonl)."),
    target: str = typer.Option(..., help="Target column."),
    slice_: list[str] | None = typer.Option(None, "--slice", help="Column to slice metrics by (repeatable)."),
    task: str | None = typer.Option(None, help="classification or regression (default: the model's)."),
    trust: bool = typer.Option(False, help="Allow loading pickled (python_function) models."),
    json_: bool = JSON,
) -> None:
    """Evaluate a version on data and store the result with it."""
    service = cli_context(ctx).services.promotion
    result = service.evaluate(
        f"models:/{name}/{version}",
        read_table(data),
        target,
        task=task,
        slices=slice_ or (),
        dataset_name=data.name,
        trust=trust,
    )
    if json_:
        print_json(result)
        return
    table = Table(
        "metric", "value", title=f"evaluation {result.id} of {name} version {version} on {data.name}"
    )
    for key, value in result.metrics.items():
        table.add_row(key, fmt(value))
    for key, value in result.latency.items():
        table.add_row(f"latency {key}", fmt(value))
    Console().print(table)


@app.command()
def trust(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    version: int = typer.Argument(..., help="Version."),
    types: list[str] | None = typer.Argument(None, help="Types it needs (module.Class); none: withdraw."),
    code: bool = typer.Option(
        False, "--code", help="Trust the code its files run (a pickle, an MLflow model)."
    ),
    off: bool = typer.Option(False, "--off", help="With --code: withdraw that trust."),
) -> None:
    """Vouch for the types a version needs beyond the reviewed list (a custom transformer), or
    with --code for the code a pickled or MLflow-format model runs: serving, batch scoring
    and the retraining loop then load it. Maintainers; audited."""
    registry = cli_context(ctx).services.registry
    if code:
        if types:
            raise typer.BadParameter("--code trusts the whole version; name no types with it")
        marked = registry.trust_code(name, version, not off)
        Console().print(f"{marked.uri} {'no longer runs' if off else 'runs'} the code its files carry")
        return
    trusted = registry.trust_types(name, version, types or [])
    listed = trusted.tags.get(TRUSTED_TYPES_TAG) or "none"
    Console().print(f"{trusted.uri} loads trusting: {listed}")


@app.command()
def delete(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    version: int | None = typer.Argument(None, help="Only this version."),
) -> None:
    """Delete a model or one version (hidden, refused while an alias points at it)."""
    registry = cli_context(ctx).services.registry
    if version is None:
        registry.delete_model(name)
        Console().print(f"deleted model {name}")
    else:
        registry.delete_version(name, version)
        Console().print(f"deleted version {version} of {name}")


@app.command()
def protect(
    ctx: typer.Context,
    name: str = typer.Argument(...),
    alias: str = typer.Argument(..., help="e.g. champion"),
    off: bool = typer.Option(False, "--off", help="Lift the protection."),
) -> None:
    """Require a second person's approval for every move of this alias (four eyes)."""
    registry = cli_context(ctx).services.registry
    if off:
        registry.unprotect_alias(name, alias)
    else:
        registry.protect_alias(name, alias)
    Console().print(f"@{alias} of {name} is {'no longer ' if off else ''}protected")


@app.command()
def requests(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Only this model's requests."),
    pending: bool = typer.Option(False, "--pending", help="Only those awaiting a decision."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Requests to move protected aliases, newest first."""
    found = cli_context(ctx).services.registry.alias_requests(name, "pending" if pending else None)
    if as_json:
        print_json(found)
        return
    table = Table("id", "model", "alias", "to version", "asked by", "asked", "reason", "status", "decided by")
    for r in found:
        table.add_row(
            str(r.id), r.model, f"@{r.alias}", str(r.version), r.requested_by, when(r.requested_at), r.reason,
            r.status, r.decided_by or "",
        )  # fmt: skip
    Console(soft_wrap=True).print(table)


@app.command()
def approve(
    ctx: typer.Context, request_id: int = typer.Argument(...), reason: str = typer.Option("")
) -> None:
    """Approve someone else's request: the alias moves now."""
    event = cli_context(ctx).services.registry.approve(request_id, reason)
    Console().print(f"@{event.alias} of {event.model} -> version {event.to_version}")


@app.command()
def reject(ctx: typer.Context, request_id: int = typer.Argument(...), reason: str = typer.Option("")) -> None:
    """Reject someone else's request: the alias stays."""
    request = cli_context(ctx).services.registry.reject(request_id, reason)
    Console().print(f"request {request.id} rejected; @{request.alias} of {request.model} stays")


def _policy(path: Path | None) -> Policy | None:
    from loopline.registry.policy import Policy

    return None if path is None else Policy.load(path)
