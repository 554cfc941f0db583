"""Recovery partitions from settings: each process of a cluster makes its own share, and
a store made with another count is refused, not mixed."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.flow_launch import RecoveryError, ensure_partitions, partitions_in

pytestmark = pytest.mark.integration


def test_processes_sharing_a_directory_make_disjoint_shares(tmp_path: Path) -> None:
    store = tmp_path / "audit"
    assert ensure_partitions(store, 4, process=1, processes=2) == [1, 3]
    assert ensure_partitions(store, 4, process=0, processes=2) == [0, 2]
    assert ensure_partitions(store, 4, process=0, processes=2) == []  # a restart keeps them
    assert sorted(partitions_in(store)) == [0, 1, 2, 3]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


def test_a_store_of_another_count_is_refused(tmp_path: Path) -> None:
    ensure_partitions(tmp_path, 1)
    with pytest.raises(RecoveryError, match="1 partitions, settings say 2"):
        ensure_partitions(tmp_path, 2)
    assert sorted(partitions_in(tmp_path)) == [0]
