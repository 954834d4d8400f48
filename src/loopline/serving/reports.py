"""Live comparisons of a deployment's arms, from its prediction log (DuckDB over Parquet).

For canaries and A/B tests: per arm, requests, error rate, latency and, once feedback
labels arrived, accuracy (or mean absolute error), each with a 95% confidence interval;
a significance test between two arms; and a sample-ratio-mismatch check that warns when
the observed split is off the configured weights (the split itself is then suspect).
For shadows: how often the shadow agrees with the primary, and their accuracies.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from loopline.artifacts.tables import TableArea
from loopline.serving.policy import TrafficPolicy
from loopline.serving.predlog import ERRORS, FEEDBACK, PREDICTIONS

# What the queries need of each table when nothing was logged yet.
_ID, _ARM, _AT = ("request_id", pa.string()), ("arm", pa.string()), ("at_ms", pa.int64())
EMPTY = {
    PREDICTIONS: pa.schema(
        [_ID, ("row", pa.int32()), _ARM, ("version", pa.int32()), ("latency_ms", pa.float64()),
         ("prediction", pa.float64()), _AT]
    ),
    FEEDBACK: pa.schema([_ID, ("row", pa.int32()), ("label", pa.float64()), _AT]),
    ERRORS: pa.schema([_ID, _ARM, ("version", pa.int32()), _AT]),
}  # fmt: skip
SRM_ALPHA = 0.001  # a split this unlikely under the configured weights is called a mismatch
Z95 = 1.959964


def wilson(successes: float, n: float) -> tuple[float, float]:
    """95% Wilson interval of a proportion."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return (centre - half, centre + half)


def mean_interval(mean: float, sd: float, n: float) -> tuple[float, float]:
    if n < 2 or math.isnan(sd):
        return (math.nan, math.nan)
    half = Z95 * sd / math.sqrt(n)
    return (mean - half, mean + half)


@dataclass
class ArmReport:
    arm: str
    versions: list[int]
    requests: int
    errors: int
    error_rate: float
    error_rate_ci: tuple[float, float]
    latency_ms_mean: float
    latency_ms_ci: tuple[float, float]
    latency_ms_p95: float
    labelled: int = 0
    accuracy: float | None = None  # classification
    accuracy_ci: tuple[float, float] | None = None
    mae: float | None = None  # regression
    mae_ci: tuple[float, float] | None = None


@dataclass
class DeploymentReport:
    deployment: str
    policy: str
    arms: list[ArmReport] = field(default_factory=list)
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    sample_ratio: dict[str, Any] | None = None
    shadow: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _connect(tables: TableArea, deployment: str, since_ms: int | None) -> Any:
    """DuckDB with the deployment's log tables, cut to rows since `since_ms`."""
    import duckdb
    import pyarrow.compute as pc

    con = duckdb.connect()
    for name in (PREDICTIONS, FEEDBACK, ERRORS):
        data = tables.read(name, [("deployment", deployment)])
        if since_ms is not None and data.num_rows:
            data = data.filter(pc.greater_equal(data["at_ms"], since_ms))
        if data.num_rows == 0:
            data = EMPTY[name].empty_table()
        con.register(name, data)
    return con


def deployment_report(
    tables: TableArea, deployment: str, policy: TrafficPolicy, since_ms: int | None = None
) -> DeploymentReport:
    con = _connect(tables, deployment, since_ms)
    report = DeploymentReport(deployment, policy.describe())
    answering = [a.name for a in policy.answering_arms]
    classification = any(
        c.startswith("proba.") for c in con.execute(f"describe {PREDICTIONS}").df()["column_name"]
    )
    for arm in answering:
        report.arms.append(_arm_report(con, arm, classification))
    if len(report.arms) == 2:
        report.comparisons = _compare(con, report.arms, classification)
    if policy.kind in ("canary", "ab"):
        report.sample_ratio = _sample_ratio(report.arms, policy)
        if report.sample_ratio["mismatch"]:
            ratio = report.sample_ratio
            report.warnings.append(
                f"sample ratio mismatch: observed {ratio['observed']} against configured shares "
                f"{ratio['expected_shares']} (p = {ratio['p_value']:.2g}); the arms may not be comparable"
            )
    if policy.shadow_arm is not None:
        report.shadow = _shadow(con, policy.answering_arms[0].name, policy.shadow_arm.name, classification)
    return report


def _arm_report(con: Any, arm: str, classification: bool) -> ArmReport:
    row = con.execute(
        f"""select count(*), avg(latency_ms), stddev_samp(latency_ms), quantile_cont(latency_ms, 0.95),
                   list(distinct version order by version)
            from {PREDICTIONS} where arm = ? and row = 0""",
        [arm],
    ).fetchone()
    requests = int(row[0])
    errors = int(con.execute(f"select count(*) from {ERRORS} where arm = ?", [arm]).fetchone()[0])
    attempts = requests + errors
    mean = float(row[1]) if row[1] is not None else math.nan
    sd = float(row[2]) if row[2] is not None else math.nan
    report = ArmReport(
        arm=arm,
        versions=[int(v) for v in (row[4] or [])],
        requests=requests,
        errors=errors,
        error_rate=errors / attempts if attempts else math.nan,
        error_rate_ci=wilson(errors, attempts),
        latency_ms_mean=mean,
        latency_ms_ci=mean_interval(mean, sd, requests),
        latency_ms_p95=float(row[3]) if row[3] is not None else math.nan,
    )
    labelled = _labelled(con, arm, classification)
    report.labelled = len(labelled)
    if classification and len(labelled):
        report.accuracy = float(labelled.mean())
        report.accuracy_ci = wilson(float(labelled.sum()), len(labelled))
    elif len(labelled):
        report.mae = float(labelled.mean())
        report.mae_ci = mean_interval(report.mae, float(labelled.std(ddof=1)), len(labelled))
    return report


def _labelled(con: Any, arm: str, classification: bool) -> np.ndarray:
    """Per labelled row: 1/0 correct (classification) or the absolute error (regression)."""
    expression = (
        "cast(coalesce(try_cast(p.prediction as double) = try_cast(f.label as double), "
        "cast(p.prediction as varchar) = cast(f.label as varchar)) as double)"
        if classification
        else "abs(try_cast(p.prediction as double) - try_cast(f.label as double))"
    )
    query = f"""select {expression} as value from {PREDICTIONS} p
                join (select distinct on (request_id, row) * from {FEEDBACK} order by at_ms desc) f
                  on p.request_id = f.request_id and cast(p.row as bigint) = cast(f.row as bigint)
                where p.arm = ?"""
    values = np.asarray(con.execute(query, [arm]).fetchnumpy()["value"], dtype=float)
    known: np.ndarray = values[~np.isnan(values)]
    return known


def _compare(con: Any, arms: list[ArmReport], classification: bool) -> list[dict[str, Any]]:
    from scipy import stats

    a, b = arms
    results: list[dict[str, Any]] = []
    latencies = [
        con.execute(
            f"select latency_ms from {PREDICTIONS} where arm = ? and row = 0", [arm.arm]
        ).fetchnumpy()["latency_ms"]
        for arm in arms
    ]
    if min(len(x) for x in latencies) >= 2:
        test = stats.ttest_ind(latencies[0], latencies[1], equal_var=False)
        results.append(
            {
                "metric": "latency_ms",
                "test": "welch t",
                "difference": a.latency_ms_mean - b.latency_ms_mean,
                "p_value": float(test.pvalue),
            }
        )
    if a.requests + a.errors and b.requests + b.errors:
        results.append(
            _two_proportions("error_rate", a.errors, a.requests + a.errors, b.errors, b.requests + b.errors)
        )
    if classification and a.accuracy is not None and b.accuracy is not None:
        results.append(
            _two_proportions(
                "accuracy", a.accuracy * a.labelled, a.labelled, b.accuracy * b.labelled, b.labelled
            )
        )
    elif not classification and a.labelled >= 2 and b.labelled >= 2:
        left, right = (_labelled(con, arm.arm, False) for arm in arms)
        test = stats.ttest_ind(left, right, equal_var=False)
        results.append(
            {
                "metric": "mae",
                "test": "welch t",
                "difference": float(left.mean() - right.mean()),
                "p_value": float(test.pvalue),
            }
        )
    for result in results:
        result["between"] = [a.arm, b.arm]
        result["significant"] = float(result["p_value"]) < 0.05
    return results


def _two_proportions(metric: str, x1: float, n1: float, x2: float, n2: float) -> dict[str, Any]:
    from scipy import stats

    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p_value = 1.0 if se == 0 else float(2 * stats.norm.sf(abs(p1 - p2) / se))
    return {"metric": metric, "test": "two-proportion z", "difference": p1 - p2, "p_value": p_value}


def _sample_ratio(arms: list[ArmReport], policy: TrafficPolicy) -> dict[str, Any]:
    from scipy import stats

    weights = {a.name: a.weight for a in policy.answering_arms}
    total_weight = sum(weights.values())
    observed = {arm.arm: arm.requests + arm.errors for arm in arms}
    total = sum(observed.values())
    expected = [total * weights[name] / total_weight for name in observed]
    p_value = float(stats.chisquare(list(observed.values()), expected).pvalue) if total else 1.0
    return {
        "observed": observed,
        "expected_shares": {name: weights[name] / total_weight for name in observed},
        "p_value": p_value,
        "mismatch": bool(total and p_value < SRM_ALPHA),
    }


def _shadow(con: Any, primary: str, shadow: str, classification: bool) -> dict[str, Any]:
    pairs = con.execute(
        f"""select p.prediction as primary_prediction, s.prediction as shadow_prediction, f.label
            from {PREDICTIONS} p join {PREDICTIONS} s
              on p.request_id = s.request_id and p.row = s.row and s.arm = ?
            left join (select distinct on (request_id, row) * from {FEEDBACK} order by at_ms desc) f
              on p.request_id = f.request_id and cast(p.row as bigint) = cast(f.row as bigint)
            where p.arm = ?""",
        [shadow, primary],
    ).df()
    result: dict[str, Any] = {"primary": primary, "shadow": shadow, "pairs": len(pairs)}
    if pairs.empty:
        return result
    first, second = pairs["primary_prediction"].to_numpy(), pairs["shadow_prediction"].to_numpy()
    if classification:
        agree = first.astype(str) == second.astype(str)
        result["agreement"] = float(agree.mean())
        result["agreement_ci"] = wilson(float(agree.sum()), len(agree))
    else:
        result["mean_abs_difference"] = float(np.abs(first.astype(float) - second.astype(float)).mean())
    labelled = pairs.dropna(subset=["label"])
    if classification and len(labelled):
        from scipy.stats import binomtest

        truth = labelled["label"].astype(str).to_numpy()
        primary_right = labelled["primary_prediction"].astype(str).to_numpy() == truth
        shadow_right = labelled["shadow_prediction"].astype(str).to_numpy() == truth
        wins, losses = int((shadow_right & ~primary_right).sum()), int((~shadow_right & primary_right).sum())
        result.update(
            labelled=len(labelled),
            primary_accuracy=float(primary_right.mean()),
            shadow_accuracy=float(shadow_right.mean()),
            mcnemar_p_value=1.0 if wins + losses == 0 else float(binomtest(wins, wins + losses, 0.5).pvalue),
        )
    return result
