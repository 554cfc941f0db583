"""The shipped Prometheus, collector, Tempo and Grafana files are valid and consistent.

Prometheus files are checked by the real `promtool` (Debian package; install with
scripts/system-deps). Grafana, Tempo and the collector cannot run here, so their
files are checked for the references that would break them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.observability.promql_names import dashboard_exprs, rule_exprs, selectors

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
DEPLOY = HERE.parents[2] / "deploy" / "observability"
PROM = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
SERVICE_NAMES = {
    "taskflow-task-service",
    "taskflow-notification-service",
    "taskflow-audit-service",
    "taskflow-reminder-service",
    "taskflow-audit-flow",
    "taskflow-reminder-flow",
}


def _promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool missing: run scripts/system-deps"
    return path


def _run(*args: str) -> str:
    done = subprocess.run([_promtool(), *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_promtool_check_config() -> None:
    out = _run("check", "config", str(PROM / "prometheus.yml"))
    assert "SUCCESS" in out and "1 rule files found" in out


def test_promtool_check_rules() -> None:
    assert "SUCCESS" in _run("check", "rules", str(PROM / "alerts.yml"))


def test_alerts_fire_on_what_they_are_named_for() -> None:
    assert "SUCCESS" in _run("test", "rules", str(HERE / "alerts_test.yml"))


def _scrape_jobs() -> set[str]:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    return {str(job["job_name"]) for job in config["scrape_configs"]}


def test_every_service_is_a_scrape_job_named_after_its_service_name() -> None:
    """The job label is each process's OpenTelemetry service.name as the code sets it (the
    whole-system test checks the same of the flows' spans and logs at run time)."""
    from audit_store.app import SERVICE_NAME as AUDIT
    from notify_ws.app import SERVICE_NAME as NOTIFY
    from pipelines.audit import SERVICE_NAME as AUDIT_FLOW
    from reminders.app import SERVICE_NAME as REMINDERS
    from task_api.app import SERVICE_NAME as TASK

    assert {TASK, NOTIFY, AUDIT, REMINDERS, AUDIT_FLOW} <= SERVICE_NAMES
    assert SERVICE_NAMES <= _scrape_jobs()


def test_every_job_a_dashboard_or_alert_names_is_scraped() -> None:
    jobs = _scrape_jobs()
    used = dashboard_exprs(GRAFANA / "dashboards") | rule_exprs(PROM / "alerts.yml")
    unmatched = {
        f"{where}: {selector}"
        for where, exprs in used.items()
        for expr in exprs
        for selector in selectors(expr)
        if not selector.jobs(jobs)
    }
    assert not unmatched, sorted(unmatched)


def test_alert_rules_carry_severity_and_operator_guidance() -> None:
    rules = [
        r for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"] for r in g["rules"]
    ]
    docs = (HERE.parents[2] / "docs" / "observability.md").read_text()
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert f"`{rule['alert']}`" in docs, f"{rule['alert']} is not explained in the docs"


def _components(section: dict[str, Any] | None) -> set[str]:
    return set(section or {})


def test_collector_pipelines_reference_defined_components() -> None:
    config = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    receivers = _components(config["receivers"]) | _components(config.get("connectors"))
    exporters = _components(config["exporters"]) | _components(config.get("connectors"))
    processors = _components(config.get("processors"))
    for name, pipeline in config["service"]["pipelines"].items():
        assert set(pipeline["receivers"]) <= receivers, name
        assert set(pipeline.get("processors", [])) <= processors, name
        assert set(pipeline["exporters"]) <= exporters, name
    assert set(config["service"].get("extensions", [])) <= _components(config.get("extensions"))
    traces = config["service"]["pipelines"]["traces"]
    assert "otlp" in traces["receivers"] and "otlp/tempo" in traces["exporters"]
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")
    # Tempo must listen where the collector sends.
    tempo = yaml.safe_load((DEPLOY / "tempo.yaml").read_text())
    tempo_grpc = tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    # The endpoint is per environment (${env:TEMPO_OTLP_ENDPOINT}); compose's value here.
    compose = yaml.safe_load((DEPLOY.parent / "compose.yaml").read_text())
    collector_env = compose["services"]["otel-collector"]["environment"]
    assert config["exporters"]["otlp/tempo"]["endpoint"] == "${env:TEMPO_OTLP_ENDPOINT}"
    assert collector_env["TEMPO_OTLP_ENDPOINT"].split(":")[-1] == tempo_grpc.split(":")[-1]


def _datasources() -> dict[str, dict[str, Any]]:
    path = GRAFANA / "provisioning" / "datasources" / "datasources.yaml"
    return {d["uid"]: d for d in yaml.safe_load(path.read_text())["datasources"]}


def test_grafana_datasources_link_traces_to_logs_and_metrics() -> None:
    sources = _datasources()
    tempo = sources["tempo"]["jsonData"]
    assert tempo["tracesToLogsV2"]["datasourceUid"] in sources
    assert tempo["tracesToLogsV2"]["filterByTraceID"] is True
    assert tempo["tracesToMetrics"]["datasourceUid"] == "prometheus"
    assert {"key": "service.name", "value": "job"} in tempo["tracesToMetrics"]["tags"]
    assert tempo["tracesToMetrics"]["queries"]
    loki_links = sources["loki"]["jsonData"]["derivedFields"]
    assert any(link["datasourceUid"] == "tempo" for link in loki_links)


def _dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in (GRAFANA / "dashboards").glob("*.json")}


def test_dashboards_are_well_formed() -> None:
    dashboards = _dashboards()
    assert set(dashboards) == {
        "service-overview.json",
        "event-flow.json",
        "reminders.json",
        "notifications.json",
        "audit.json",
    }
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids)
    sources = _datasources()
    for name, dash in dashboards.items():
        ids = [p["id"] for p in dash["panels"]]
        assert len(set(ids)) == len(ids), name
        for panel in dash["panels"]:
            assert panel["datasource"]["uid"] in sources, (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] in sources
                assert target.get("expr") or target.get("query"), (name, panel["title"])
