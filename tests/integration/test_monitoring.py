"""Monitors over a real deployment's prediction log: traffic through a real server, feedback
labels, windows read from the Parquet files, drift and performance values, alerts that open
once, notify, keep firing and resolve, and reports."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest

from loopline.artifacts import BlobStore
from loopline.core.errors import AlreadyExists, InvalidInput, NotFound
from loopline.core.traffic import TrafficPolicy
from loopline.monitoring.evaluation import monitored_values
from loopline.specs.monitor import MonitorSpec
from loopline.store import MetadataStore
from loopline.tracking.tracker import Tracker
from loopline.wiring.backends import Backends, local_owner
from tests.conftest import Invoke, wait_until
from tests.integration.serving_helpers import cancer_data, register_cancer_models, running_server

PREDICT = "/v1/deployments/cancer/predict"
FEEDBACK = "/v1/deployments/cancer/feedback"


class Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        Hook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Hook.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/secret-token"
    server.shutdown()


@pytest.fixture
def backends(store: MetadataStore, blobs: BlobStore, tracker: Tracker) -> Backends:
    register_cancer_models(tracker)
    features, target = cancer_data()
    backends = Backends(store, blobs)
    backends.services(local_owner()).datasets.register("cancer-train", features.assign(target=target))
    backends.services(local_owner()).deployments.create("cancer", TrafficPolicy.single("models:/cancer/1"))
    return backends


def send(backends: Backends, frame: pd.DataFrame, labels: pd.Series | None = None, bad: int = 0) -> None:
    with running_server(backends, ("cancer",)) as server, server.client() as client:
        feedback = []
        for start in range(0, len(frame), 10):  # requests of ten rows
            records = frame.iloc[start : start + 10].to_dict(orient="records")
            answer = client.post(PREDICT, json={"records": records}).json()
            if labels is not None:
                feedback += [
                    {"request_id": answer["request_id"], "row": i, "label": int(labels.iloc[start + i])}
                    for i in range(len(records))
                ]
        for _ in range(bad):
            refused = client.post(
                PREDICT, json={"records": [{**frame.iloc[0].to_dict(), "mean radius": "x"}]}
            )
            assert refused.status_code == 422
        if feedback:
            assert client.post(FEEDBACK, json={"labels": feedback}).status_code == 202


def test_a_monitor_sees_drift_performance_latency_and_errors(
    backends: Backends, webhook: str, tmp_path: Path
) -> None:
    monitors = backends.services(local_owner()).monitors
    spec = MonitorSpec.parse(
        {
            "window": {"rows": 300},
            "alerts": [
                {"name": "inputs drifted", "value": "drift.share", "above": 0.3},
                {"name": "accuracy dropped", "value": "perf.accuracy", "below": 0.8, "windows": 2},
            ],
            "notify": [
                {"type": "webhook", "url": webhook, "allow_private_network": True},
                {"type": "log", "path": str(tmp_path / "alerts.jsonl")},
            ],
        }
    )
    monitor = monitors.create("cancer-watch", "cancer", "cancer-train", target="target", spec=spec)
    assert monitor.deployment == "cancer"
    reference = monitors.reference(monitor)
    assert reference.classes == ["0", "1"] and reference.calibration is not None
    assert reference.metrics["accuracy"] > 0.9

    features, target = cancer_data()
    calm = features.sample(300, random_state=1)
    send(backends, calm, target.loc[calm.index], bad=2)
    first = monitors.run("cancer-watch")
    values = first.run.values
    assert first.run.rows == 300 and values["requests"] == 30 and values["errors.count"] == 2
    assert values["errors.rate"] == pytest.approx(2 / 32)
    assert values["latency.p95_ms"] is not None and values["latency.p95_ms"] > 0
    assert values["drift.share"] == 0.0 and values["drift.columns"] == 0
    assert values["perf.labelled"] == 300 and values["perf.accuracy"] > 0.9
    assert abs(values["est.accuracy"] - values["perf.accuracy"]) < 0.05
    assert values["drift.prediction"] is not None and values["drift.label"] is not None
    assert not first.opened and Hook.received == []
    assert first.run.details["warnings"] == []  # the log's own columns are not inputs
    assert set(values) <= set(monitored_values(reference))  # what alerts may name, in one place

    shifted = features.sample(300, random_state=2)
    for column in [c for c in features.columns if c.startswith("mean")]:
        shifted[column] = shifted[column] * 1.6  # every "mean" measurement inflated
    send(backends, shifted, target.loc[shifted.index])
    second = monitors.run("cancer-watch")
    assert second.run.values["drift.share"] > 0.3
    assert {"mean radius", "mean area"} <= set(second.run.details["drifted_columns"])
    opened = {a.rule: a for a in second.opened}
    assert set(opened) == {"inputs drifted"}  # accuracy must stay low for two windows first
    alert = opened["inputs drifted"]
    assert alert.status == "firing" and [n["ok"] for n in alert.notifications] == [True, True]
    assert "secret-token" not in json.dumps(alert.notifications)
    assert Hook.received[0]["alert"]["rule"] == "inputs drifted" and "drift.share" in Hook.received[0]["text"]
    logged = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert logged[0]["event"] == "firing" and logged[0]["evidence"]["drifted_columns"]

    send(backends, shifted.sample(300, random_state=3, replace=True))
    third = monitors.run("cancer-watch")
    assert not third.opened and [a.rule for a in third.still_firing] == ["inputs drifted"]
    assert third.still_firing[0].occurrences == 2 and len(Hook.received) == 1  # deduplicated
    assert len(monitors.alerts("cancer-watch")) == 1

    send(backends, features.sample(300, random_state=4), target)
    fourth = monitors.run("cancer-watch")
    assert [a.rule for a in fourth.resolved] == ["inputs drifted"]
    assert Hook.received[-1]["alert"]["event"] == "resolved" and "resolved" in Hook.received[-1]["text"]
    assert monitors.alerts("cancer-watch", "firing") == []

    html = monitors.report_html("cancer-watch", second.run.id)
    assert "plotly" in html.lower() and "mean radius" in html and "inputs drifted" in html
    monitors.report_png("cancer-watch", tmp_path / "report.png", second.run.id)
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_window_reads_every_answered_row_whatever_arm_answered_it(backends: Backends) -> None:
    deployments, monitors = (
        backends.services(local_owner()).deployments,
        backends.services(local_owner()).monitors,
    )
    monitors.create("watch", "cancer", "cancer-train", spec=MonitorSpec.parse({"window": {"rows": 1000}}))
    features, _ = cancer_data()
    send(backends, features.head(100))  # answered by the arm "main"
    deployments.set_traffic("cancer", TrafficPolicy.shadow("models:/cancer/1", "models:/cancer/2"))
    send(backends, features.head(50))  # answered by "primary", copied to "shadow"
    deployments.set_traffic("cancer", TrafficPolicy.canary("models:/cancer/1", "models:/cancer/2", 50))
    outcome = monitors.run("watch")  # the arms now are "stable" and "canary": none answered yet
    assert outcome.run.rows == 150 and outcome.run.values["requests"] == 15  # shadow copies left out


def test_windows_by_time_and_empty_windows(backends: Backends) -> None:
    monitors = backends.services(local_owner()).monitors
    monitors.create("hourly", "cancer", "cancer-train", spec=MonitorSpec.parse({"window": {"hours": 1}}))
    empty = monitors.run("hourly")
    assert empty.run.rows == 0 and "the window is empty" in empty.run.details["warnings"][0]
    features, _ = cancer_data()
    send(backends, features.head(50))
    now = monitors.run("hourly")
    assert now.run.rows == 50 and "perf.accuracy" not in now.run.values  # no labels yet
    later = monitors.run("hourly", at_ms=now.run.at + 2 * 3_600_000)
    assert later.run.rows == 0  # the same predictions, two hours on, are out of the window
    assert [empty.run.id, now.run.id, later.run.id] == [1, 2, 3]
    monitors.create("second", "cancer", "cancer-train")
    assert monitors.run("second").run.id == 1  # each monitor counts its own runs
    assert monitors.run_record("hourly", 2).rows == 50


def test_concurrent_runs_of_a_monitor_get_distinct_numbers(store: MetadataStore) -> None:
    from loopline.core.monitoring import Monitor

    store.monitors.create(Monitor("m", "d", {}, "0" * 64, 1, "me", 1))
    numbers: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: numbers.append(store.monitors.add_run("m", 1, (None, None), 0, {}, {}).id)
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(numbers) == list(range(1, 9))


def test_monitor_definitions_are_checked(backends: Backends) -> None:
    monitors = backends.services(local_owner()).monitors
    with pytest.raises(NotFound, match="deployment 'nowhere'"):
        monitors.create("m", "nowhere", "cancer-train")
    with pytest.raises(NotFound, match="dataset 'nothing'"):
        monitors.create("m", "cancer", "nothing")
    with pytest.raises(InvalidInput, match="no column 'label'"):
        monitors.create("m", "cancer", "cancer-train", target="label")
    monitors.create("m", "cancer", "cancer-train")
    with pytest.raises(AlreadyExists):
        monitors.create("m", "cancer", "cancer-train")
    monitors.create("m", "cancer", "cancer-train", target="target", replace=True)
    with pytest.raises(InvalidInput, match=r"alerts\.0: Value error, give exactly one of above or below"):
        MonitorSpec.parse({"alerts": [{"name": "x", "value": "rows"}]})
    with pytest.raises(InvalidInput, match="window: Value error, give exactly one"):
        MonitorSpec.parse({"window": {"rows": 5, "hours": 1}})
    with pytest.raises(InvalidInput, match="a webhook needs a url"):
        MonitorSpec.parse({"notify": [{"type": "webhook"}]})
    typo = MonitorSpec.parse({"alerts": [{"name": "drifting", "value": "drift.shar", "above": 0.3}]})
    with pytest.raises(
        InvalidInput, match=r"'drift\.shar', which this monitor does not produce; did you mean 'drift\.share'"
    ):
        monitors.create("typo", "cancer", "cancer-train", spec=typo)
    unlabelled = MonitorSpec.parse({"alerts": [{"name": "labels", "value": "drift.label", "above": 0.3}]})
    with pytest.raises(InvalidInput, match="does not produce"):  # no target named: no label drift
        monitors.create("typo", "cancer", "cancer-train", spec=unlabelled)


def test_an_alert_is_opened_once_by_concurrent_runs(store: MetadataStore, blobs: BlobStore) -> None:
    from loopline.core.monitoring import Alert, Monitor

    store.monitors.create(Monitor("m", "d", {}, "0" * 64, 1, "me", 1))
    draft = Alert(0, "m", "rule", "warning", "firing", 1, 1, None, 1, 0.5, "too high", {})
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(store.monitors.open_alert("m", draft)[1]))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    [alert] = store.monitors.alerts("m")
    assert alert.occurrences == 8 and alert.status == "firing"
    assert store.monitors.resolve_alert("m", "rule", 2) is not None
    assert store.monitors.open_alert("m", draft)[1]  # after resolving, the rule can fire anew
    assert len(store.monitors.alerts("m")) == 2


def test_cli_monitor_commands(backends: Backends, cli: Invoke, tmp_path: Path) -> None:
    spec = tmp_path / "monitor.yaml"
    spec.write_text("window: {rows: 100}\nalerts:\n  - {name: drift, value: drift.share, above: 0.3}\n")
    invoke = cli
    code, out, err = invoke(
        "monitor", "create", "watch", "--deployment", "cancer", "--reference", "cancer-train",
        "--target", "target", "--spec", str(spec),
    )  # fmt: skip
    assert code == 0, err
    features, _ = cancer_data()
    shifted = features.head(100).assign(**{"mean radius": lambda f: f["mean radius"] * 2})
    send(backends, shifted)
    code, out, _ = invoke("monitor", "run", "watch")
    assert code == 0 and "mean radius" in out and "ALERT" in out
    code, out, _ = invoke("monitor", "list")
    assert code == 0 and "watch" in out and "100 rows" in out
    code, out, _ = invoke("monitor", "show", "watch", "--json")
    assert code == 0 and json.loads(out)["runs"][0]["rows"] == 100
    code, out, _ = invoke("monitor", "alerts", "--firing")
    assert code == 0 and "drift" in out and "firing" in out
    code, out, _ = invoke(
        "monitor",
        "report",
        "watch",
        "-o",
        str(tmp_path / "r.html"),
        "--png",
        str(tmp_path / "r.png"),
        "--plotly",
        "cdn",
    )
    assert code == 0 and (tmp_path / "r.png").exists() and "cdn.plot.ly" in (tmp_path / "r.html").read_text()
    for page in ("a.html", "b.html"):  # by default the reports of a folder share one plotly.js
        assert invoke("monitor", "report", "watch", "-o", str(tmp_path / "shared" / page))[0] == 0
    shared = tmp_path / "shared"
    assert sorted(p.name for p in shared.iterdir()) == ["a.html", "b.html", "plotly.min.js"]
    page = (shared / "a.html").read_text()
    assert '<script charset="utf-8" src="plotly.min.js"></script>' in page and "cdn.plot.ly" not in page
    assert (shared / "plotly.min.js").stat().st_size > 50 * len(page) // 100  # the bulk is shared
    code, _, err = invoke("monitor", "run", "nothing")
    assert code == 1 and "monitor 'nothing' does not exist" in err


def test_a_failed_notification_shows_why(backends: Backends, cli: Invoke) -> None:
    monitors = backends.services(local_owner()).monitors
    spec = MonitorSpec.parse({
        "window": {"rows": 50},
        "alerts": [{"name": "always", "value": "rows", "above": 0}],
        "notify": [{"type": "webhook", "url": "http://127.0.0.1:9/hooks"}],  # private: refused
    })  # fmt: skip
    monitors.create("noisy", "cancer", "cancer-train", spec=spec)
    features, _ = cancer_data()
    send(backends, features.head(50))
    (alert,) = monitors.run("noisy").opened
    assert alert.notifications[0]["ok"] is False
    code, out, _ = cli("monitor", "alerts")
    assert code == 0 and f"webhook:failed ({alert.notifications[0]['error']}" in out


def stored_labels(backends: Backends) -> int:
    """The labels of deployment cancer written to its log so far."""
    from loopline.predictions.reader import LogReader

    con = LogReader(backends.tables, "cancer").connect()
    try:
        return int(con.execute("SELECT count(*) FROM feedback").fetchone()[0])
    finally:
        con.close()


def test_a_forecast_alert_opens_before_the_threshold_is_crossed(backends: Backends, cli: Invoke) -> None:
    """Gradual concept drift, one window an hour: each hour 2% more labels disagree with
    the model. The forecast rule must open hours before the threshold rule does."""
    from loopline.core.clock import now_ms

    monitors = backends.services(local_owner()).monitors
    spec = MonitorSpec.parse(
        {
            "window": {"rows": 200},
            "alerts": [
                {"name": "accuracy low", "value": "perf.accuracy", "below": 0.8},
                {"name": "accuracy heading low", "value": "perf.accuracy", "below": 0.8, "within": "6h"},
                {"name": "accuracy shifted", "value": "perf.accuracy", "change": {"baseline_runs": 4}},
            ],
        }
    )
    monitors.create("cancer-trend", "cancer", "cancer-train", target="target", spec=spec)
    features, target = cancer_data()
    start, opened_at = now_ms(), {}
    with running_server(backends, ("cancer",)) as server, server.client() as client:
        for hour in range(16):
            rows = features.sample(200, random_state=hour)
            truth = target.loc[rows.index].to_numpy().copy()
            flipped = pd.Series(range(200)).sample(frac=0.02 * hour, random_state=hour).to_numpy()
            truth[flipped] = 1 - truth[flipped]
            feedback = []
            for first in range(0, 200, 20):
                answer = client.post(
                    PREDICT, json={"records": rows.iloc[first : first + 20].to_dict("records")}
                )
                feedback += [
                    {"request_id": answer.json()["request_id"], "row": i, "label": int(truth[first + i])}
                    for i in range(20)
                ]
            assert client.post(FEEDBACK, json={"labels": feedback}).status_code == 202
            wait_until(lambda hour=hour: stored_labels(backends) == 200 * (hour + 1))
            outcome = monitors.run("cancer-trend", at_ms=start + hour * 3_600_000)
            for alert in outcome.opened:
                opened_at.setdefault(alert.rule, hour)
    assert {"accuracy low", "accuracy heading low"} <= set(opened_at), opened_at
    assert opened_at["accuracy heading low"] < opened_at["accuracy low"]  # a positive lead time
    (forecast_alert,) = [a for a in monitors.alerts("cancer-trend") if a.rule == "accuracy heading low"]
    trend = forecast_alert.evidence["forecast"]
    assert trend["slope_high"] < 0 and 0 <= trend["crossing_hours"] <= 6
    assert "is forecast to cross 0.8" in forecast_alert.message
    found = monitors.forecast("cancer-trend", "perf.accuracy", threshold=0.8)
    assert found is not None and found.slope_per_hour < 0
    code, out, _ = cli("monitor", "forecast", "cancer-trend", "perf.accuracy", "--below", "0.8")
    assert code == 0 and "perf.accuracy now about" in out and "/h [" in out and "crosses 0.8 in" in out
    code, _, err = cli("monitor", "forecast", "cancer-trend", "perf.acuracy")
    assert code == 1 and "has no value 'perf.acuracy'" in err
