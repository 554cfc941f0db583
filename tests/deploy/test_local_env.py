"""What `taskflow up` would run, and with which environment (no processes started)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from deploy.local_console import Console
from deploy.local_env import (
    COMPONENTS,
    LOCAL_PARTITIONS,
    Layout,
    UpSettings,
    child_env,
    child_specs,
    database_services,
    external_database,
    external_kafka,
    local_partitions,
)
from deploy.supervisor import Backoff

VAPID = {"private_key": "priv", "public_key": "pub"}


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_components_default_to_everything_and_reject_unknown_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TASKFLOW_UP_COMPONENTS", raising=False)
    assert UpSettings().selected() == COMPONENTS
    assert UpSettings(components="reminders-flow, task-api").selected() == (
        "task-api",
        "reminders-flow",
    )
    assert UpSettings(components="").selected() == ()
    with pytest.raises(ValueError, match="unknown components"):
        UpSettings(components="task-api,nope").selected()


def test_dataflows_bring_their_services_database() -> None:
    names = [s.name for s in database_services(("task-api", "audit-flow"))]
    assert names == ["task-api", "audit"]


def test_child_env_fills_defaults_but_the_user_wins() -> None:
    base = {"TASKFLOW_JWT_SECRET": "mine", "TASKFLOW_AUDIT_DATABASE_URL": "postgresql://x/a"}
    env = child_env(
        base,
        secret="generated",
        bootstrap="127.0.0.1:9999",
        database_urls={"task-api": "postgresql://h/taskflow_tasks"},
        vapid=VAPID,
    )
    assert "TASKFLOW_JWT_SECRET" not in env
    assert env["TASKFLOW_ENV"] == "local"
    assert env["TASKFLOW_TASK_API_DATABASE_URL"] == "postgresql://h/taskflow_tasks"
    assert "TASKFLOW_AUDIT_DATABASE_URL" not in env
    assert env["TASKFLOW_KAFKA_BOOTSTRAP"] == "127.0.0.1:9999"
    assert env["TASKFLOW_NOTIFY_VAPID_PRIVATE_KEY"] == "priv"


def test_our_own_broker_gets_the_tansu_profile_and_one_partition_topics() -> None:
    env = child_env({}, secret="s", bootstrap="127.0.0.1:9999", database_urls={}, vapid=VAPID)
    assert env["TASKFLOW_KAFKA_PROFILE"] == "tansu"
    assert env["TASKFLOW_KAFKA_PARTITIONS"] == str(LOCAL_PARTITIONS) == "1"
    # The user's own partition count wins, for the children and the topics alike.
    mine = {"TASKFLOW_KAFKA_PARTITIONS": "3"}
    env = child_env(mine, secret="s", bootstrap="127.0.0.1:9999", database_urls={}, vapid=VAPID)
    assert "TASKFLOW_KAFKA_PARTITIONS" not in env
    assert local_partitions(mine) == 3


def test_an_external_cluster_is_left_as_configured() -> None:
    env = child_env({}, secret="s", bootstrap=None, database_urls={}, vapid=VAPID)
    assert "TASKFLOW_KAFKA_BOOTSTRAP" not in env
    assert "TASKFLOW_KAFKA_PROFILE" not in env
    assert "TASKFLOW_KAFKA_PARTITIONS" not in env
    assert external_kafka({"TASKFLOW_KAFKA_BOOTSTRAP": "k:9092"}) == "k:9092"
    assert external_kafka({}) is None
    assert external_database({"TASKFLOW_DATABASE_URL": "postgresql://h/postgres"})
    assert external_database({"TASKFLOW_DATABASE_URL": ""}) is None


def test_specs_use_the_cli_the_ports_and_recovery_dirs() -> None:
    layout = Layout(Path("/data"))
    specs = child_specs(COMPONENTS, layout, {}, {"TASKFLOW_NOTIFY_PORT": "9802"})
    by_name = {s.name: s for s in specs}
    # The producer starts last so that it stops first (its relay flushes while the
    # consumers still run); the dataflows stop together, then the other services.
    assert [s.name for s in specs] == [
        "notify",
        "audit",
        "reminders",
        "audit-flow",
        "reminders-flow",
        "task-api",
    ]
    assert [s.stage for s in specs] == ["services"] * 3 + ["dataflows"] * 2 + ["producer"]
    task_api = by_name["task-api"]
    assert task_api.argv[1:] == [
        "-m",
        "deploy.cli",
        "serve",
        "task-api",
        "--host",
        "127.0.0.1",
        "--port",
        "8001",
    ]
    assert task_api.ready_url == "http://127.0.0.1:8001/readyz"
    assert by_name["notify"].ready_url == "http://127.0.0.1:9802/readyz"
    flow = by_name["reminders-flow"]
    assert flow.argv[0] == sys.executable
    # The launcher reads scale and recovery from the flow's settings, then runs bytewax.
    assert flow.argv[1:] == ["-m", "pipelines", "reminders"]
    assert flow.env["TASKFLOW_REMINDERS_FLOW_RECOVERY_DIR"] == "/data/recovery/reminders"
    assert flow.ready_url is None


def test_console_without_a_terminal_prints_lines_and_a_table() -> None:
    out = io.StringIO()
    console = Console(out)
    console.progress(3, ["notify", "audit"], 0.5)
    console.progress(3, ["notify", "audit"], 0.7)  # unchanged: not repeated
    console.progress(3, [], 1.0)
    console.table([("task-api", "42", "http://127.0.0.1:8001", "logs/task-api.log")])
    lines = out.getvalue().splitlines()
    assert "1/3 ready after 0.5s; waiting for: notify, audit" in lines[0]
    assert "3/3 ready after 1.0s" in lines[1]
    assert lines[2].split() == ["component", "pid", "where", "log"]
    assert lines[3].split() == ["task-api", "42", "http://127.0.0.1:8001", "logs/task-api.log"]
