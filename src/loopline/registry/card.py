"""Model cards, generated from what the registry knows: purpose, lineage, data, metrics,
slices, gates and limitations. Markdown, and HTML rendered from it."""

from __future__ import annotations

import base64
import html
from typing import Any

from loopline.core.clock import ms_to_datetime
from loopline.registry.evaluation import EvaluationService
from loopline.services import Lineage, Registry, Tracking


def _when(ms: int) -> str:
    return ms_to_datetime(ms).strftime("%Y-%m-%d %H:%M UTC")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return []
    cells = [[str(c).replace("|", "\\|") for c in row] for row in rows]
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in cells),
        "",
    ]


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def model_card(
    registry: Registry,
    evaluations: EvaluationService,
    tracking: Tracking,
    lineage: Lineage,
    name: str,
    version: int,
    plots: bool = False,
) -> str:
    """The card as Markdown; with `plots`, each evaluation's plots (ROC, confusion matrix...)
    are embedded as PNG data URIs, which the HTML card shows."""
    model = registry.get_model(name)
    mv = registry.get_version(model.name, version)
    description = mv.model_json
    lines = [f"# Model card: {model.display_name} version {mv.version}", ""]
    lines += ["## Purpose", "", model.description or "_No description of the model was given._", ""]
    if mv.description:
        lines += [mv.description, ""]
    lines += _table(
        ["", ""],
        [
            ["URI", f"`{mv.uri}`"],
            ["status", mv.status.value],
            ["flavor / task", f"{mv.flavor} / {mv.task or 'unspecified'}"],
            ["aliases", ", ".join(f"@{a}" for a in mv.aliases) or "none"],
            ["registered", f"{_when(mv.created_at)} by {mv.created_by}"],
            ["size", f"{mv.size:,} bytes"],
            ["content hash", f"`sha256:{mv.digest}`"],
        ],
    )

    lines += ["## Lineage", ""]
    graph = lineage.graph(("model_version", mv.digest or ""))
    if mv.run_id is not None:
        run = tracking.get_run(mv.run_id)
        commit = run.source.git_commit or "unknown"
        dirty = " (uncommitted changes)" if run.source.git_dirty else ""
        lines += [f"Trained in run **{run.name}** (`{run.id}`), code at commit `{commit}`{dirty}.", ""]
    roles = {"input_to": "trained on", "evaluated": "evaluated on"}
    datasets = sorted(
        {
            (roles.get(e.relation, e.relation), graph.nodes[(e.src_kind, e.src_key)])
            for e in graph.edges
            if e.src_kind == "dataset"
        },
        key=lambda item: (item[0] != "trained on", item[1].label),
    )
    lines += _table(
        ["role", "dataset", "content hash"], [[r, d.label, f"`{d.key[:16]}…`"] for r, d in datasets]
    )
    if mv.run_id is None and not datasets:
        lines += ["_No training run or dataset was recorded._", ""]

    lines += ["## Data the model takes", ""]
    signature = description.get("signature") or {}
    columns = (signature.get("inputs") or {}).get("columns")
    if columns:
        lines += _table(
            ["column", "type", "missing values"],
            [[c["name"], c["type"], "allowed" if c["nullable"] else "refused"] for c in columns],
        )
    else:
        lines += ["_No tabular signature was recorded._", ""]

    lines += ["## Metrics", ""]
    lines += _table(["metric", "value"], [[k, _number(v)] for k, v in sorted(mv.metrics.items())])
    history = evaluations.list(model.name, mv.version)
    latest = {e.dataset_digest: e for e in history}  # the newest evaluation per dataset
    for evaluation in latest.values():
        lines += [
            f"### Evaluation {evaluation.id} on {evaluation.dataset_name} ({_when(evaluation.created_at)})",
            "",
        ]
        lines += _table(["metric", "value"], [[k, _number(v)] for k, v in evaluation.metrics.items()])
        latency = evaluation.latency
        if latency:
            lines += [
                f"Latency: {latency['row_p50_ms']:.2f} ms per row (p50), "
                f"{latency['row_p95_ms']:.2f} ms (p95); {latency['batch_us_per_row']:.1f} µs per row "
                f"in a batch of {int(latency['batch_rows'])}.",
                "",
            ]
        if plots:
            for plot in sorted(evaluation.artifacts):
                encoded = base64.b64encode(evaluations.plot(evaluation, plot)).decode()
                lines += [f"![{plot}](data:image/png;base64,{encoded})", ""]
        for column, slices in evaluation.slices.items():
            keys = sorted({k for values in slices.values() for k in values if k != "count"})
            lines += [f"Slices by **{column}**:", ""]
            lines += _table(
                [column, "rows", *keys],
                [
                    [label, int(v["count"]), *(_number(v.get(k, "")) for k in keys)]
                    for label, v in slices.items()
                ],
            )
    if not history:
        lines += ["_This version has not been evaluated on held-out data._", ""]

    lines += ["## Promotion gates", ""]
    events = [e for e in registry.alias_history(model.name) if e.to_version == mv.version]
    for event in events:
        verdict = "forced" if event.forced else "passed"
        lines += [f"@{event.alias}: {verdict} on {_when(event.at)} by {event.actor}: {event.reason}", ""]
        gates = (event.report or {}).get("gates", [])
        lines += _table(
            ["gate", "result", "evidence"],
            [[g["gate"], "pass" if g["passed"] else "FAIL", g["message"]] for g in gates],
        )
    if not events:
        lines += ["_No alias has been moved to this version._", ""]

    lines += ["## Limitations", ""]
    limitations = [mv.tags.get("limitations") or model.tags.get("limitations") or ""]
    if mv.flavor == "python_function":
        limitations.append("Stored as a pickle: loading runs its code, so it loads only with trust=True.")
    needing_trust = description.get("options", {}).get("types_needing_trust")
    if needing_trust:
        limitations.append(f"Loading needs these types trusted explicitly: {', '.join(needing_trust)}.")
    if not history:
        limitations.append("No evaluation on held-out data is recorded.")
    lines += [f"- {item}" for item in limitations if item] or ["- None recorded."]
    lines += ["", "## Requirements", "", *(f"- `{r}`" for r in description.get("requirements", [])), ""]
    return "\n".join(lines)


def card_html(markdown: str, title: str) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    style = (
        "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
        "table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem}"
        "th{background:#f4f4f4}code{background:#f4f4f4;padding:0 .2rem}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{body}</body></html>"
    )
