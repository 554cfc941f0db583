"""deploy/compose.security.yaml starts its broker: the apache/kafka image's configure
script gets what it requires, the files it reads are mounted and made by make-certs.sh, and
the SCRAM bootstrap can neither wait forever nor create a user the clients do not use.

The image's rules (docker/resources/common-scripts/configure in apache/kafka), mirrored in
`configure_problems`: an advertised `SSL://` or `SASL_SSL://` listener requires
KAFKA_SSL_KEYSTORE_FILENAME, KAFKA_SSL_KEY_CREDENTIALS and KAFKA_SSL_KEYSTORE_CREDENTIALS,
file names under /etc/kafka/secrets/ (the script sets ssl.keystore.location and the two
passwords from them); ssl.client.auth required/requested also needs the truststore pair;
an advertised `SASL_*://` listener requires KAFKA_OPTS with a JAAS file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.deploy.conftest import DEPLOY

SECRETS_DIR = "/etc/kafka/secrets/"


def broker(compose: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """The kafka service as compose merges the two files (mappings merged key by key,
    sequences of the override replace or extend as compose does for these fields)."""
    base, extra = compose["services"]["kafka"], override["services"]["kafka"]
    merged = {**base, **extra}
    merged["environment"] = {**base.get("environment", {}), **extra.get("environment", {})}
    by_target = {m.split(":")[1]: m for m in base.get("volumes", [])}
    by_target |= {m.split(":")[1]: m for m in extra.get("volumes", [])}
    merged["volumes"] = list(by_target.values())
    merged["secrets"] = [*base.get("secrets", []), *extra.get("secrets", [])]
    return merged


def mounted_files(service: dict[str, Any], override: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host file, for bind mounts and file secrets."""
    out: dict[str, Path] = {}
    for mount in service["volumes"]:
        source, target = mount.split(":")[:2]
        if source.startswith("./"):
            out[target] = DEPLOY / source
    for secret in service["secrets"]:
        name, target = (
            (secret, None) if isinstance(secret, str) else (secret["source"], secret.get("target"))
        )
        path = target if target and target.startswith("/") else f"/run/secrets/{target or name}"
        out[path] = DEPLOY / override["secrets"][name]["file"]
    return out


def configure_problems(env: dict[str, str], files: dict[str, Path]) -> list[str]:
    problems: list[str] = []
    advertised = env.get("KAFKA_ADVERTISED_LISTENERS", "")

    def needs_file(variable: str) -> None:
        name = env.get(variable)
        if not name:
            problems.append(f"{variable} not set")
        elif SECRETS_DIR + name not in files:
            problems.append(f"{variable}: {SECRETS_DIR}{name} is not mounted")

    if "SSL://" in advertised:
        for variable in (
            "KAFKA_SSL_KEYSTORE_FILENAME",
            "KAFKA_SSL_KEY_CREDENTIALS",
            "KAFKA_SSL_KEYSTORE_CREDENTIALS",
        ):
            needs_file(variable)
        if any(mode in env.get("KAFKA_SSL_CLIENT_AUTH", "") for mode in ("required", "requested")):
            needs_file("KAFKA_SSL_TRUSTSTORE_FILENAME")
            needs_file("KAFKA_SSL_TRUSTSTORE_CREDENTIALS")
        # The script always sets ssl.keystore.password; Kafka refuses one with a PEM keystore.
        if env.get("KAFKA_SSL_KEYSTORE_TYPE", "JKS").upper() == "PEM":
            problems.append("a PEM keystore cannot take the password the image sets")
        if "KAFKA_SSL_KEYSTORE_LOCATION" in env:
            problems.append("KAFKA_SSL_KEYSTORE_LOCATION is overwritten by the image")
    if re.search(r"SASL_\w*://", advertised):
        options = env.get("KAFKA_OPTS", "")
        jaas = re.search(r"-Djava\.security\.auth\.login\.config=(\S+)", options)
        if not jaas:
            problems.append("KAFKA_OPTS with -Djava.security.auth.login.config is required")
        elif jaas[1] not in files or not files[jaas[1]].is_file():
            problems.append(f"JAAS file {jaas[1]} is not mounted from the repository")
        else:
            text = files[jaas[1]].read_text()
            for mechanism in env.get("KAFKA_SASL_ENABLED_MECHANISMS", "GSSAPI").split(","):
                if mechanism.startswith("SCRAM") and "ScramLoginModule" not in text:
                    problems.append(f"JAAS file has no login module for {mechanism}")
            if "KafkaServer" not in text:
                problems.append("JAAS file has no KafkaServer section")
    return problems


def listeners(value: str) -> dict[str, str]:
    """`NAME://host:port,...` -> {NAME: host:port}."""
    return dict(item.split("://", 1) for item in value.split(","))


def test_the_image_configure_script_gets_what_it_requires(
    compose: dict[str, Any], compose_security: dict[str, Any]
) -> None:
    service = broker(compose, compose_security)
    files = mounted_files(service, compose_security)
    assert configure_problems(service["environment"], files) == []


def test_the_configure_check_catches_the_defects_the_review_found(
    compose: dict[str, Any], compose_security: dict[str, Any]
) -> None:
    service = broker(compose, compose_security)
    files = mounted_files(service, compose_security)
    env = dict(service["environment"])
    # The file as it was: a PEM keystore by location, no KAFKA_OPTS.
    for key in (
        "KAFKA_SSL_KEYSTORE_FILENAME",
        "KAFKA_SSL_KEYSTORE_CREDENTIALS",
        "KAFKA_SSL_KEY_CREDENTIALS",
        "KAFKA_OPTS",
    ):
        env.pop(key)
    env |= {"KAFKA_SSL_KEYSTORE_TYPE": "PEM", "KAFKA_SSL_KEYSTORE_LOCATION": "/run/secrets/x"}
    problems = configure_problems(env, files)
    assert "KAFKA_SSL_KEYSTORE_FILENAME not set" in problems
    assert "KAFKA_OPTS with -Djava.security.auth.login.config is required" in problems
    assert "a PEM keystore cannot take the password the image sets" in problems


def test_the_secret_files_are_the_ones_make_certs_writes(compose_security: dict[str, Any]) -> None:
    script = (DEPLOY / "tls" / "make-certs.sh").read_text()
    for secret in compose_security["secrets"].values():
        name = Path(secret["file"]).name
        assert name in script, f"make-certs.sh does not write {secret['file']}"
    # PKCS#12 with the keystore password file, as the compose file declares.
    assert re.search(
        r"openssl pkcs12 -export .*-passout file:\.\./secrets/kafka-keystore-password", script, re.S
    )


def test_listeners_are_consistent_with_the_clients(
    compose: dict[str, Any], compose_security: dict[str, Any]
) -> None:
    service = broker(compose, compose_security)
    env = service["environment"]
    declared = listeners(env["KAFKA_LISTENERS"])
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(declared) <= set(protocols) and set(advertised) <= set(declared)
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in declared
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in declared
    assert "CONTROLLER" not in advertised
    # Clients and the topics job use the advertised SASL_SSL address.
    sasl = [name for name, protocol in protocols.items() if protocol == "SASL_SSL"]
    (name,) = sasl
    client = compose_security["x-kafka-client-env"]
    assert client["TASKFLOW_KAFKA_BOOTSTRAP"] == advertised[name]
    assert (
        f"--bootstrap-server {advertised[name]}"
        in compose_security["services"]["topics"]["command"][0]
    )
    assert client["TASKFLOW_KAFKA_SASL_MECHANISM"] in env["KAFKA_SASL_ENABLED_MECHANISMS"].split(
        ","
    )


def test_the_scram_bootstrap_cannot_wait_forever(
    compose: dict[str, Any], compose_security: dict[str, Any]
) -> None:
    service = broker(compose, compose_security)
    script = service["command"][0]
    env = service["environment"]
    loopback = listeners(env["KAFKA_LISTENERS"])["LOOPBACK"]
    assert protocols_of(env)["LOOPBACK"] == "PLAINTEXT" and loopback.startswith("127.0.0.1:")
    assert f"--bootstrap-server {loopback}" in script
    assert 'kill -0 "$$broker"' in script, "the wait must notice the broker has exited"
    assert re.search(r"seq \d+", script), "the wait must be bounded"
    # The user it creates is the one every client logs in as, with the clients' mechanism.
    client = compose_security["x-kafka-client-env"]
    assert f"--entity-name {client['TASKFLOW_KAFKA_SASL_USERNAME']}" in script
    assert f"{client['TASKFLOW_KAFKA_SASL_MECHANISM']}=[iterations=" in script
    assert "kafka_scram_password" in service["secrets"]
    # Healthy only once that user exists, so the clients start after it.
    assert "--entity-name " + client["TASKFLOW_KAFKA_SASL_USERNAME"] in " ".join(
        service["healthcheck"]["test"]
    )


def protocols_of(env: dict[str, str]) -> dict[str, str]:
    return dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
