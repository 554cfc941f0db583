"""A dataflow's scale and recovery from settings: the bytewax.run command they stand for."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runtime.flow_launch import FlowRunSettings, bytewax_argv


def test_settings_are_read_with_the_flows_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKFLOW_AUDIT_FLOW_WORKERS", "3")
    monkeypatch.setenv("TASKFLOW_AUDIT_FLOW_RECOVERY_PARTITIONS", "6")
    monkeypatch.setenv("TASKFLOW_REMINDERS_FLOW_WORKERS", "1")
    audit = FlowRunSettings.for_flow("audit")
    assert (audit.workers, audit.recovery_partitions) == (3, 6)
    assert FlowRunSettings.for_flow("reminders").workers == 1


def test_one_process_runs_its_workers_with_recovery() -> None:
    settings = FlowRunSettings(workers=2, snapshot_seconds=5, backup_seconds=30)
    argv = bytewax_argv("pipelines.audit:flow", settings, Path("/r/audit"))
    assert argv == [
        sys.executable, "-m", "bytewax.run", "pipelines.audit:flow",
        "-r", "/r/audit", "-s", "5", "-b", "30", "-w", "2",
    ]  # fmt: skip


def test_a_cluster_process_gets_its_id_and_every_address() -> None:
    settings = FlowRunSettings(addresses="a:2101; b:2101", process_id=1)
    argv = bytewax_argv("pipelines.audit:flow", settings, Path("/r"))
    assert argv[-4:] == ["-i", "1", "-a", "a:2101;b:2101"]


def test_a_statefulset_pod_is_the_process_its_ordinal_names() -> None:
    settings = FlowRunSettings(addresses="a:1;b:1;c:1")
    assert settings.this_process("audit-flow-2") == 2
    with pytest.raises(ValueError, match="PROCESS_ID"):
        settings.this_process("laptop")
    with pytest.raises(ValueError, match="only 3 addresses"):
        settings.this_process("audit-flow-3")
    assert FlowRunSettings().this_process("anything") == 0  # one process: always 0


def test_the_recovery_dir_defaults_to_the_container_layout() -> None:
    settings = FlowRunSettings()
    assert settings.recovery("audit", {"TASKFLOW_RECOVERY_DIR": "/var/r"}) == Path("/var/r/audit")
    with pytest.raises(ValueError, match="TASKFLOW_AUDIT_FLOW_RECOVERY_DIR"):
        settings.recovery("audit", {})
