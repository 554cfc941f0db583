"""How a dataflow process is started: its scale and recovery come from settings.

`TASKFLOW_<FLOW>_FLOW_*` (e.g. `TASKFLOW_AUDIT_FLOW_WORKERS`) say how many worker threads
this process runs, which processes form the cluster (`ADDRESSES`, one `host:port` per
process, and this one's `PROCESS_ID`), where the recovery store is and how many partitions
it has. `launch` initialises this process's share of the partitions if they are absent,
then execs the Bytewax CLI with the matching flags, so the process is `python -m
bytewax.run` (its signal handling, and the operator tools that look for it) as before.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_PART = re.compile(r"^part-(\d+)\.sqlite3$")
_ORDINAL = re.compile(r"-(\d+)$")


class RecoveryError(Exception):
    """The recovery store does not match the settings; nothing was changed."""


class FlowRunSettings(BaseSettings):
    """Scale and recovery of one flow; read with that flow's prefix (`for_flow`)."""

    model_config = SettingsConfigDict(extra="ignore")

    workers: int = Field(1, ge=1)  # worker threads per process
    # "host:port;host:port": every process of the cluster, in process-id order. Empty (or
    # one address): a single process.
    addresses: str = ""
    # This process's index in `addresses`; unset: the ordinal at the end of the host name
    # (a StatefulSet pod `audit-flow-1` is process 1).
    process_id: int | None = Field(None, ge=0)
    # Unset: $TASKFLOW_RECOVERY_DIR/<flow> (the container layout).
    recovery_dir: Path | None = None
    # Fixed once the store exists: the most workers (over all processes) it can feed.
    recovery_partitions: int = Field(1, ge=1)
    snapshot_seconds: int = Field(1, ge=1)
    backup_seconds: int = Field(0, ge=0)

    @classmethod
    def for_flow(cls, flow: str) -> FlowRunSettings:
        """`TASKFLOW_<FLOW>_FLOW_*`, e.g. `TASKFLOW_REMINDERS_FLOW_WORKERS`."""
        return cls(_env_prefix=f"TASKFLOW_{flow.upper()}_FLOW_")

    def address_list(self) -> list[str]:
        return [a.strip() for a in self.addresses.split(";") if a.strip()]

    def processes(self) -> int:
        return max(1, len(self.address_list()))

    def this_process(self, hostname: str | None = None) -> int:
        if self.processes() == 1:
            return 0
        if self.process_id is not None:
            index = self.process_id
        else:
            found = _ORDINAL.search(hostname or socket.gethostname())
            if found is None:
                raise ValueError("several processes: set PROCESS_ID (or run as a StatefulSet)")
            index = int(found.group(1))
        if index >= self.processes():
            raise ValueError(f"process id {index} but only {self.processes()} addresses")
        return index

    def recovery(self, flow: str, env: Mapping[str, str] = os.environ) -> Path:
        if self.recovery_dir is not None:
            return self.recovery_dir
        if env.get("TASKFLOW_RECOVERY_DIR"):
            return Path(env["TASKFLOW_RECOVERY_DIR"]) / flow
        prefix = f"TASKFLOW_{flow.upper()}_FLOW_"
        raise ValueError(f"set {prefix}RECOVERY_DIR (or TASKFLOW_RECOVERY_DIR)")


def bytewax_argv(import_str: str, settings: FlowRunSettings, recovery: Path) -> list[str]:
    """The `python -m bytewax.run` command these settings stand for."""
    argv = [sys.executable, "-m", "bytewax.run", import_str, "-r", str(recovery)]
    argv += ["-s", str(settings.snapshot_seconds), "-b", str(settings.backup_seconds)]
    argv += ["-w", str(settings.workers)]
    if settings.processes() > 1:
        argv += ["-i", str(settings.this_process()), "-a", ";".join(settings.address_list())]
    return argv


def partitions_in(directory: Path) -> dict[int, Path]:
    """The recovery partitions (`part-N.sqlite3`) in `directory`, by index."""
    if not directory.is_dir():
        return {}
    found = {}
    for path in directory.iterdir():
        match = _PART.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def _count_of(partition: Path) -> int:
    """The partition count a store was initialised with (Bytewax keeps it in each one)."""
    with sqlite3.connect(f"file:{partition}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT part_count FROM parts LIMIT 1").fetchone()
    return int(row[0])


def ensure_partitions(
    directory: Path, count: int, process: int = 0, processes: int = 1
) -> list[int]:
    """Create this process's partitions (index % processes == process) where absent.

    Each process of a cluster makes only its own share, so processes sharing one
    directory do not race and processes with a volume each hold disjoint sets; together
    they hold all `count`. Refuses a store initialised with another count. Returns the
    indexes created.
    """
    existing = partitions_in(directory)
    if existing:
        found = _count_of(next(iter(existing.values())))
        if found != count or max(existing) >= count:
            raise RecoveryError(
                f"{directory} holds a store of {found} partitions, settings say {count}:"
                " reset it (`taskflow recovery reset`) or keep the old count"
            )
    mine = [k for k in range(count) if k % processes == process and k not in existing]
    if not mine:
        return []
    from bytewax.recovery import init_db_dir

    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory.parent, prefix=f".{directory.name}-") as tmp:
        init_db_dir(Path(tmp), count)  # type: ignore[no-untyped-call]  # bytewax is untyped
        for index in mine:
            # A rename within one file system: a partition appears whole or not at all.
            os.replace(Path(tmp) / f"part-{index}.sqlite3", directory / f"part-{index}.sqlite3")
    return mine


def launch(flow: str, import_str: str, settings: FlowRunSettings | None = None) -> None:
    """Prepare recovery and become `python -m bytewax.run` for `flow` (does not return)."""
    settings = settings or FlowRunSettings.for_flow(flow)
    recovery = settings.recovery(flow)
    ensure_partitions(
        recovery, settings.recovery_partitions, settings.this_process(), settings.processes()
    )
    argv = bytewax_argv(import_str, settings, recovery)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)  # noqa: S606 - our interpreter, arguments from typed settings
