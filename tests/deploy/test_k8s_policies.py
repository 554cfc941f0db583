"""Policies on the rendered manifests: the service mesh against the NetworkPolicies (prod),
replica ownership, disruption budgets, spreading, and memory limits against the measured
figures in the README."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, OVERLAYS, ROOT

Docs = list[dict[str, Any]]
PROXY_INBOUND = 4143
# Linkerd control plane: identity (certificates), destination, policy.
CONTROL_PLANE = {8080, 8086, 8090}
NATIVE_SIDECAR = "config.alpha.linkerd.io/proxy-enable-native-sidecar"
LINKERD_KINDS = {"Server", "AuthorizationPolicy", "MeshTLSAuthentication", "NetworkAuthentication"}
MiB = 1024 * 1024
KiB = 1024


def by_kind(docs: Docs, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def workloads(docs: Docs) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in {"Deployment", "StatefulSet"}]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        value = labels.get(expression["key"])
        if expression["operator"] == "In" and value not in expression["values"]:
            return False
        if expression["operator"] == "NotIn" and value in expression["values"]:
            return False
    return True


def quantity(value: str) -> int:
    units = {"Ki": KiB, "Mi": MiB, "Gi": 1024 * MiB}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return int(float(value.removesuffix(suffix)) * factor)
    return int(value)


# --- item 2: the mesh and the NetworkPolicies (prod) ------------------------------------


def test_prod_network_policies_admit_the_proxy_port_wherever_an_app_port_is_open(
    rendered: dict[str, Docs],
) -> None:
    policies = by_kind(rendered["prod"], "NetworkPolicy")
    checked = 0
    for name, policy in policies.items():
        for rule in policy["spec"].get("ingress", []):
            ports = {p["port"] for p in rule.get("ports", [])}
            if ports:
                assert PROXY_INBOUND in ports, f"{name}: meshed traffic arrives on 4143"
                checked += 1
    assert checked >= 3
    # Without the mesh (dev) the proxy port stays closed.
    for policy in by_kind(rendered["dev"], "NetworkPolicy").values():
        for rule in policy["spec"].get("ingress", []):
            assert PROXY_INBOUND not in {p["port"] for p in rule.get("ports", [])}


def test_prod_proxies_can_reach_the_linkerd_control_plane(rendered: dict[str, Docs]) -> None:
    docs = rendered["prod"]
    egress = [
        p for p in by_kind(docs, "NetworkPolicy").values() if "Egress" in p["spec"]["policyTypes"]
    ]
    for workload in workloads(docs):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        reachable: set[int] = set()
        for policy in egress:
            if not selects(policy["spec"]["podSelector"], labels):
                continue
            for rule in policy["spec"].get("egress", []):
                to_linkerd = any(
                    peer.get("namespaceSelector", {}).get("matchLabels", {})
                    == {"kubernetes.io/metadata.name": "linkerd"}
                    for peer in rule.get("to", [])
                )
                if to_linkerd:
                    reachable |= {p["port"] for p in rule["ports"]}
        assert CONTROL_PLANE <= reachable, workload["metadata"]["name"]


def test_prod_proxies_run_as_native_sidecars_so_init_containers_have_network(
    rendered: dict[str, Docs],
) -> None:
    for workload in workloads(rendered["prod"]):
        template = workload["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["linkerd.io/inject"] == "enabled"
        assert template["spec"].get("initContainers"), "every workload migrates first"
        assert annotations[NATIVE_SIDECAR] == "true", workload["metadata"]["name"]
    for workload in workloads(rendered["dev"]):
        assert NATIVE_SIDECAR not in workload["spec"]["template"]["metadata"].get("annotations", {})


def _authentications(docs: Docs, server: str) -> set[tuple[str, str]]:
    """(kind, name) of every authentication an AuthorizationPolicy on `server` accepts."""
    out: set[tuple[str, str]] = set()
    for policy in by_kind(docs, "AuthorizationPolicy").values():
        target = policy["spec"]["targetRef"]
        if (target["kind"], target["name"]) == ("Server", server):
            out |= {(r["kind"], r["name"]) for r in policy["spec"]["requiredAuthenticationRefs"]}
    return out


def test_prod_admits_unmeshed_prometheus_and_the_ingress_through_linkerd_policy(
    rendered: dict[str, Docs],
) -> None:
    docs = rendered["prod"]
    namespace = by_kind(docs, "Namespace")["taskflow"]
    assert (
        namespace["metadata"]["annotations"]["config.linkerd.io/default-inbound-policy"]
        == "all-authenticated"
    )
    servers = by_kind(docs, "Server")
    networks = by_kind(docs, "NetworkAuthentication")
    meshed = by_kind(docs, "MeshTLSAuthentication")
    for auth_kind, name in {a for s in servers for a in _authentications(docs, s)}:
        assert name in (networks if auth_kind == "NetworkAuthentication" else meshed), name
    for network in networks.values():
        assert network["spec"]["networks"], "an empty NetworkAuthentication admits nobody"
    for workload in workloads(docs):
        template = workload["spec"]["template"]
        labels = template["metadata"]["labels"]
        ports = {p["name"] for p in template["spec"]["containers"][0].get("ports", [])}
        assert ports, workload["metadata"]["name"]
        for port in ports:  # `http` (APIs, worker) or `metrics` (dataflows): scraped
            (server,) = [
                name
                for name, s in servers.items()
                if s["spec"]["port"] == port and selects(s["spec"]["podSelector"], labels)
            ]
            kinds = {kind for kind, _ in _authentications(docs, server)}
            assert "NetworkAuthentication" in kinds, f"{server}: unmeshed Prometheus refused"
            if labels["app.kubernetes.io/component"] == "api":
                (ingress,) = [
                    meshed[n]
                    for k, n in _authentications(docs, server)
                    if k == "MeshTLSAuthentication"
                ]
                refs = ingress["spec"]["identityRefs"]
                assert {"kind": "ServiceAccount", "name": "ingress-nginx",
                        "namespace": "ingress-nginx"} in refs  # fmt: skip
    for kind in LINKERD_KINDS:
        assert not by_kind(rendered["dev"], kind), f"dev has no mesh, yet renders a {kind}"


# --- item 6: replicas, budgets, spreading, memory -----------------------------------------


def _autoscaled(docs: Docs) -> dict[str, int]:
    """Deployment name -> the smallest replica count its autoscaler keeps."""
    out = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"]["minReplicas"]
        for h in by_kind(docs, "HorizontalPodAutoscaler").values()
    }
    for scaled in by_kind(docs, "ScaledObject").values():
        out[scaled["spec"]["scaleTargetRef"]["name"]] = scaled["spec"].get("minReplicaCount", 0)
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaled_deployments_pin_no_replica_count(
    overlay: str, rendered: dict[str, Docs]
) -> None:
    docs = rendered[overlay]
    deployments = by_kind(docs, "Deployment")
    autoscaled = _autoscaled(docs)
    assert set(autoscaled) == set(deployments)
    for name in autoscaled:
        assert "replicas" not in deployments[name]["spec"], f"{overlay}: {name} pins replicas"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_let_a_node_drain_at_the_smallest_scale(
    overlay: str, rendered: dict[str, Docs]
) -> None:
    docs = rendered[overlay]
    smallest = _autoscaled(docs)
    pod_labels = {
        w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"] for w in workloads(docs)
    }
    for name, pdb in by_kind(docs, "PodDisruptionBudget").items():
        (target,) = [
            w for w, labels in pod_labels.items() if selects(pdb["spec"]["selector"], labels)
        ]
        replicas = max(smallest[target], 1)
        spec = pdb["spec"]
        if "maxUnavailable" in spec:
            allowed = int(spec["maxUnavailable"])
        else:
            allowed = replicas - int(spec["minAvailable"])
        assert allowed >= 1, f"{overlay}: PDB {name} blocks drains at {replicas} replica(s)"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployments_spread_over_nodes_and_zones(overlay: str, rendered: dict[str, Docs]) -> None:
    for deployment in by_kind(rendered[overlay], "Deployment").values():
        template = deployment["spec"]["template"]
        constraints = template["spec"]["topologySpreadConstraints"]
        keys = {c["topologyKey"] for c in constraints}
        assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
        for constraint in constraints:
            assert selects(constraint["labelSelector"], template["metadata"]["labels"])
            assert constraint["maxSkew"] == 1


def _readme_figures() -> dict[str, float]:
    """The benchmark figures the limits are sized from, read from the README's table."""
    text = (ROOT / "README.md").read_text()
    hub = re.search(r"(\d[\d,]*) connections \([^)]*\), [\d.]+–([\d.]+) KiB each", text)
    flow = re.search(r"1,000,000 pending, no updates \| (\d+) MiB RSS", text)
    e2e = re.search(r"Memory \(PSS\)[^|]*?notify (\d+)", text)
    assert hub and flow and e2e, "README benchmark figures moved: update the sizing"
    return {
        "hub_connections": float(hub[1].replace(",", "")),
        "hub_kib_per_connection": float(hub[2]),
        "reminder_flow_mib_at_1m": float(flow[1]),
        "notify_baseline_mib": float(e2e[1]),
    }


def _memory_limit(docs: Docs, name: str) -> int:
    workload = next(w for w in workloads(docs) if w["metadata"]["name"] == name)
    limit: str = workload["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"][
        "memory"
    ]
    return quantity(limit)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_memory_limits_hold_the_measured_loads(overlay: str, rendered: dict[str, Docs]) -> None:
    figures = _readme_figures()
    docs = rendered[overlay]
    hub = figures["hub_connections"] * figures["hub_kib_per_connection"] * KiB
    hub += (figures["notify_baseline_mib"] + 64) * MiB  # + the feed's 64 MiB prefetch queue
    assert _memory_limit(docs, "notify") >= 1.15 * hub
    flow = figures["reminder_flow_mib_at_1m"] * MiB
    assert _memory_limit(docs, "reminders-flow") >= 1.3 * flow
    # The audit flow's worst case: 18 partition consumers x librdkafka's 64 MiB prefetch.
    assert _memory_limit(docs, "audit-flow") >= 18 * 64 * MiB
    for workload in workloads(docs):
        resources = workload["spec"]["template"]["spec"]["containers"][0]["resources"]
        assert quantity(resources["requests"]["memory"]) <= quantity(resources["limits"]["memory"])


def test_every_main_container_limit_names_its_figure() -> None:
    """A comment above each main container's `resources:` names the bench figure used."""
    checked = 0
    for path in sorted((DEPLOY / "k8s" / "base").glob("*.yaml")):
        kinds = {d["kind"] for d in yaml.safe_load_all(path.read_text()) if d}
        if not kinds & {"Deployment", "StatefulSet"}:
            continue
        lines = path.read_text().splitlines()
        container = ""
        for i, line in enumerate(lines):
            match = re.match(r"^      - name: ([\w-]+)$", line)  # a container, not an env entry
            if match:
                container = match[1]
            if line.strip() != "resources:" or container == "migrate":
                continue
            comment = []
            for above in reversed(lines[:i]):
                if not above.strip().startswith("#"):
                    break
                comment.append(above)
            text = " ".join(comment)
            assert "bench" in text and "Sizing" in text, f"{path.name}: {container} limit"
            checked += 1
    assert checked == 7
