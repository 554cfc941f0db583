"""The monitoring bundle: alerts kube-prometheus-stack picks up (and that name real
metrics), collector endpoints per environment, logs to Loki with the trace id as a field in
compose and Kubernetes, and Grafana's trace-to-logs link on that field."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.conftest import DEPLOY, ROOT, kubectl, load_yaml

OBSERVABILITY = DEPLOY / "observability"
# kube-prometheus-stack's Prometheus selects rules and monitors by its Helm release label.
RELEASE_LABEL = "release"
# Code that defines the metrics the alerts may use (prometheus_client and Bytewax).
METRIC_SOURCES = [
    *sorted((ROOT / "observability").rglob("*.py")),
    *sorted((ROOT / "pipelines").rglob("*.py")),
    *sorted(ROOT.glob("*/metrics.py")),
    *sorted(ROOT.glob("*/metrics/*.py")),
]
PROMQL_WORDS = {
    "sum", "max", "min", "by", "on", "and", "or", "unless", "rate", "increase", "deriv",
    "histogram_quantile", "time", "absent", "min_over_time", "offset", "le", "job", "group",
    "channel", "status", "humanizePercentage", "humanizeDuration", "topic", "partition",
}  # fmt: skip


def monitoring() -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(DEPLOY / "k8s" / "monitoring")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_the_prometheus_rule_carries_the_compose_alerts_and_the_selected_label() -> None:
    docs = monitoring()
    (rule,) = by_kind(docs, "PrometheusRule").values()
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    alerts = load_yaml(OBSERVABILITY / "prometheus" / "alerts.yml")
    assert rule["spec"]["groups"] == alerts["groups"], "regenerate prometheusrule.yaml"
    (monitor,) = by_kind(docs, "PodMonitor").values()
    release = rule["metadata"]["labels"][RELEASE_LABEL]
    assert monitor["metadata"]["labels"][RELEASE_LABEL] == release


def _metric_names(expr: str) -> set[str]:
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)  # matchers
    expr = re.sub(r"\[[^]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b\d+(\.\d+)?[smhdwy]?\b", "", expr)  # numbers, durations (offset 15m)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return names - PROMQL_WORDS


def _defined(name: str, code: str) -> bool:
    """A metric is defined if code registers it (counters get `_total`, histograms
    `_bucket`; some collectors build names from a prefix)."""
    base = re.sub(r"_(total|bucket|sum|count)$", "", name)
    if f'"{base}"' in code or f'"{name}"' in code:
        return True
    return any(base.startswith(p) for p in re.findall(r'f"(taskflow_[a-z_]+)\{', code))


def test_every_alert_names_metrics_the_code_exposes() -> None:
    import bytewax.connectors.kafka as bytewax_kafka

    code = "\n".join(p.read_text() for p in METRIC_SOURCES)
    code += f'\n"{bytewax_kafka.BYTEWAX_CONSUMER_LAG_GAUGE._name}"'
    alerts = load_yaml(OBSERVABILITY / "prometheus" / "alerts.yml")
    names = {r["alert"]: _metric_names(r["expr"]) for g in alerts["groups"] for r in g["rules"]}
    for alert in (
        "TaskflowAuditVerifyNotRun",
        "TaskflowAuditFlowStalled",
        "TaskflowReminderFlowStalled",
    ):
        assert alert in names, f"{alert} is missing"
    for alert, metrics in names.items():
        for metric in metrics - {"up"}:
            assert _defined(metric, code), f"{alert}: no code exposes {metric}"


def _env(value: str) -> list[str]:
    return re.findall(r"\$\{env:(\w+)\}", value)


def _collector_env_vars(path: Path) -> set[str]:
    return set(_env(path.read_text()))


def test_collector_endpoints_come_from_each_environment(compose: dict[str, Any]) -> None:
    main = load_yaml(OBSERVABILITY / "otel-collector.yaml")
    logs = load_yaml(OBSERVABILITY / "otel-collector-logs.yaml")
    for config in (main, logs):
        for name, exporter in config["exporters"].items():
            assert _env(exporter["endpoint"]), f"{name}: a host name fixed in the config"
    service = compose["services"]["otel-collector"]
    needed = _collector_env_vars(OBSERVABILITY / "otel-collector.yaml")
    needed |= _collector_env_vars(OBSERVABILITY / "otel-collector-logs.yaml")
    assert needed <= set(service["environment"]), "compose sets every endpoint"
    for value in service["environment"].values():
        host = re.sub(r"^\w+://", "", value).split(":")[0].split("/")[0]
        if host and not value.startswith("/"):
            assert host in compose["services"], f"compose endpoint {value}: no such service"
    docs = monitoring()
    gateway = by_kind(docs, "Deployment")["otel-collector"]["spec"]["template"]["spec"]
    agent = by_kind(docs, "DaemonSet")["otel-collector-logs"]["spec"]["template"]["spec"]
    for pod, path in ((gateway, "otel-collector.yaml"), (agent, "otel-collector-logs.yaml")):
        env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
        assert _collector_env_vars(OBSERVABILITY / path) <= set(env), path
        for value in env.values():
            assert "monitoring" in value or value.startswith("/var/log/pods/"), value


def test_logs_reach_loki_with_the_trace_id_in_compose_and_kubernetes(
    compose: dict[str, Any],
) -> None:
    logs = load_yaml(OBSERVABILITY / "otel-collector-logs.yaml")
    pipeline = logs["service"]["pipelines"]["logs"]
    assert pipeline["exporters"] == ["otlphttp/loki"]
    (receiver,) = pipeline["receivers"]
    operators = {op["type"]: op for op in logs["receivers"][receiver]["operators"]}
    # TaskFlow's JSON field names (observability/logs.py) become the record's trace context
    # and its service name.
    source = (ROOT / "observability" / "logs.py").read_text()
    for field in ("trace_id", "span_id", "service", "level"):
        assert f'"{field}"' in source
    assert operators["trace_parser"]["trace_id"]["parse_from"] == "attributes.trace_id"
    assert operators["move"]["to"] == 'resource["service.name"]'
    assert "container" in operators and "json_parser" in operators
    # Compose: the collector loads both configs and reads Docker's json-file logs.
    service = compose["services"]["otel-collector"]
    assert "--config=/etc/otelcol/logs.yaml" in service["command"]
    assert (
        "./observability/otel-collector-logs.yaml:/etc/otelcol/logs.yaml:ro" in service["volumes"]
    )
    files = service["environment"]["TASKFLOW_LOG_FILES"]
    assert any(files.startswith(v.split(":")[1]) for v in service["volumes"] if v.startswith("/"))
    assert service["depends_on"]["loki"]["condition"] == "service_healthy"
    assert "loki" in compose["services"]
    # Kubernetes: a per-node agent with the pods' log directory mounted read-only.
    agent = by_kind(monitoring(), "DaemonSet")["otel-collector-logs"]["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in agent["containers"][0]["volumeMounts"]}
    env = {e["name"]: e["value"] for e in agent["containers"][0]["env"]}
    mount = next(p for p in mounts if env["TASKFLOW_LOG_FILES"].startswith(p))
    assert mounts[mount]["readOnly"] is True
    # Every TaskFlow namespace's pods match the glob (/var/log/pods/<ns>_<pod>_<uid>/...).
    namespaces = [
        load_yaml(DEPLOY / "k8s" / "overlays" / o / "kustomization.yaml")["namespace"]
        for o in ("dev", "prod")
    ]
    prefix = env["TASKFLOW_LOG_FILES"].removeprefix("/var/log/pods/").split("*")[0]
    assert all(ns.startswith(prefix) for ns in namespaces)


def test_grafana_links_traces_to_logs_on_the_trace_id_field() -> None:
    path = OBSERVABILITY / "grafana" / "provisioning" / "datasources" / "datasources.yaml"
    sources = {s["uid"]: s for s in load_yaml(path)["datasources"]}
    link = sources["tempo"]["jsonData"]["tracesToLogsV2"]
    assert sources[link["datasourceUid"]]["type"] == "loki"
    assert link["customQuery"] is True
    # `$$` is provisioning's escape for a literal `$`.
    assert '| trace_id="$${__trace.traceId}"' in link["query"]
    assert 'service_name="$${__span.tags["service.name"]}"' in link["query"]
    (derived,) = sources["loki"]["jsonData"]["derivedFields"]
    assert (derived["matcherType"], derived["matcherRegex"]) == ("label", "trace_id")
    assert derived["datasourceUid"] == "tempo"
