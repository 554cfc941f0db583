"""`kubectl kustomize` of each overlay: core kinds against the Kubernetes schema, CRD kinds
(Strimzi, KEDA) for the fields we rely on, and the references between objects."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
import yaml

from events.topics import Topics
from notify_ws.settings import WORKER_GROUP
from tests.deploy.conftest import DEPLOY, OVERLAYS, kubectl

K8S_VERSION = "1.33.0"
CRD_KINDS = {
    "Kafka",
    "KafkaNodePool",
    "KafkaTopic",
    "KafkaUser",
    "ScaledObject",
    "TriggerAuthentication",
}
# Custom kinds rendered in one overlay only: Linkerd policy (prod), the Prometheus Operator's
# (monitoring bundle). Checked by test_k8s_policies.py / test_monitoring_bundle.py.
OTHER_CRD_KINDS = {
    "Server",
    "AuthorizationPolicy",
    "MeshTLSAuthentication",
    "NetworkAuthentication",
    "PodMonitor",
    "PrometheusRule",
}
Docs = list[dict[str, Any]]


def by_kind(docs: Docs, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def workloads(docs: Docs) -> Iterator[dict[str, Any]]:
    yield from (d for d in docs if d["kind"] in {"Deployment", "StatefulSet"})


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_kinds_validate_against_the_kubernetes_schema(
    overlay: str, rendered: dict[str, Docs]
) -> None:
    checked = 0
    for doc in rendered[overlay]:
        if doc["kind"] in CRD_KINDS | OTHER_CRD_KINDS:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        checked += 1
    assert checked >= 20


def test_the_schema_check_would_catch_a_mistake(rendered: dict[str, Docs]) -> None:
    deployment = copy.deepcopy(next(workloads(rendered["dev"])))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = (
        "/healthz"
    )
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_kind_we_need_is_rendered(overlay: str, rendered: dict[str, Docs]) -> None:
    kinds = {d["kind"] for d in rendered[overlay]}
    assert {
        "Deployment",
        "StatefulSet",
        "Service",
        "Ingress",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ConfigMap",
        "Namespace",
        *CRD_KINDS,
    } <= kinds
    assert "Secret" not in kinds, "secrets are referenced, never rendered from the repo"
    names = {d["metadata"]["name"] for d in workloads(rendered[overlay])}
    assert names == {
        "task-api",
        "notify",
        "notify-worker",
        "audit",
        "reminders",
        "audit-flow",
        "reminders-flow",
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_locked_down_and_probed(overlay: str, rendered: dict[str, Docs]) -> None:
    for workload in workloads(rendered[overlay]):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for container in containers(workload):
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"] and container["resources"]["limits"]
        main = pod["containers"][0]
        assert "livenessProbe" in main, workload["metadata"]["name"]
        if workload["kind"] == "Deployment":
            assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_dataflows_are_statefulsets_with_recovery_volumes(
    overlay: str, rendered: dict[str, Docs]
) -> None:
    sets = by_kind(rendered[overlay], "StatefulSet")
    for name, flow in (("audit-flow", "audit"), ("reminders-flow", "reminders")):
        spec = sets[name]["spec"]
        assert spec["replicas"] == 1
        claims = {c["metadata"]["name"] for c in spec["volumeClaimTemplates"]}
        assert claims == {"recovery"}
        main = spec["template"]["spec"]["containers"][0]
        assert main["args"] == ["flow", flow]
        mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
        assert mounts["recovery"] == "/var/lib/taskflow/recovery"
        # Liveness from the flow's heartbeats (runtime/flow.py), on its metrics port.
        assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert {"name": "metrics", "containerPort": 9100} in main["ports"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_hpas_pdbs_and_ingress_point_at_real_things(
    overlay: str, rendered: dict[str, Docs]
) -> None:
    docs = rendered[overlay]
    pod_labels = [w["spec"]["template"]["metadata"]["labels"] for w in workloads(docs)]

    def selects(selector: dict[str, str]) -> bool:
        return any(selector.items() <= labels.items() for labels in pod_labels)

    services = by_kind(docs, "Service")
    for name, svc in services.items():
        assert selects(svc["spec"]["selector"]), f"Service {name} selects no pod"
    for name, pdb in by_kind(docs, "PodDisruptionBudget").items():
        assert selects(pdb["spec"]["selector"]["matchLabels"]), f"PDB {name} selects no pod"
    deployments = by_kind(docs, "Deployment")
    for hpa in by_kind(docs, "HorizontalPodAutoscaler").values():
        target = hpa["spec"]["scaleTargetRef"]["name"]
        assert target in deployments and target in {"task-api", "notify", "audit", "reminders"}
    assert set(by_kind(docs, "HorizontalPodAutoscaler")) == {
        "task-api",
        "notify",
        "audit",
        "reminders",
    }
    routes = {}
    for ingress in by_kind(docs, "Ingress").values():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] in services
                routes[path["path"]] = (backend["name"], ingress["metadata"]["annotations"])
    assert routes["/api/v1/tasks"][0] == "task-api"
    assert routes["/api/v1/audit"][0] == "audit"
    assert routes["/api/v1/reminders"][0] == "reminders"
    ws_service, ws_annotations = routes["/ws"]
    assert ws_service == "notify"
    assert int(ws_annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_strimzi_resources_have_the_fields_we_rely_on(
    overlay: str, rendered: dict[str, Docs]
) -> None:
    docs = rendered[overlay]
    kafkas = by_kind(docs, "Kafka")
    assert list(kafkas) == ["taskflow"]
    kafka = kafkas["taskflow"]
    assert kafka["apiVersion"] == "kafka.strimzi.io/v1beta2"
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    listener = kafka["spec"]["kafka"]["listeners"][0]
    assert listener["tls"] is True and listener["authentication"]["type"] == "scram-sha-512"
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    assert {"topicOperator", "userOperator"} <= set(kafka["spec"]["entityOperator"])
    pools = by_kind(docs, "KafkaNodePool")
    brokers = sum(p["spec"]["replicas"] for p in pools.values() if "broker" in p["spec"]["roles"])
    for pool in pools.values():
        assert pool["metadata"]["labels"]["strimzi.io/cluster"] == "taskflow"
    topics = by_kind(docs, "KafkaTopic")
    assert {t["spec"]["topicName"] for t in topics.values()} == set(Topics().all())
    for topic in topics.values():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "taskflow"
        assert topic["spec"]["partitions"] >= 1
        assert 1 <= topic["spec"]["replicas"] <= brokers
        assert int(topic["spec"]["config"]["min.insync.replicas"]) <= topic["spec"]["replicas"]
    users = by_kind(docs, "KafkaUser")
    valid_ops = {
        "Read",
        "Write",
        "Create",
        "Delete",
        "Alter",
        "Describe",
        "IdempotentWrite",
        "DescribeConfigs",
        "AlterConfigs",
        "ClusterAction",
        "All",
    }
    for user in users.values():
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        for acl in user["spec"]["authorization"]["acls"]:
            assert set(acl["operations"]) <= valid_ops
    # Every Kafka password a pod reads comes from the Secret of an existing KafkaUser.
    for workload in workloads(docs):
        for container in containers(workload):
            env = {e["name"]: e for e in container["env"]}
            password = env["TASKFLOW_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
            assert password["name"] in users and password["key"] == "password"
            assert env["TASKFLOW_KAFKA_SASL_USERNAME"]["value"] == password["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_scales_the_notification_worker_on_its_groups_lag(
    overlay: str, rendered: dict[str, Docs]
) -> None:
    docs = rendered[overlay]
    scaled = by_kind(docs, "ScaledObject")["notify-worker"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    target = by_kind(docs, "Deployment")[scaled["spec"]["scaleTargetRef"]["name"]]
    assert "replicas" not in target["spec"], "KEDA owns the worker's replica count"
    env = {
        e["name"]: e.get("value")
        for e in target["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["TASKFLOW_NOTIFY_RUN_WORKER"] == "true"
    assert env["TASKFLOW_NOTIFY_RUN_HUB"] == "false"
    topics = {t["spec"]["topicName"]: t for t in by_kind(docs, "KafkaTopic").values()}
    auths = by_kind(docs, "TriggerAuthentication")
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["type"] == "kafka"
        meta = trigger["metadata"]
        assert meta["consumerGroup"] == WORKER_GROUP
        assert meta["topic"] in topics
        assert int(meta["lagThreshold"]) > 0
        assert trigger["authenticationRef"]["name"] in auths
        # More consumers than partitions would sit idle.
        assert scaled["spec"]["maxReplicaCount"] <= topics[meta["topic"]]["spec"]["partitions"]
    params = {ref["parameter"] for ref in auths["taskflow-keda-kafka"]["spec"]["secretTargetRef"]}
    assert {"username", "password"} <= params


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default_and_open_only_what_is_needed(
    overlay: str, rendered: dict[str, Docs]
) -> None:
    policies = by_kind(rendered[overlay], "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    (expression,) = deny["podSelector"]["matchExpressions"]
    assert expression["operator"] == "In"
    for workload in workloads(rendered[overlay]):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert labels[expression["key"]] in expression["values"], "a pod escapes default-deny"
    apis = policies["taskflow-apis-ingress"]["spec"]
    for rule in apis["ingress"]:
        assert rule["from"], "an ingress rule without `from` would admit everyone"
    delivery = policies["notify-delivery-egress"]["spec"]["egress"][0]["to"][0]["ipBlock"]
    assert "10.0.0.0/8" in delivery["except"], "webhooks must not reach cluster-internal IPs"


def test_prod_meshes_every_workload_with_linkerd(rendered: dict[str, Docs]) -> None:
    for workload in workloads(rendered["prod"]):
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert annotations["linkerd.io/inject"] == "enabled", workload["metadata"]["name"]
        assert annotations["config.linkerd.io/default-inbound-policy"] == "all-authenticated"
    for workload in workloads(rendered["dev"]):
        assert "linkerd.io/inject" not in workload["spec"]["template"]["metadata"].get(
            "annotations", {}
        )
    for doc in rendered["prod"]:
        assert doc.get("metadata", {}).get("namespace", "taskflow") == "taskflow"


def test_prod_ingress_sends_to_services_so_the_mesh_sees_the_traffic(
    rendered: dict[str, Docs],
) -> None:
    for ingress in by_kind(rendered["prod"], "Ingress").values():
        annotations = ingress["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/service-upstream"] == "true"


def test_monitoring_bundle_renders_and_scrapes_ports_the_pods_declare(
    rendered: dict[str, Docs],
) -> None:
    result = subprocess.run(
        [kubectl(), "kustomize", str(DEPLOY / "k8s" / "monitoring")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    for doc in docs:
        assert doc["metadata"]["namespace"] == "monitoring"
        if doc["kind"] not in OTHER_CRD_KINDS:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    collector = by_kind(docs, "Deployment")["otel-collector"]["spec"]["template"]["spec"]
    assert collector["volumes"][0]["configMap"]["name"] == "taskflow-otel-collector"
    service = by_kind(docs, "Service")["otel-collector"]
    assert {p["port"] for p in service["spec"]["ports"]} >= {4317, 4318}
    monitor = by_kind(docs, "PodMonitor")["taskflow"]["spec"]
    scraped = {e["port"] for e in monitor["podMetricsEndpoints"]}
    for workload in workloads(rendered["prod"]):
        template = workload["spec"]["template"]
        assert template["metadata"]["labels"]["taskflow/service-name"].startswith("taskflow-")
        ports = {p["name"] for p in template["spec"]["containers"][0].get("ports", [])}
        assert ports & scraped, f"{workload['metadata']['name']} exposes no scraped port"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_the_cli_serves_runs_in_kubernetes(
    overlay: str, rendered: dict[str, Docs]
) -> None:
    from deploy.cli import SERVICES

    served = {
        w["spec"]["template"]["spec"]["containers"][0]["args"][1]
        for w in workloads(rendered[overlay])
        if w["spec"]["template"]["spec"]["containers"][0]["args"][0] == "serve"
    }
    assert served == set(SERVICES)
