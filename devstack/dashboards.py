"""`make dashboards`: the chart's Grafana dashboards, built with Grafana's Python SDK (grafana-foundation-sdk)
from the metric names in `qc_common.metrics`, written to charts/queue-consumer-operator/files/dashboards/.

The JSON there is generated: tests/chart/test_dashboards.py fails when it is stale, and the end-to-end test
(tests/e2e/test_burst_scale_nothing_lost.py) runs every panel's and annotation's query against Prometheus
after a real run. The chart ships the files as ConfigMaps for Grafana's sidecar (`dashboards.enabled`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard, prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from devstack import binaries
from qc_common import metrics as names

OUTPUT = binaries.REPO_ROOT / "charts" / "queue-consumer-operator" / "files" / "dashboards"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
# Every query is narrowed to the consumers picked in the dashboard's two variables.
PICKED = 'namespace=~"$namespace", consumer=~"$consumer"'
BY_CONSUMER = "namespace, consumer"
TAGS = ["queue-consumer-operator"]


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


def picked(metric: str) -> str:
    return f"{metric}{{{PICKED}}}"


def per_consumer(aggregation: str, metric: str) -> str:
    return f"{aggregation} by ({BY_CONSUMER}) ({picked(metric)})"


def rate(function: str, metric: str, window: str, by: str = BY_CONSUMER) -> str:
    return f"sum by ({by}) ({function}({picked(metric)}[{window}]))"


def quantile(q: float, histogram: str, by: str = "le") -> str:
    return f"histogram_quantile({q:g}, sum by ({by}) (rate({picked(histogram + '_bucket')}[5m])))"


def panel(title: str, unit: str, *queries: Query, description: str = "") -> timeseries.Panel:
    built = timeseries.Panel().title(title).datasource(DATASOURCE).unit(unit).height(8).span(12)
    if description:
        built = built.description(description)
    for ref_id, query in zip("ABCDEFGH", queries, strict=False):
        built = built.with_target(
            prometheus.Dataquery().ref_id(ref_id).expr(query.expr).legend_format(query.legend)
        )
    return built


def variables(metric: str) -> list[dashboard.QueryVariable | dashboard.DatasourceVariable]:
    """The datasource, then namespace and consumer picked from the labels of `metric` (all by default)."""
    everything = model.VariableOption(text="All", value="$__all")

    def label(name: str, query: str) -> dashboard.QueryVariable:
        return (
            dashboard.QueryVariable(name)
            .datasource(DATASOURCE)
            .query(query)
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .include_all(True)
            .multi(True)
            .all_value(".*")
            .current(everything)
        )

    return [
        dashboard.DatasourceVariable("datasource").type("prometheus"),
        label("namespace", f"label_values({metric}, namespace)"),
        label("consumer", f'label_values({metric}{{namespace=~"$namespace"}}, consumer)'),
    ]


def new_dashboard(uid: str, title: str, metric: str) -> dashboard.Dashboard:
    built = (
        dashboard.Dashboard(title)
        .uid(uid)
        .tags(TAGS)
        .timezone("browser")
        .refresh("30s")
        .time("now-1h", "now")
        .version(1)
    )
    for variable in variables(metric):
        built = built.with_variable(variable)
    return built


# A scale event is the counter moving; its labels say which way and what kind of decision (the full
# sentence is the Kubernetes Event's). Grafana draws one annotation per step where the query has a value.
SCALE_ANNOTATION_EXPR = (
    f"sum by ({BY_CONSUMER}, direction, reason) (changes({picked(names.OPERATOR_SCALE_EVENTS)}[1m])) > 0"
)
# Prometheus annotation fields the SDK's AnnotationQuery does not model; added to its JSON below.
SCALE_ANNOTATION_FORMAT = {
    "step": "30s",
    "titleFormat": "{{consumer}} scaled {{direction}}",
    "textFormat": "reason: {{reason}}",
    "tagKeys": "namespace,consumer,direction,reason",
    "useValueForTime": False,
}


def operator_dashboard() -> dashboard.Dashboard:
    backlog = per_consumer("sum", names.OPERATOR_BACKLOG)
    capacity = (
        f"({per_consumer('max', names.OPERATOR_THROUGHPUT)}"
        f" * {per_consumer('sum', names.OPERATOR_READY_REPLICAS)} > 0)"
    )
    keeping_up = [
        panel("Backlog", "short", Query(backlog, "{{namespace}}/{{consumer}}")).span(8),
        panel(
            "Oldest unacked message age",
            "s",
            Query(per_consumer("max", names.OPERATOR_OLDEST_MESSAGE_AGE), "{{consumer}}"),
        ).span(8),
        panel(
            "Drain-time estimate vs target",
            "s",
            Query(f"{backlog} / {capacity}", "estimate {{consumer}}"),
            Query(per_consumer("max", names.OPERATOR_TARGET_DRAIN), "target {{consumer}}"),
            description=(
                "The backlog over what the ready replicas process at the measured throughput per busy "
                "replica (arrivals not counted), against scaling.targetDrainSeconds. Above the target for "
                "long: the consumer is not keeping up (at maxReplicas, or held back)."
            ),
        ).span(8),
    ]
    scaling = [
        panel(
            "Replicas: desired, current, ready",
            "short",
            *(
                Query(per_consumer("sum", metric), f"{kind} {{{{consumer}}}}")
                for kind, metric in (
                    ("desired", names.OPERATOR_DESIRED_REPLICAS),
                    ("current", names.OPERATOR_CURRENT_REPLICAS),
                    ("ready", names.OPERATOR_READY_REPLICAS),
                )
            ),
        ),
        panel(
            "Scale events (per 5 min)",
            "short",
            Query(
                rate("increase", names.OPERATOR_SCALE_EVENTS, "5m", f"{BY_CONSUMER}, direction, reason"),
                "{{consumer}} {{direction}} ({{reason}})",
            ),
        ),
        panel(
            "Measured throughput per busy replica",
            "short",
            Query(per_consumer("max", names.OPERATOR_THROUGHPUT), "{{consumer}}"),
        ),
        panel(
            "Fallback and pause",
            "short",
            Query(per_consumer("max", names.OPERATOR_FALLBACK_ACTIVE), "fallback {{consumer}}"),
            Query(per_consumer("max", names.OPERATOR_PAUSED), "paused {{consumer}}"),
        ),
    ]
    source = [
        panel(
            "Source errors (per second)",
            "reqps",
            Query(
                rate("rate", names.OPERATOR_SOURCE_ERRORS, "5m", f"{BY_CONSUMER}, source"),
                "{{consumer}} {{source}}",
            ),
        ),
        panel(
            "Source latency p95",
            "s",
            Query(quantile(0.95, names.OPERATOR_SOURCE_LATENCY, "le, source"), "{{source}}"),
        ),
    ]
    scale_events = (
        dashboard.AnnotationQuery()
        .name("Scale events")
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color("orange")
        .expr(SCALE_ANNOTATION_EXPR)
    )
    built = new_dashboard("qc-operator", "Queue Consumer Operator", names.OPERATOR_BACKLOG).annotation(
        scale_events
    )
    # An expanded row's panels follow it in the dashboard's list; the first row repeats per picked consumer.
    rows = [
        (dashboard.Row("Is it keeping up? $consumer").repeat("consumer"), keeping_up),
        (dashboard.Row("Scaling"), scaling),
        (dashboard.Row("Backlog source"), source),
    ]
    for row, panels in rows:
        built = built.with_row(row)
        for each in panels:
            built = built.with_panel(each)
    return built


def workers_dashboard() -> dashboard.Dashboard:
    def per_5m(metric: str, legend: str, by: str = BY_CONSUMER) -> Query:
        return Query(rate("increase", metric, "5m", by), legend)

    panels = [
        panel(
            "Throughput (acked per second)",
            "short",
            Query(rate("rate", names.WORKER_MESSAGES_ACKED, "1m"), "{{consumer}}"),
        ),
        panel(
            "In flight and capacity",
            "short",
            Query(per_consumer("sum", names.WORKER_TASKS_IN_FLIGHT), "in flight {{consumer}}"),
            Query(per_consumer("sum", names.WORKER_CAPACITY), "capacity {{consumer}}"),
        ),
        panel(
            "Task duration quantiles",
            "s",
            *(Query(quantile(q, names.WORKER_TASK_DURATION), f"p{q * 100:g}") for q in (0.5, 0.95, 0.99)),
        ),
        panel(
            "Failures by reason (per second)",
            "short",
            Query(
                rate("rate", names.WORKER_TASKS_FAILED, "5m", f"{BY_CONSUMER}, reason"),
                "{{consumer}} {{reason}}",
            ),
        ),
        panel(
            "Dead letters (per 5 min)",
            "short",
            per_5m(names.WORKER_MESSAGES_DEAD_LETTERED, "{{consumer}} {{reason}}", f"{BY_CONSUMER}, reason"),
        ),
        panel(
            "Time-limit kills and retries (per 5 min)",
            "short",
            per_5m(names.WORKER_TIME_LIMIT_KILLS, "kills {{consumer}}"),
            per_5m(names.WORKER_MESSAGES_RETRIED, "retries {{consumer}}"),
        ),
        panel(
            "Lease extensions (per second)",
            "short",
            Query(rate("rate", names.WORKER_LEASE_EXTENSIONS, "5m"), "{{consumer}}"),
        ),
        panel(
            "Busy fraction",
            "percentunit",
            Query(per_consumer("avg", names.WORKER_BUSY_RATIO), "{{consumer}}"),
        ),
        panel("Receive to ack p95", "s", Query(quantile(0.95, names.WORKER_RECEIVE_TO_ACK), "p95")),
        panel(
            "Received, nacked (per second)",
            "short",
            Query(rate("rate", names.WORKER_MESSAGES_RECEIVED, "1m"), "received {{consumer}}"),
            Query(rate("rate", names.WORKER_MESSAGES_NACKED, "1m"), "nacked {{consumer}}"),
        ),
    ]
    built = new_dashboard("qc-workers", "Queue Consumer Workers", names.WORKER_CAPACITY)
    for each in panels:
        built = built.with_panel(each)
    return built


def numbered(panels: list[dict[str, Any]], first_id: int = 1) -> int:
    """Give every panel, rows' panels included, a unique id in order (the SDK leaves them unset)."""
    next_id = first_id
    for each in panels:
        each["id"] = next_id
        next_id = numbered(each.get("panels", []), next_id + 1)
    return next_id


def to_json(built: dashboard.Dashboard) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(json.dumps(built.build(), cls=JSONEncoder))
    numbered(document["panels"])
    for annotation in document.get("annotations", {}).get("list", []):
        if annotation.get("expr") == SCALE_ANNOTATION_EXPR:
            annotation.update(SCALE_ANNOTATION_FORMAT)
    return document


DASHBOARDS = {"operator.json": operator_dashboard, "workers.json": workers_dashboard}


def render() -> dict[str, str]:
    """File name -> the JSON text as checked in."""
    return {
        name: json.dumps(to_json(build()), indent=1, sort_keys=True) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main() -> int:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUTPUT / name).write_text(text)
        print(f"wrote {(OUTPUT / name).relative_to(binaries.REPO_ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
