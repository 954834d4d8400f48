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

from loopline.artifacts.tables import TableArea
from loopline.core.traffic import TrafficPolicy
from loopline.predictions.log import ERRORS, PREDICTIONS, PROBA_PREFIX
from loopline.predictions.reader import LABELS, LABELS_JOIN, LogReader

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
        """The report as JSON values (NaN stays a float: JSON encoders write it as null)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeploymentReport:
        """The report `to_dict` wrote (as a server sends it, NaN as null)."""
        arms = [ArmReport(**{k: _revived(k, v) for k, v in a.items()}) for a in data["arms"]]
        return cls(
            data["deployment"], data["policy"], arms, data["comparisons"], data["sample_ratio"],
            data["shadow"], data["warnings"],
        )  # fmt: skip


_ALWAYS_FLOAT = {"error_rate", "latency_ms_mean", "latency_ms_p95"}  # NaN when unknown; None elsewhere


def _revived(field_name: str, value: Any) -> Any:
    """An arm's field from JSON: null back to NaN where the field is always a number."""
    if field_name.endswith("_ci") and value is not None:
        return tuple(math.nan if v is None else v for v in value)
    return math.nan if value is None and field_name in _ALWAYS_FLOAT else value


def deployment_report(
    tables: TableArea, deployment: str, policy: TrafficPolicy, since_ms: int | None = None
) -> DeploymentReport:
    """The arms of `deployment` under `policy` compared on its log since `since_ms` (all of
    it by default). Every figure is an aggregate DuckDB computes while it streams the log, so
    memory stays bounded whatever the log's size."""
    con = LogReader(tables, deployment, since_ms).connect()
    try:
        return _report(con, deployment, policy)
    finally:
        con.close()


def _report(con: Any, deployment: str, policy: TrafficPolicy) -> DeploymentReport:
    report = DeploymentReport(deployment, policy.describe())
    columns = con.execute(f"SELECT * FROM {PREDICTIONS} LIMIT 0").description
    classification = any(c[0].startswith(PROBA_PREFIX) for c in columns)
    for arm in policy.answering_arms:
        report.arms.append(_arm_report(con, arm.name, classification))
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
        f"""SELECT count(*), avg(latency_ms), stddev_samp(latency_ms), approx_quantile(latency_ms, 0.95),
                   list(DISTINCT version ORDER BY version)
            FROM {PREDICTIONS} WHERE arm = ? AND "row" = 0""",
        [arm],
    ).fetchone()
    requests = int(row[0])
    errors = int(con.execute(f"SELECT count(*) FROM {ERRORS} WHERE arm = ?", [arm]).fetchone()[0])
    attempts = requests + errors
    mean = _number(row[1])
    report = ArmReport(
        arm=arm,
        versions=[int(v) for v in (row[4] or [])],
        requests=requests,
        errors=errors,
        error_rate=errors / attempts if attempts else math.nan,
        error_rate_ci=wilson(errors, attempts),
        latency_ms_mean=mean,
        latency_ms_ci=mean_interval(mean, _number(row[2]), requests),
        latency_ms_p95=_number(row[3]),
    )
    labelled, value_mean, value_sd = _labelled(con, arm, classification)
    report.labelled = labelled
    if classification and labelled:
        report.accuracy = value_mean
        report.accuracy_ci = wilson(value_mean * labelled, labelled)
    elif labelled:
        report.mae = value_mean
        report.mae_ci = mean_interval(value_mean, value_sd, labelled)
    return report


def _number(value: Any) -> float:
    return float(value) if value is not None else math.nan


def _scored(classification: bool, side: str = "p") -> str:
    """Per labelled row of the answers aliased `side`: 1/0 correct (classification) or the
    absolute error (regression)."""
    if classification:
        return (
            f"CAST(coalesce(try_cast({side}.prediction AS DOUBLE) = try_cast(l.label AS DOUBLE), "
            f"lower(CAST({side}.prediction AS VARCHAR)) = lower(CAST(l.label AS VARCHAR))) AS DOUBLE)"
        )
    return f"abs(try_cast({side}.prediction AS DOUBLE) - try_cast(l.label AS DOUBLE))"


def _labelled(con: Any, arm: str, classification: bool) -> tuple[int, float, float]:
    """How many of the arm's rows have a (usable) label, and the mean and standard deviation
    of their scores."""
    found = con.execute(
        f"""SELECT count(value), avg(value), stddev_samp(value) FROM (
                SELECT {_scored(classification)} AS value FROM {PREDICTIONS} p
                JOIN {LABELS} l ON {LABELS_JOIN.format(p="p", l="l")} WHERE p.arm = ?
            )""",
        [arm],
    ).fetchone()
    return int(found[0]), _number(found[1]), _number(found[2])


def _compare(con: Any, arms: list[ArmReport], classification: bool) -> list[dict[str, Any]]:
    from scipy import stats

    a, b = arms
    results: list[dict[str, Any]] = []
    latency = [
        con.execute(
            f"""SELECT avg(latency_ms), stddev_samp(latency_ms), count(*) FROM {PREDICTIONS}
                WHERE arm = ? AND "row" = 0""",
            [arm.arm],
        ).fetchone()
        for arm in arms
    ]
    if min(n for _, _, n in latency) >= 2:
        test = stats.ttest_ind_from_stats(*latency[0], *latency[1], equal_var=False)
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
        (n1, mean1, sd1), (n2, mean2, sd2) = (_labelled(con, arm.arm, False) for arm in arms)
        test = stats.ttest_ind_from_stats(mean1, sd1, n1, mean2, sd2, n2, equal_var=False)
        results.append(
            {"metric": "mae", "test": "welch t", "difference": mean1 - mean2, "p_value": float(test.pvalue)}
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
    """How often the shadow agrees with the primary on the same rows and, on labelled rows,
    both accuracies and McNemar's exact test of their difference."""
    same = (
        "CAST(p.prediction AS VARCHAR) = CAST(s.prediction AS VARCHAR)"
        if classification
        else "abs(try_cast(p.prediction AS DOUBLE) - try_cast(s.prediction AS DOUBLE))"
    )
    right = (
        "coalesce(try_cast({side}.prediction AS DOUBLE) = try_cast(l.label AS DOUBLE), "
        "lower(CAST({side}.prediction AS VARCHAR)) = lower(CAST(l.label AS VARCHAR)))"
    )
    found = con.execute(
        f"""SELECT count(*), avg(CAST({same} AS DOUBLE)), sum(CAST({same} AS DOUBLE)),
                   count(l.label),
                   avg(CAST({right.format(side="p")} AS DOUBLE)),
                   avg(CAST({right.format(side="s")} AS DOUBLE)),
                   count(*) FILTER ({right.format(side="s")} AND NOT {right.format(side="p")}),
                   count(*) FILTER ({right.format(side="p")} AND NOT {right.format(side="s")})
            FROM {PREDICTIONS} p
            JOIN {PREDICTIONS} s ON p.request_id = s.request_id AND p."row" = s."row" AND p.at_ms = s.at_ms
                AND s.arm = ?
            LEFT JOIN {LABELS} l ON {LABELS_JOIN.format(p="p", l="l")}
            WHERE p.arm = ?""",
        [shadow, primary],
    ).fetchone()
    pairs, labelled = int(found[0]), int(found[3])
    result: dict[str, Any] = {"primary": primary, "shadow": shadow, "pairs": pairs}
    if not pairs:
        return result
    if classification:
        result["agreement"] = float(found[1])
        result["agreement_ci"] = wilson(float(found[2]), pairs)
    else:
        result["mean_abs_difference"] = float(found[1])
    if classification and labelled:
        from scipy.stats import binomtest

        wins, losses = int(found[6]), int(found[7])
        result.update(
            labelled=labelled,
            primary_accuracy=float(found[4]),
            shadow_accuracy=float(found[5]),
            mcnemar_p_value=1.0 if wins + losses == 0 else float(binomtest(wins, wins + losses, 0.5).pvalue),
        )
    return result


@dataclass
class ArmSamples:
    """One arm's raw evidence for a sequential verdict: latencies (warm-up left out),
    errors among attempts, and one score per labelled answer (1/0 correct, or the
    absolute error). For a shadow, `paired` holds shadow minus primary score on the
    labelled requests both answered."""

    arm: str
    latencies_ms: Any  # numpy array
    errors: int
    attempts: int
    scores: Any  # numpy array
    classification: bool
    paired: Any = None


def arm_samples(
    tables: TableArea,
    deployment: str,
    policy: TrafficPolicy,
    since_ms: int | None,
    *,
    warmup: int = 0,
    limit: int = 100_000,
) -> dict[str, ArmSamples]:
    """Per arm of `policy` (its shadow too), the evidence the loop judges, since `since_ms`.
    The first `warmup` answers of each arm (loading, cold caches) are left out of latency;
    at most the newest `limit` values of each kind are read, so memory stays bounded."""
    import numpy as np

    con = LogReader(tables, deployment, since_ms).connect()
    try:
        columns = con.execute(f"SELECT * FROM {PREDICTIONS} LIMIT 0").description
        classification = any(c[0].startswith(PROBA_PREFIX) for c in columns)
        arms = [a.name for a in policy.answering_arms]
        if policy.shadow_arm is not None:
            arms.append(policy.shadow_arm.name)
        found: dict[str, ArmSamples] = {}
        for arm in arms:
            latencies = con.execute(
                f"""SELECT latency_ms FROM (
                        SELECT latency_ms, at_ms, row_number() OVER (ORDER BY at_ms) AS k
                        FROM {PREDICTIONS} WHERE arm = ? AND "row" = 0)
                    WHERE k > ? ORDER BY at_ms DESC LIMIT ?""",
                [arm, warmup, limit],
            ).fetchnumpy()["latency_ms"]
            answered = int(
                con.execute(
                    f'SELECT count(*) FROM {PREDICTIONS} WHERE arm = ? AND "row" = 0', [arm]
                ).fetchone()[0]
            )
            errors = int(con.execute(f"SELECT count(*) FROM {ERRORS} WHERE arm = ?", [arm]).fetchone()[0])
            scores = con.execute(
                f"""SELECT {_scored(classification)} AS value FROM {PREDICTIONS} p
                    JOIN {LABELS} l ON {LABELS_JOIN.format(p="p", l="l")}
                    WHERE p.arm = ? AND value IS NOT NULL ORDER BY p.at_ms DESC LIMIT ?""",
                [arm, limit],
            ).fetchnumpy()["value"]
            found[arm] = ArmSamples(
                arm, np.asarray(latencies, float), errors, answered + errors, np.asarray(scores, float),
                classification,
            )  # fmt: skip
        if policy.shadow_arm is not None:
            primary, shadow = policy.answering_arms[0].name, policy.shadow_arm.name
            score_p, score_s = _scored(classification), _scored(classification, "s")
            diffs = con.execute(
                f"""SELECT ({score_s}) - ({score_p}) AS d FROM {PREDICTIONS} p
                    JOIN {PREDICTIONS} s ON p.request_id = s.request_id AND p."row" = s."row"
                        AND p.at_ms = s.at_ms AND s.arm = ?
                    JOIN {LABELS} l ON {LABELS_JOIN.format(p="p", l="l")}
                    WHERE p.arm = ? AND d IS NOT NULL ORDER BY p.at_ms DESC LIMIT ?""",
                [shadow, primary, limit],
            ).fetchnumpy()["d"]
            copy, original = found[shadow], found[primary]
            copy.paired = np.asarray(diffs, float)
            # A shadow's failures are logged nowhere: they are the requests it left unanswered.
            copy.errors = max(0, original.attempts - original.errors - copy.attempts)
            copy.attempts = original.attempts - original.errors
        return found
    finally:
        con.close()
