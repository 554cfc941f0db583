"""`taskflow recovery reset`: start a dataflow's Bytewax recovery store afresh, safely.

A recovery store holds a flow's Kafka offsets and its state (reminder timers, digest
windows). It is only meaningful with the log it points into: after the broker lost its
log, the saved offsets point past the end of the new, empty topics. Resetting refuses
while the flow runs (a `bytewax.run` process using the directory, or `taskflow up` holding
the data dir), keeps the old store beside it unless told not to, and initialises the same
number of partitions (`python -m bytewax.recovery DIR N`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

from deploy.local_env import DATAFLOWS, Layout
from deploy.local_steps import exclusive

# Flow names as the container entrypoint knows them (`flow audit`), mapped to `taskflow up`'s.
FLOWS = {d.recovery: d for d in DATAFLOWS}


class RecoveryError(Exception):
    """The reset was refused or failed; nothing was changed."""


@dataclass(frozen=True, slots=True)
class ResetResult:
    directory: Path
    partitions: int
    backup: Path | None  # where the previous store went (None: deleted, or there was none)


def recovery_dir(
    flow: str, data_dir: Path, explicit: Path | None = None, env: Mapping[str, str] = os.environ
) -> Path:
    """`explicit`, else `$TASKFLOW_RECOVERY_DIR/<flow>` (the container layout), else the
    `taskflow up` layout under `data_dir`."""
    if flow not in FLOWS:
        raise RecoveryError(f"unknown flow {flow!r}; known: {', '.join(sorted(FLOWS))}")
    if explicit is not None:
        return explicit.resolve()
    if env.get("TASKFLOW_RECOVERY_DIR"):
        return (Path(env["TASKFLOW_RECOVERY_DIR"]) / flow).resolve()
    return Layout(data_dir.resolve()).recovery(FLOWS[flow])


def partitions_in(directory: Path) -> int:
    """How many recovery partitions (`part-N.sqlite3`) the store has."""
    return len(list(directory.glob("part-*.sqlite3"))) if directory.is_dir() else 0


def flows_using(directory: Path) -> list[int]:
    """Pids of `bytewax.run` processes on this machine whose recovery dir is `directory`."""
    target = directory.resolve()
    pids = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        argv = proc.info.get("cmdline") or []
        if not any("bytewax.run" in arg for arg in argv):
            continue
        with contextlib.suppress(psutil.Error, OSError):
            cwd = Path(proc.cwd())
            if any((cwd / arg).resolve() == target for arg in argv if not arg.startswith("-")):
                pids.append(int(proc.info["pid"]))
    return pids


@contextlib.contextmanager
def _data_dir_lock(directory: Path, data_dir: Path) -> Iterator[None]:
    """Hold the data dir's `taskflow up` lock while resetting one of its stores, so `up`
    can neither be running now nor start meanwhile."""
    layout = Layout(data_dir.resolve())
    if not directory.is_relative_to(layout.root) or not layout.root.is_dir():
        yield
        return
    with exclusive(layout.lock) as mine:
        if not mine:
            holder = layout.lock.read_text().strip() or "?"
            raise RecoveryError(
                f"`taskflow up` (pid {holder}) is running in {layout.root}: stop it first"
            )
        yield


def reset(
    directory: Path,
    data_dir: Path,
    partitions: int | None = None,
    keep_backup: bool = True,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ResetResult:
    """Replace the store in `directory` by an empty one with as many partitions (or
    `partitions`); refuses while a flow uses it."""
    from bytewax.recovery import init_db_dir

    with _data_dir_lock(directory, data_dir):
        running = flows_using(directory)
        if running:
            pids = ", ".join(map(str, running))
            raise RecoveryError(f"a dataflow (pid {pids}) uses {directory}: stop it first")
        count = partitions or partitions_in(directory) or 1
        if count < 1:
            raise RecoveryError("partitions must be at least 1")
        backup = _set_aside(directory, clock(), keep_backup)
        directory.mkdir(parents=True, exist_ok=True)
        init_db_dir(directory, count)  # type: ignore[no-untyped-call]  # bytewax is untyped
    return ResetResult(directory, count, backup)


def _set_aside(directory: Path, now: datetime, keep: bool) -> Path | None:
    """Empty `directory` (its contents, not itself: it may be a volume's mount point)."""
    entries = list(directory.iterdir()) if directory.is_dir() else []
    if not entries:
        return None
    if not keep:
        for entry in entries:
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        return None
    backup = directory.with_name(f"{directory.name}.before-reset-{now:%Y%m%dT%H%M%SZ}")
    backup.mkdir(parents=True, exist_ok=False)
    for entry in entries:
        shutil.move(entry, backup / entry.name)
    return backup
