"""Kafka ACL policy: the Strimzi `KafkaUser` ACLs grant each principal exactly what its
processes do, no less (a missing grant is a crash loop: GROUP_AUTHORIZATION_FAILED is not
retriable) and no more.

What each process does is derived from the code, not from the YAML: topic names from
`KafkaSettings().topics`, the worker's group from `NotifySettings`, and the group ids the
code hands librdkafka captured where they are made (Bytewax's KafkaSource partitions, the
hub's feed, the audit service's watermark reader). Which principal runs which process comes
from the rendered workloads (`TASKFLOW_KAFKA_SASL_USERNAME`).
"""

from __future__ import annotations

import copy
import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from events.kafka import KafkaSettings
from notify_ws.settings import NotifySettings
from tests.deploy.conftest import OVERLAYS

Docs = list[dict[str, Any]]
Kind = Literal["topic", "group", "cluster"]
CLUSTER = "kafka-cluster"
# KEDA's credentials come from a Secret made out of band (keda.yaml), not from a workload env.
KEDA_PRINCIPAL = "taskflow-keda"
# Kafka: these operations imply Describe (and AlterConfigs implies DescribeConfigs).
IMPLIES = {
    "Read": {"Describe"},
    "Write": {"Describe"},
    "Delete": {"Describe"},
    "Alter": {"Describe"},
    "AlterConfigs": {"DescribeConfigs"},
}
ALL_OPERATIONS = {
    "Read",
    "Write",
    "Create",
    "Delete",
    "Alter",
    "Describe",
    "ClusterAction",
    "DescribeConfigs",
    "AlterConfigs",
    "IdempotentWrite",
}


@dataclass(frozen=True)
class Need:
    """One operation on one resource; `prefix` for names made at run time (a uuid suffix)."""

    kind: Kind
    name: str
    operation: str
    prefix: bool = False

    def covers(self, kind: Kind, name: str) -> bool:
        if kind != self.kind:
            return False
        return name.startswith(self.name) if self.prefix else name == self.name


def produce(topic: str) -> set[Need]:
    """An idempotent producer (`KafkaSettings.producer`): InitProducerId, then Produce."""
    return {Need("topic", topic, "Write"), Need("cluster", CLUSTER, "IdempotentWrite")}


def consume_in_group(group: str, *topics: str) -> set[Need]:
    """subscribe() and commit: JoinGroup/SyncGroup/OffsetCommit need Read on the group."""
    return {Need("group", group, "Read")} | {Need("topic", t, "Read") for t in topics}


def consume_by_assign(group: str, *topics: str, prefix: bool = False) -> set[Need]:
    """assign() without commits: librdkafka still sends FindCoordinator for its group.id,
    which the broker authorizes as Describe on the group."""
    return {Need("group", group, "Describe", prefix)} | {Need("topic", t, "Read") for t in topics}


def watermarks(group: str, *topics: str) -> set[Need]:
    """A consumer that only reads watermarks (ListOffsets): Describe on the topics, and
    Describe on its group for the coordinator lookup librdkafka makes for any group.id."""
    return {Need("group", group, "Describe")} | {Need("topic", t, "Describe") for t in topics}


# --- group ids as the code hands them to librdkafka -------------------------------------


class _Captured(Exception):
    pass


def _partition_config(source: Any, step_id: str, topic: str) -> dict[str, Any]:
    """The librdkafka config a KafkaSource partition would be built with (Bytewax's own
    defaults merged with the flow's `add_config`), captured instead of connecting."""
    import bytewax.connectors.kafka as bytewax_kafka

    seen: list[dict[str, Any]] = []

    class Recorder:
        _consumer: Any = None  # PacedKafkaSource wraps the partition's consumer

        def __init__(self, _step: str, config: dict[str, Any], *_: Any, **__: Any) -> None:
            seen.append(config)

    real = bytewax_kafka._KafkaSourcePartition
    bytewax_kafka._KafkaSourcePartition = Recorder  # type: ignore[misc,assignment]
    try:
        source.build_part(step_id, f"0-{topic}", None)
    finally:
        bytewax_kafka._KafkaSourcePartition = real  # type: ignore[misc]
    return seen[0]


def bytewax_source_configs(flow: Any) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """(topics, librdkafka config) of every KafkaSource input of a Bytewax flow."""
    import bytewax.connectors.kafka as bytewax_kafka

    for step in flow.substeps:
        source = getattr(step, "source", None)
        if isinstance(source, bytewax_kafka.KafkaSource):
            topics: list[str] = list(source._topics)
            yield topics, _partition_config(source, step.step_id, topics[0])


def _dataflow_module(name: str, attribute: str) -> Any:
    """The module defining a flow's factory (`pipelines.<name>.dataflow`, or the older flat
    `pipelines.<name>`)."""
    for module_name in (f"pipelines.{name}.dataflow", f"pipelines.{name}"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if hasattr(module, attribute):
            return module
    raise AssertionError(f"no {attribute} for the {name} dataflow")


def audit_flow_sources() -> list[tuple[list[str], dict[str, Any]]]:
    from audit_store.settings import AuditSettings

    audit = _dataflow_module("audit", "flow_from_settings")
    # Building the flow starts nothing: the process is wired (runtime.flow) only when
    # bytewax.run asks for the package's `flow`.
    flow = audit.flow_from_settings(AuditSettings(), KafkaSettings())
    return list(bytewax_source_configs(flow))


def reminder_flow_sources() -> list[tuple[list[str], dict[str, Any]]]:
    reminders = _dataflow_module("reminders", "flow_from_env")
    return list(bytewax_source_configs(reminders.flow_from_env()))


def hub_group_prefix() -> str:
    """The hub's feed makes a group id per process (`notify-hub-<uuid>`): the common prefix
    of two of them is the pattern to grant."""
    import notify_ws.hub.feed as feed

    groups: list[str] = []

    def consumer(config: dict[str, Any]) -> Any:
        groups.append(config["group.id"])
        raise _Captured

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(feed, "Consumer", consumer)
        for _ in range(2):
            with pytest.raises(_Captured):
                feed.Feed(KafkaSettings(), None, None, 20)._open()  # type: ignore[arg-type]
    first, second = groups
    assert first != second, "the hub's group is no longer per process: grant it literally"
    # Two random suffixes may share leading characters: cut back to the last separator.
    common = os.path.commonprefix(groups)
    return common[: common.rfind("-") + 1]


def audit_metrics_group() -> str:
    import audit_store.metrics as metrics

    groups: list[str] = []

    def consumer(config: dict[str, Any]) -> Any:
        groups.append(config["group.id"])
        raise _Captured

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(metrics, "Consumer", consumer)
        with pytest.raises(_Captured):
            metrics.WatermarkReader(KafkaSettings().common())
    return groups[0]


def process_needs() -> dict[str, set[Need]]:
    """What each process does against Kafka, keyed by its command line (`serve X`,
    `flow X`) and, for KEDA, by its principal."""
    topics = KafkaSettings().topics
    worker_group = NotifySettings.model_fields["worker_group"].default
    audit_flow: set[Need] = produce(topics.dlq)  # dead letters (KafkaDeadLetters)
    for source_topics, config in audit_flow_sources():
        audit_flow |= consume_by_assign(config["group.id"], *source_topics)
    reminder_flow: set[Need] = produce(topics.reminders) | produce(topics.dlq)
    for source_topics, config in reminder_flow_sources():
        reminder_flow |= consume_by_assign(config["group.id"], *source_topics)
    ingested = (topics.tasks, topics.reminders, topics.notifications)
    return {
        # The outbox relay; readiness lists topics (no ACL: unauthorized ones are omitted).
        "serve task-api": produce(topics.tasks),
        # Worker (decide, persist, dead-letter), hub feed, and the publisher.
        "serve notify": consume_in_group(worker_group, topics.tasks, topics.reminders)
        | produce(topics.dlq)
        | consume_by_assign(hub_group_prefix(), topics.notifications, prefix=True)
        | produce(topics.notifications),
        # Ingestion lag: the watermarks of the topics the flow ingests.
        "serve audit": watermarks(audit_metrics_group(), *ingested),
        "serve reminders": set(),
        "flow audit": audit_flow,
        "flow reminders": reminder_flow,
        # KEDA's Kafka scaler: the worker group's committed offsets and the topics' ends.
        KEDA_PRINCIPAL: {Need("group", worker_group, "Describe")}
        | {Need("topic", t, "Describe") for t in (topics.tasks, topics.reminders)},
    }


# --- what the manifests grant -------------------------------------------------------------


def expand(operations: set[str]) -> set[str]:
    if "All" in operations:
        return set(ALL_OPERATIONS)
    out = set(operations)
    for operation in operations:
        out |= IMPLIES.get(operation, set())
    return out


def principal_needs(docs: Docs) -> dict[str, set[Need]]:
    needs = process_needs()
    by_principal: dict[str, set[Need]] = {KEDA_PRINCIPAL: needs[KEDA_PRINCIPAL]}
    for workload in docs:
        if workload["kind"] not in {"Deployment", "StatefulSet"}:
            continue
        main = workload["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in main.get("env", [])}
        for name in ("TASKFLOW_KAFKA_TOPIC_NAMESPACE", "TASKFLOW_NOTIFY_WORKER_GROUP"):
            assert name not in env, f"{workload['metadata']['name']} overrides {name}"
        process = " ".join(main["args"][:2])
        principal = env["TASKFLOW_KAFKA_SASL_USERNAME"]
        by_principal.setdefault(principal, set()).update(needs[process])
    return by_principal


def granted(user: dict[str, Any], kind: Kind, name: str) -> set[str]:
    ops: set[str] = set()
    for acl in user["spec"]["authorization"]["acls"]:
        assert acl.get("type", "allow") == "allow", "deny ACLs are not modelled here"
        assert acl.get("host", "*") == "*"
        resource = acl["resource"]
        if resource["type"] != kind:
            continue
        if kind != "cluster":
            pattern, literal = resource["name"], resource.get("patternType", "literal")
            hit = name.startswith(pattern) if literal == "prefix" else pattern in (name, "*")
            if not hit:
                continue
        ops |= expand(set(acl["operations"]))
    return ops


def needed(needs: set[Need], kind: Kind, name: str) -> set[str]:
    return expand({n.operation for n in needs if n.covers(kind, name)})


def acl_problems(docs: Docs) -> list[str]:
    """Every (principal, resource, operation) where the grants differ from the needs."""
    users = {d["metadata"]["name"]: d for d in docs if d["kind"] == "KafkaUser"}
    by_principal = principal_needs(docs)
    problems = [f"no KafkaUser for {p}" for p in by_principal if p not in users]
    problems += [f"KafkaUser {u} is used by no process" for u in users if u not in by_principal]
    everyone = set().union(*by_principal.values())
    # Every resource anyone uses (a prefixed one by a sample name), plus names nobody uses,
    # so a grant broader than some need shows up as a grant nobody needs.
    resources: set[tuple[Kind, str]] = {("cluster", CLUSTER)}
    resources |= {("topic", t) for t in KafkaSettings().topics.all()}
    resources |= {(n.kind, n.name + ("sample" if n.prefix else "")) for n in everyone}
    resources |= {("topic", "taskflow.other"), ("group", "other"), ("group", "notify-other")}
    for principal, user in users.items():
        needs = by_principal.get(principal, set())
        for kind, name in sorted(resources):
            have, want = granted(user, kind, name), needed(needs, kind, name)
            if want - have:
                problems.append(f"{principal}: {kind} {name} lacks {sorted(want - have)}")
            if have - want:
                problems.append(f"{principal}: {kind} {name} grants unneeded {sorted(have - want)}")
        # A prefix grant must be a needed prefix, not a wider one.
        prefixes = {(n.kind, n.name) for n in needs if n.prefix}
        for acl in user["spec"]["authorization"]["acls"]:
            resource = acl["resource"]
            if resource.get("patternType") == "prefix":
                key = (resource["type"], resource["name"])
                if key not in prefixes:
                    problems.append(f"{principal}: prefix grant {key} is wider than any need")
    return problems


# --- the checks -------------------------------------------------------------------------


def test_the_code_uses_the_groups_the_acls_are_written_for() -> None:
    """The derivation itself: Bytewax's fixed group id reaches librdkafka unchanged."""
    for sources in (audit_flow_sources(), reminder_flow_sources()):
        assert sources, "no KafkaSource found in the flow"
        for _topics, config in sources:
            assert config["group.id"] == "BYTEWAX_IGNORED"
            assert config["enable.auto.commit"] == "false"
    assert hub_group_prefix() == "notify-hub-"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_users_grant_exactly_what_the_processes_use(
    overlay: str, rendered: dict[str, Docs]
) -> None:
    assert acl_problems(rendered[overlay]) == []


def test_the_policy_check_catches_a_missing_and_an_extra_grant(rendered: dict[str, Docs]) -> None:
    docs = copy.deepcopy(rendered["prod"])
    users = {d["metadata"]["name"]: d for d in docs if d["kind"] == "KafkaUser"}
    # The defect the review found: no grant on Bytewax's group for the audit flow.
    audit_acls = users["taskflow-audit"]["spec"]["authorization"]["acls"]
    audit_acls[:] = [a for a in audit_acls if a["resource"].get("name") != "BYTEWAX_IGNORED"]
    # And one too many: the DLQ readable by the reminder flow, through a wide prefix.
    users["taskflow-reminders"]["spec"]["authorization"]["acls"].append(
        {
            "resource": {"type": "topic", "name": "taskflow.", "patternType": "prefix"},
            "operations": ["Read"],
        }  # fmt: skip
    )
    problems = acl_problems(docs)
    assert "taskflow-audit: group BYTEWAX_IGNORED lacks ['Describe']" in problems
    assert any(
        p.startswith("taskflow-reminders: topic taskflow.dlq grants unneeded") for p in problems
    )
    assert any("wider than any need" in p for p in problems)
