from __future__ import annotations

import json
from pathlib import Path

from tests.integration.observability.promql_names import (
    Selector,
    dashboard_exprs,
    exposed_names,
    metric_names,
    selectors,
)


def test_names_from_typical_expressions() -> None:
    assert metric_names(
        "histogram_quantile(0.95, sum by (le, job, route) "
        '(rate(taskflow_http_request_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))'
    ) == {"taskflow_http_request_duration_seconds_bucket"}
    assert metric_names(
        'sum by (job) (rate(taskflow_http_requests_total{status=~"5.."}[5m]))\n'
        "  / sum by (job) (rate(taskflow_http_requests_total[5m])) > 0.05"
    ) == {"taskflow_http_requests_total"}
    assert metric_names(
        "max by (job) (taskflow_outbox_backlog) > 100 and max by (job) "
        "(deriv(taskflow_outbox_backlog[10m])) > 0"
    ) == {"taskflow_outbox_backlog"}
    assert metric_names("time() - max(taskflow_audit_verify_last_run_timestamp_seconds)") == {
        "taskflow_audit_verify_last_run_timestamp_seconds"
    }
    assert metric_names('up{job=~"taskflow-.*"} == 0') == {"up"}
    assert metric_names("a_metric offset 5m + on (x) group_left (y) b_metric") == {
        "a_metric",
        "b_metric",
    }
    assert metric_names('sum(x{a="by (le) rate(y[1m])"})') == {"x"}


def test_exposed_names_include_families_without_samples() -> None:
    text = (
        "# HELP taskflow_x_total X\n# TYPE taskflow_x_total counter\n"
        "# HELP taskflow_h_seconds H\n# TYPE taskflow_h_seconds histogram\n"
        "# HELP taskflow_g G\n# TYPE taskflow_g gauge\ntaskflow_g 1.0\n"
    )
    names = exposed_names([text])
    assert {"taskflow_x_total", "taskflow_h_seconds_bucket", "taskflow_h_seconds_count"} <= names
    assert "taskflow_g" in names


def test_selectors_carry_the_job_they_name() -> None:
    found = selectors(
        'sum by (route) (rate(taskflow_http_requests_total{job="taskflow-reminder-service",'
        'status=~"5.."}[$__rate_interval])) / sum(rate(taskflow_http_requests_total[5m]))'
    )
    assert sorted(found, key=str) == [
        Selector("taskflow_http_requests_total"),
        Selector("taskflow_http_requests_total", (("=", "taskflow-reminder-service"),)),
    ]
    jobs = ["taskflow-reminder-service", "taskflow-reminder-flow", "otel-collector"]
    assert found[0].jobs(jobs) | found[1].jobs(jobs) == set(jobs)
    (regex,) = selectors('up{job=~"taskflow-.*"} == 0')
    assert regex.jobs(jobs) == {"taskflow-reminder-service", "taskflow-reminder-flow"}
    (negated,) = selectors('x_total{job!="otel-collector"}')
    assert negated.jobs(jobs) == {"taskflow-reminder-service", "taskflow-reminder-flow"}
    # A name inside a label value is not a selector.
    assert selectors('x{a="taskflow_y_total"}') == [Selector("x")]


def test_dashboard_variables_become_their_all_value(tmp_path: Path) -> None:
    dash = {
        "templating": {
            "list": [{"name": "job", "type": "query", "includeAll": True, "allValue": "tf-.*"}]
        },
        "panels": [
            {
                "title": "p",
                "datasource": {"type": "prometheus", "uid": "prometheus"},
                "targets": [{"expr": 'rate(a_total{job=~"$job"}[$__rate_interval])'}],
            }
        ],
    }
    (tmp_path / "d.json").write_text(json.dumps(dash))
    assert dashboard_exprs(tmp_path) == {
        "d.json: p": ['rate(a_total{job=~"tf-.*"}[$__rate_interval])']
    }
