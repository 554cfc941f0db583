"""Nothing secret in the manifests or compose files, Kafka credentials from each service's
own KafkaUser, and production volumes on an encrypted storage class."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from events.kafka import KafkaSettings
from tests.deploy.conftest import DEPLOY, OVERLAYS, kubectl, load_yaml

Docs = list[dict[str, Any]]
# Variable names that hold secrets, and the ones among them that do not (public keys, key
# ids, paths to files).
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE|_KEY$|DIGEST_KEY|_KEK$|DATABASE_URL")
NOT_SECRET = re.compile(r"PUBLIC_KEY$|_KEY_ID$|_LOCATION$|_FILE$")
# `password: hunter2`, `secret="abc..."`: a name that says secret, then a literal value (not
# an interpolation, a file path or a reference).
LITERAL = re.compile(
    r"(?i)(password|passwd|secret|token|api[_-]?key)\"?\s*[:=]\s*[\"']?(?![$/{(])[\w+/=.-]{6,}"
)
URL_PASSWORD = re.compile(r"^[a-z+]+://[^:@/]*(?::(?P<password>[^@]*))?@")
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
STORAGE_CLASS = "taskflow-encrypted"


def _is_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name)) and not NOT_SECRET.search(name)


def _interpolated(value: str) -> bool:
    """`${VAR...}`, or a URL whose password (if any) is `${VAR...}`."""
    url = URL_PASSWORD.match(value)
    if url:
        return url["password"] is None or url["password"].startswith("${")
    return value.startswith("${")


def _containers(docs: Docs) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for doc in docs:
        if doc["kind"] in {"Deployment", "StatefulSet"}:
            pod = doc["spec"]["template"]["spec"]
            for container in [*pod.get("initContainers", []), *pod["containers"]]:
                out.append((doc["metadata"]["name"], container))
    return out


def _render(path: Path) -> str:
    result = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secret_values_are_only_ever_referenced(overlay: str, rendered: dict[str, Docs]) -> None:
    docs = rendered[overlay]
    assert not [d for d in docs if d["kind"] == "Secret"], "Secrets are created out of band"
    for workload, container in _containers(docs):
        for env in container.get("env", []):
            if _is_secret(env["name"]):
                assert "value" not in env, f"{workload}: {env['name']} is a literal"
                assert "secretKeyRef" in env["valueFrom"], f"{workload}: {env['name']}"
    for config_map in (d for d in docs if d["kind"] == "ConfigMap"):
        secret_keys = [key for key in config_map.get("data", {}) if _is_secret(key)]
        assert not secret_keys, f"ConfigMap {config_map['metadata']['name']}: {secret_keys}"


@pytest.mark.parametrize(
    "path", [*(f"k8s/overlays/{o}" for o in OVERLAYS), "k8s/monitoring"], ids=str
)
def test_no_literal_secret_in_any_rendered_manifest(path: str) -> None:
    text = _render(DEPLOY / path)
    assert not PRIVATE_KEY.search(text)
    assert not LITERAL.findall(text), LITERAL.findall(text)


@pytest.mark.parametrize("name", ["compose.yaml", "compose.security.yaml"])
def test_no_literal_secret_in_the_compose_files(name: str) -> None:
    text = (DEPLOY / name).read_text()
    assert not PRIVATE_KEY.search(text)
    assert not LITERAL.findall(text), LITERAL.findall(text)
    for service, spec in load_yaml(DEPLOY / name)["services"].items():
        for key, value in (spec.get("environment") or {}).items():
            if _is_secret(key) and not key.startswith("KAFKA_LISTENER_NAME"):
                # Interpolated from deploy/.env at `up` time, never written here.
                assert _interpolated(str(value)), f"{name} {service}: {key}={value}"


def test_the_literal_checks_would_catch_a_mistake() -> None:
    assert LITERAL.search("TASKFLOW_JWT_SECRET: change-me-please")
    assert LITERAL.search('password="hunter2hunter2"')
    assert not LITERAL.search("TASKFLOW_JWT_SECRET: ${TASKFLOW_JWT_SECRET:?set it}")
    assert not LITERAL.search("TASKFLOW_KAFKA_SASL_PASSWORD_FILE: /run/secrets/kafka")
    assert not _interpolated("postgresql://taskflow:hunter2@postgres/x")
    assert _interpolated("postgresql://taskflow:${POSTGRES_PASSWORD:?}@postgres/x")
    assert _is_secret("TASKFLOW_NOTIFY_VAPID_PRIVATE_KEY")
    assert not _is_secret("TASKFLOW_NOTIFY_VAPID_PUBLIC_KEY")


def test_the_sasl_override_reads_the_password_from_a_compose_secret_file(
    compose_security: dict[str, Any],
) -> None:
    secrets = compose_security["secrets"]
    for secret in secrets.values():
        assert set(secret) == {"file"}, "file secrets only (never `environment:` or inline)"
        assert secret["file"].startswith(("./secrets/", "./tls/"))
    ignored = (DEPLOY / ".gitignore").read_text().split()
    assert {"secrets/", "tls/*.pem", "tls/*.key"} <= set(ignored)
    for name, service in compose_security["services"].items():
        env = service.get("environment", {})
        assert not any(k.endswith("PASSWORD") for k in env), f"{name}: password in env"
        for key, value in env.items():
            if key.endswith("_FILE"):
                secret = value.removeprefix("/run/secrets/")
                assert secret in secrets and secret in service["secrets"], f"{name}: {key}"


def test_the_sasl_override_settings_pass_our_checks(
    compose_security: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = compose_security["services"]["task-api"]["environment"]
    password, ca = tmp_path / "password", tmp_path / "ca.crt"
    password.write_text("from-a-compose-secret\n")
    ca.write_text("PEM")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TASKFLOW_KAFKA_SASL_PASSWORD_FILE", str(password))
    monkeypatch.setenv("TASKFLOW_KAFKA_SSL_CA_LOCATION", str(ca))
    conf = KafkaSettings().common()
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.password"] == "from-a-compose-secret"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_workload_uses_its_own_kafka_user_and_the_cluster_ca(
    overlay: str, rendered: dict[str, Docs], tmp_path: Path
) -> None:
    docs = rendered[overlay]
    users = {d["metadata"]["name"]: d for d in docs if d["kind"] == "KafkaUser"}
    config = next(
        d for d in docs if d["kind"] == "ConfigMap" and "TASKFLOW_KAFKA_BOOTSTRAP" in d["data"]
    )
    for workload, container in _containers(docs):
        env = {e["name"]: e for e in container.get("env", [])}
        user = env["TASKFLOW_KAFKA_SASL_USERNAME"]["value"]
        assert user in users, f"{workload}: no KafkaUser {user}"
        assert users[user]["spec"]["authentication"]["type"] == "scram-sha-512"
        ref = env["TASKFLOW_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        # Strimzi's User Operator writes the password into a Secret named after the user.
        assert (ref["name"], ref["key"]) == (user, "password"), workload
        ca_dir = config["data"]["TASKFLOW_KAFKA_SSL_CA_LOCATION"].rsplit("/", 1)[0]
        assert any(m["mountPath"] == ca_dir for m in container["volumeMounts"]), workload
    # And the ConfigMap's Kafka settings are a combination our settings accept.
    (tmp_path / "ca.crt").write_text("PEM")
    kafka = {
        key.removeprefix("TASKFLOW_KAFKA_").lower(): value
        for key, value in config["data"].items()
        if key.startswith("TASKFLOW_KAFKA_")
    }
    kafka |= {"ssl_ca_location": str(tmp_path / "ca.crt"), "sasl_username": "u"}
    assert KafkaSettings(**kafka, sasl_password="p").common()["security.protocol"] == "SASL_SSL"


def test_kafka_users_may_touch_only_taskflow_topics_and_their_groups(
    rendered: dict[str, Docs],
) -> None:
    for user in (d for d in rendered["prod"] if d["kind"] == "KafkaUser"):
        for acl in user["spec"]["authorization"]["acls"]:
            resource = acl["resource"]
            assert "All" not in acl["operations"], user["metadata"]["name"]
            if resource["type"] == "topic":
                assert resource["name"].startswith("taskflow."), resource
            if resource["type"] == "group":
                assert resource["name"] != "*", resource


def test_prod_volumes_sit_on_an_encrypted_storage_class(rendered: dict[str, Docs]) -> None:
    docs = rendered["prod"]
    classes = {d["metadata"]["name"]: d for d in docs if d["kind"] == "StorageClass"}
    assert classes[STORAGE_CLASS]["parameters"]["encrypted"] == "true"
    assert classes[STORAGE_CLASS]["reclaimPolicy"] == "Retain"
    for flow in (d for d in docs if d["kind"] == "StatefulSet"):
        for claim in flow["spec"]["volumeClaimTemplates"]:
            assert claim["spec"]["storageClassName"] == STORAGE_CLASS, flow["metadata"]["name"]
    for pool in (d for d in docs if d["kind"] == "KafkaNodePool"):
        for volume in pool["spec"]["storage"]["volumes"]:
            assert volume["class"] == STORAGE_CLASS, pool["metadata"]["name"]
