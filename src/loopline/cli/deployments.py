"""`loopline deployments ...`"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from loopline.cli.context import cli_context, print_json
from loopline.cli.render import when
from loopline.core.errors import InvalidInput
from loopline.core.personal_data import LogPolicy
from loopline.core.traffic import FeatureDeclaration, TrafficPolicy

app = typer.Typer(
    help="Deployments: named endpoints with traffic policies over model versions.", no_args_is_help=True
)
JSON = typer.Option(False, "--json", help="Print JSON.")
MODEL = typer.Option(None, "--model", help="The model URI that answers (the stable or primary one).")
CANARY = typer.Option(None, "--canary", help="A second model URI taking --percent of the traffic.")
PERCENT = typer.Option(10.0, "--percent", help="Share of the canary, in percent.")
SHADOW = typer.Option(None, "--shadow", help="A model URI that answers every request in the shadow.")
ARM = typer.Option(None, "--arm", help="A/B arm NAME=URI[:WEIGHT] (repeatable).")
KEY = typer.Option(None, "--key", help="A/B stickiness: field:NAME or header:NAME.")
REASON = typer.Option("", "--reason", help="Why; recorded with the revision.")
EXTRA_FIELDS = typer.Option(
    "refuse", "--extra-fields", help="Request fields the model does not take: refuse (422) or ignore."
)
FEATURE = typer.Option(
    None,
    "--feature",
    help="An online feature joined to every request by its entity keys: view:feature, view@N:feature "
    "or view:* (repeatable).",
)
FEATURE_DEFAULT = typer.Option(
    None,
    "--feature-default",
    help="NAME=VALUE: the value of feature NAME for an entity without one (repeatable; "
    "without a default such a request is refused).",
)
FULL_FEATURE_NAMES = typer.Option(
    False, "--full-feature-names", help="Name the feature columns view__feature (as training sets do)."
)
LOG_DROP = typer.Option(
    None, "--log-drop", help="An input column the prediction log leaves out (repeatable)."
)
LOG_MASK = typer.Option(
    None, "--log-mask", help="An input column the prediction log masks: text as ***, else null (repeatable)."
)
LOG_HASH = typer.Option(
    None,
    "--log-hash",
    help="An input column the prediction log stores as HMAC-SHA256 under LOOPLINE_PII_HASH_KEY (repeatable).",
)


def log_from_options(
    drop: list[str] | None, mask: list[str] | None, hash_: list[str] | None
) -> LogPolicy | None:
    """The log treatments the options give, None when they give none."""
    if not (drop or mask or hash_):
        return None
    return LogPolicy(tuple(drop or ()), tuple(mask or ()), tuple(hash_ or ()))


def features_from_options(
    refs: list[str] | None, defaults: list[str] | None, full_names: bool
) -> FeatureDeclaration | None:
    """The declaration the options give, None when they give no feature."""
    if not refs:
        if defaults or full_names:
            raise InvalidInput("--feature-default and --full-feature-names go with --feature view:feature")
        return None
    values = {}
    for spec in defaults or []:
        name, equals, text = spec.partition("=")
        if not equals or not name:
            raise InvalidInput(f"--feature-default {spec!r}: write NAME=VALUE")
        values[name.strip()] = _scalar(text)
    return FeatureDeclaration.of(refs, values, full_names=full_names)


def _scalar(text: str) -> object:
    """A JSON number or boolean as one (0.5, 3, true), anything else as text."""
    import json

    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, bool | int | float | str) else text


def policy_from_options(
    model: str | None,
    canary: str | None,
    percent: float,
    shadow: str | None,
    arms: list[str] | None,
    key: str | None,
) -> TrafficPolicy:
    if arms:
        if model or canary or shadow:
            raise InvalidInput(
                "--arm describes an A/B test on its own; leave out --model, --canary and --shadow"
            )
        parsed = []
        for spec in arms:
            name, _, rest = spec.partition("=")
            target, _, weight = rest.rpartition(":") if rest.count(":") > 1 else (rest, "", "1")
            if not name or not target:
                raise InvalidInput(f"--arm {spec!r}: write NAME=URI or NAME=URI:WEIGHT")
            try:
                parsed.append((name, target, float(weight or 1)))
            except ValueError:
                raise InvalidInput(f"--arm {spec!r}: the weight {weight!r} is not a number") from None
        if key is None:
            raise InvalidInput("an A/B test needs --key field:NAME or --key header:NAME")
        return TrafficPolicy.ab(parsed, key)
    if model is None:
        raise InvalidInput("say which model answers: --model models:/NAME@ALIAS (or --arm for an A/B test)")
    if canary and shadow:
        raise InvalidInput("choose a canary or a shadow, not both")
    if canary:
        return TrafficPolicy.canary(model, canary, percent)
    if shadow:
        return TrafficPolicy.shadow(model, shadow)
    return TrafficPolicy.single(model)


@app.command()
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name (the endpoint /v1/deployments/NAME)."),
    model: str | None = MODEL,
    canary: str | None = CANARY,
    percent: float = PERCENT,
    shadow: str | None = SHADOW,
    arm: list[str] | None = ARM,
    key: str | None = KEY,
    reason: str = REASON,
    extra_fields: str = EXTRA_FIELDS,
    feature: list[str] | None = FEATURE,
    feature_default: list[str] | None = FEATURE_DEFAULT,
    full_feature_names: bool = FULL_FEATURE_NAMES,
    log_drop: list[str] | None = LOG_DROP,
    log_mask: list[str] | None = LOG_MASK,
    log_hash: list[str] | None = LOG_HASH,
    json_: bool = JSON,
) -> None:
    """Create a deployment."""
    service = cli_context(ctx).services.deployments
    policy = (
        policy_from_options(model, canary, percent, shadow, arm, key)
        .with_features(features_from_options(feature, feature_default, full_feature_names))
        .with_log(log_from_options(log_drop, log_mask, log_hash))
    )
    deployment = service.create(name, policy, reason, extra_fields)
    if json_:
        print_json(deployment)
    else:
        Console().print(f"created {deployment.name}: {service.policy(deployment.name).describe()}")


@app.command("extra-fields")
def extra_fields_(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name."),
    rule: str = typer.Argument(..., help="refuse (422) or ignore request fields the model does not take."),
    reason: str = REASON,
) -> None:
    """Refuse or ignore request fields the deployment's models do not take, whatever its policy."""
    deployment = cli_context(ctx).services.deployments.set_extra_fields(name, rule, reason)
    Console().print(f"{deployment.name}: fields its model does not take are {deployment.extra_fields}d")


@app.command("list")
def list_(ctx: typer.Context, json_: bool = JSON) -> None:
    """List deployments."""
    service = cli_context(ctx).services.deployments
    found = service.list_all()
    if json_:
        print_json(found)
        return
    table = Table("name", "revision", "policy", "updated (UTC)")
    for d in found:
        table.add_row(
            d.name,
            str(d.revision),
            TrafficPolicy.from_dict(d.policy).describe(),
            when(d.updated_at, compact=True),
        )
    Console().print(table)


@app.command()
def show(
    ctx: typer.Context, name: str = typer.Argument(..., help="Deployment name."), json_: bool = JSON
) -> None:
    """A deployment: its policy, the versions it serves now, and its history."""
    service = cli_context(ctx).services.deployments
    deployment = service.get(name)
    policy = service.policy(name)
    serving = {arm: version.uri for arm, version in service.resolve(policy).items()}
    history = service.revisions(name)
    if json_:
        print_json({"deployment": deployment, "serving": serving, "revisions": history})
        return
    console = Console()
    console.print(f"[bold]{deployment.name}[/bold] revision {deployment.revision}: {policy.describe()}")
    console.print(f"  fields its model does not take: {deployment.extra_fields}d")
    if policy.declared_features is not None:
        declared = policy.declared_features
        console.print(f"  online features: {', '.join(declared.refs)}")
        for column, value in declared.defaults:
            console.print(f"    default {column} = {value!r}")
    if policy.log_treatments is not None:
        console.print(f"  prediction {policy.log_treatments.describe()}")
    for arm, uri in serving.items():
        console.print(f"  {arm} -> {uri}")
    table = Table("revision", "when (UTC)", "by", "policy", "reason", title="history")
    for r in history:
        table.add_row(
            str(r.revision),
            when(r.at, compact=True),
            r.actor,
            TrafficPolicy.from_dict(r.policy).describe(),
            r.reason,
        )
    console.print(table)


@app.command("set-traffic")
def set_traffic(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name."),
    model: str | None = MODEL,
    canary: str | None = CANARY,
    percent: float = PERCENT,
    shadow: str | None = SHADOW,
    arm: list[str] | None = ARM,
    key: str | None = KEY,
    reason: str = REASON,
    feature: list[str] | None = FEATURE,
    feature_default: list[str] | None = FEATURE_DEFAULT,
    full_feature_names: bool = FULL_FEATURE_NAMES,
    no_features: bool = typer.Option(False, "--no-features", help="Stop joining online features."),
    log_drop: list[str] | None = LOG_DROP,
    log_mask: list[str] | None = LOG_MASK,
    log_hash: list[str] | None = LOG_HASH,
    log_everything: bool = typer.Option(
        False, "--log-everything", help="Stop dropping, masking or hashing logged inputs."
    ),
) -> None:
    """Change the traffic policy; running servers follow within seconds. Without --feature the
    online features declared now stay; --no-features removes them. Without --log-drop,
    --log-mask or --log-hash the log's treatments stay; --log-everything removes them."""
    service = cli_context(ctx).services.deployments
    declared = features_from_options(feature, feature_default, full_feature_names)
    if no_features:
        if declared is not None:
            raise InvalidInput("choose --feature or --no-features, not both")
        declared = FeatureDeclaration(())
    treated = log_from_options(log_drop, log_mask, log_hash)
    if log_everything:
        if treated is not None:
            raise InvalidInput("choose --log-drop/--log-mask/--log-hash or --log-everything, not both")
        treated = LogPolicy()
    policy = (
        policy_from_options(model, canary, percent, shadow, arm, key)
        .with_features(declared)
        .with_log(treated)
    )
    changed = service.set_traffic(name, policy, reason)
    Console().print(f"{changed.name} revision {changed.revision}: {service.policy(name).describe()}")


@app.command()
def rollback(
    ctx: typer.Context, name: str = typer.Argument(..., help="Deployment name."), reason: str = REASON
) -> None:
    """Go back to the previous traffic policy (recorded as a new revision)."""
    service = cli_context(ctx).services.deployments
    changed = service.rollback(name, reason)
    Console().print(f"{changed.name} revision {changed.revision}: {service.policy(name).describe()}")


@app.command()
def delete(ctx: typer.Context, name: str = typer.Argument(..., help="Deployment name.")) -> None:
    """Delete a deployment (its history and logs stay)."""
    cli_context(ctx).services.deployments.delete(name)
    Console().print(f"deleted deployment {name}")


@app.command()
def export(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name."),
    to: Path = typer.Option(..., "--to", help="Folder to write the Dockerfile and manifests into."),
    image: str = typer.Option("loopline-serving:latest", help="Container image the manifests run."),
    replicas: int = typer.Option(2, help="Replicas to start with."),
    max_replicas: int = typer.Option(10, help="The autoscaler's ceiling."),
) -> None:
    """Write a Dockerfile and Kubernetes manifests that serve the deployment."""
    from loopline.serving.export import export_deployment

    service = cli_context(ctx).services.deployments
    written = export_deployment(
        service.get(name), to, image=image, replicas=replicas, max_replicas=max_replicas
    )
    for path in written:
        Console().print(f"wrote {path}")


@app.command()
def report(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name."),
    since_hours: float | None = typer.Option(None, help="Only the last hours of traffic."),
    json_: bool = JSON,
) -> None:
    """Per-arm live metrics with confidence intervals, significance and a sample-ratio check."""
    import time

    since = None if since_hours is None else int((time.time() - since_hours * 3600) * 1000)
    result = cli_context(ctx).services.deployments.report(name, since)
    if json_:
        print_json(result.to_dict())
        return
    console = Console()
    console.print(f"[bold]{result.deployment}[/bold]: {result.policy}")
    table = Table(
        "arm",
        "versions",
        "requests",
        "error rate (95% CI)",
        "latency ms (95% CI)",
        "p95 ms",
        "labelled",
        "quality (95% CI)",
    )
    for arm in result.arms:
        quality = ""
        if arm.accuracy is not None and arm.accuracy_ci is not None:
            quality = f"accuracy {arm.accuracy:.3f} ({arm.accuracy_ci[0]:.3f}-{arm.accuracy_ci[1]:.3f})"
        elif arm.mae is not None and arm.mae_ci is not None:
            quality = f"MAE {arm.mae:.4g} ({arm.mae_ci[0]:.4g}-{arm.mae_ci[1]:.4g})"
        answered = arm.requests > 0  # an arm nobody asked yet has no rates to show
        table.add_row(
            arm.arm,
            ",".join(map(str, arm.versions)),
            str(arm.requests),
            f"{arm.error_rate:.3%} ({arm.error_rate_ci[0]:.3%}-{arm.error_rate_ci[1]:.3%})"
            if answered
            else "-",
            f"{arm.latency_ms_mean:.2f} ({arm.latency_ms_ci[0]:.2f}-{arm.latency_ms_ci[1]:.2f})"
            if answered
            else "-",
            f"{arm.latency_ms_p95:.2f}" if answered else "-",
            str(arm.labelled),
            quality,
        )
    console.print(table)
    for comparison in result.comparisons:
        verdict = "significant" if comparison["significant"] else "not significant"
        first, second = comparison["between"]
        console.print(
            f"{comparison['metric']}: {first} - {second} = {comparison['difference']:.4g}, "
            f"{comparison['test']} p = {comparison['p_value']:.3g} ({verdict})"
        )
    if result.shadow is not None:
        console.print(f"shadow: {result.shadow}")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
