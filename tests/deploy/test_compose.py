"""deploy/compose.yaml (and its security override) parse and hang together."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deploy.conftest import DEPLOY, load_yaml

TASKFLOW_PROCESSES = {
    "task-api": ["serve", "task-api"],
    "notify": ["serve", "notify"],
    "audit": ["serve", "audit"],
    "reminders": ["serve", "reminders"],
    "audit-flow": ["flow", "audit"],
    "reminders-flow": ["flow", "reminders"],
}
ONE_SHOT_JOBS = {"migrate", "topics"}


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def test_every_service_has_an_image_or_build_and_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, svc in services(compose).items():
        assert "image" in svc or "build" in svc, name
        if name in ONE_SHOT_JOBS:
            # Jobs run to completion; dependants wait for service_completed_successfully.
            assert svc["restart"] == "no", name
            continue
        check = svc.get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), name


def test_the_whole_system_is_there(compose: dict[str, Any]) -> None:
    names = set(services(compose))
    expected = set(TASKFLOW_PROCESSES) | ONE_SHOT_JOBS
    expected |= {"kafka", "postgres", "otel-collector", "tempo", "prometheus", "grafana"}
    assert expected <= names
    for name, command in TASKFLOW_PROCESSES.items():
        assert services(compose)[name]["command"][:2] == command, name
        assert services(compose)[name]["build"]["dockerfile"] == "deploy/Dockerfile"


def test_kafka_runs_in_kraft_mode_on_the_official_image(compose: dict[str, Any]) -> None:
    kafka = services(compose)["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_depends_on_targets_exist_and_use_conditions(compose: dict[str, Any]) -> None:
    all_services = services(compose)
    allowed = {"service_healthy", "service_completed_successfully", "service_started"}
    for name, svc in all_services.items():
        for target, spec in (svc.get("depends_on") or {}).items():
            assert target in all_services, f"{name} depends on unknown {target}"
            assert spec["condition"] in allowed
            if spec["condition"] == "service_completed_successfully":
                assert target in ONE_SHOT_JOBS
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in all_services[target], f"{target} cannot become healthy"
    for name in TASKFLOW_PROCESSES:
        deps = all_services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert deps["topics"]["condition"] == "service_completed_successfully"


def test_dataflows_keep_recovery_on_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for flow in ("audit-flow", "reminders-flow"):
        mounts = services(compose)[flow]["volumes"]
        assert any(m.endswith(":/var/lib/taskflow/recovery") for m in mounts), flow
        assert all(m.split(":")[0] in declared for m in mounts)


def test_postgres_init_creates_one_database_per_service(compose: dict[str, Any]) -> None:
    mounts = services(compose)["postgres"]["volumes"]
    assert "./postgres-init:/docker-entrypoint-initdb.d:ro" in mounts
    sql = "\n".join(p.read_text() for p in sorted((DEPLOY / "postgres-init").glob("*.sql")))
    created = set(re.findall(r"CREATE DATABASE (\w+);", sql))
    assert created == {"taskflow_tasks", "taskflow_notify", "taskflow_audit", "taskflow_reminders"}
    env = services(compose)["task-api"]["environment"]
    urls = {k: v for k, v in env.items() if k.endswith("_DATABASE_URL")}
    assert {url.rsplit("/", 1)[1] for url in urls.values()} == created


def test_observability_files_are_mounted_from_deploy(compose: dict[str, Any]) -> None:
    for name in ("otel-collector", "tempo", "prometheus", "grafana"):
        mounts = [v for v in services(compose)[name]["volumes"] if v.startswith("./")]
        assert mounts, name
        for mount in mounts:
            assert mount.startswith("./observability/"), mount
    env = services(compose)["task-api"]["environment"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"


def test_secrets_are_required_not_defaulted(compose: dict[str, Any]) -> None:
    env = services(compose)["task-api"]["environment"]
    for key in (
        "TASKFLOW_JWT_SECRET",
        "TASKFLOW_NOTIFY_WEBHOOK_SECRET",
        "TASKFLOW_AUDIT_DIGEST_KEY",
        "TASKFLOW_AUDIT_KEK",
    ):
        assert re.fullmatch(r"\$\{\w+:\?.+\}", env[key]), f"{key} must be ${{VAR:?...}}"
    assert env["TASKFLOW_ENV"] == "production"


def test_security_override_switches_every_client_to_sasl_ssl(
    compose: dict[str, Any], compose_security: dict[str, Any]
) -> None:
    override = compose_security["services"]
    for name in (*TASKFLOW_PROCESSES, "migrate"):
        env = override[name]["environment"]
        assert env["TASKFLOW_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", name
        assert env["TASKFLOW_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["TASKFLOW_KAFKA_SSL_CA_LOCATION"].startswith("/etc/taskflow/tls/")
        assert name in compose["services"]
    kafka = override["kafka"]["environment"]
    assert "SASL_SSL:SASL_SSL" in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    assert kafka["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    # The only plaintext listener left is bound to the broker's own loopback.
    plaintext = [
        listener
        for listener in kafka["KAFKA_LISTENERS"].split(",")
        if listener.startswith(("LOOPBACK", "PLAINTEXT"))
    ]
    assert plaintext == ["LOOPBACK://127.0.0.1:9092"]


def _observability(path: str) -> Any:
    return load_yaml(DEPLOY / "observability" / path)


def test_grafana_datasources_and_dashboards_resolve_in_compose(compose: dict[str, Any]) -> None:
    sources = _observability("grafana/provisioning/datasources/datasources.yaml")
    for source in sources["datasources"]:
        host = urlsplit(source["url"]).hostname
        assert host in services(compose), f"datasource {source['name']}: no service {host}"
    providers = _observability("grafana/provisioning/dashboards/dashboards.yaml")
    mounts = services(compose)["grafana"]["volumes"]
    for provider in providers["providers"]:
        path = provider["options"]["path"]
        assert any(m.split(":")[1] == path for m in mounts), f"dashboards path {path} unmounted"


def _scrape_targets() -> list[str]:
    config = _observability("prometheus/prometheus.yml")
    return [
        t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    ]


FLOW_METRICS = {
    "audit-flow": "TASKFLOW_AUDIT_FLOW_METRICS_PORT",
    "reminders-flow": "TASKFLOW_REMINDERS_FLOW_METRICS_PORT",
}


@pytest.mark.parametrize("target", _scrape_targets())
def test_every_prometheus_target_is_served_in_compose(target: str, compose: dict[str, Any]) -> None:
    host, port = target.rsplit(":", 1)
    svc = services(compose)[host]
    if host in ("task-api", "notify", "audit", "reminders"):
        assert svc["command"][-1] == port
    elif host.endswith("-flow"):
        assert svc["environment"].get(FLOW_METRICS.get(host, "-")) == port


def test_every_service_the_cli_serves_runs_in_compose(compose: dict[str, Any]) -> None:
    from deploy.cli import SERVICES

    served = {
        svc["command"][1]
        for svc in services(compose).values()
        if isinstance(svc.get("command"), list) and svc["command"][:1] == ["serve"]
    }
    assert served == set(SERVICES)
