from __future__ import annotations

from tests.integration.observability.promql_names import exposed_names, metric_names


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
