"""`taskflow dlq` and friends: argument parsing and output shape, over a fake DLQ store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from deploy.cli import main, parser
from deploy.dlq import DeadLetter, DlqError, Replayed, parse_since, select

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def letter(offset: int, topic: str = "taskflow.tasks", when: datetime = T0) -> DeadLetter:
    return DeadLetter(
        dlq_partition=0,
        dlq_offset=offset,
        topic=topic,
        partition=2,
        offset=40 + offset,
        consumer="notify-worker",
        error="DecodeError: not JSON\nat line 1",
        when=when,
        key=b"task-1",
        value=b"{}",
        headers=(("traceparent", b"00-x"), ("dlq.source.topic", topic.encode())),
    )


class FakeStore:
    def __init__(self, letters: Sequence[DeadLetter]) -> None:
        self.letters = list(letters)
        self.republished: list[list[str]] = []

    def read(self) -> list[DeadLetter]:
        return list(self.letters)

    async def republish(self, letters: Sequence[DeadLetter]) -> list[Replayed]:
        self.republished.append([d.id for d in letters])
        return [Replayed(d, 1, 100 + i) for i, d in enumerate(letters)]


LETTERS = [
    letter(0, when=T0 - timedelta(hours=3)),
    letter(1, topic="taskflow.reminders"),
    letter(2),
]


def run(argv: list[str], store: FakeStore) -> int:
    return main(argv, dead_letters=lambda: store)


def test_list_json_prints_one_object_per_dead_letter(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["dlq", "list", "--json"], FakeStore(LETTERS)) == 0
    lines = capsys.readouterr().out.splitlines()
    docs = [json.loads(line) for line in lines]
    assert [d["id"] for d in docs] == ["0:0", "0:1", "0:2"]
    assert docs[1] == {
        "id": "0:1",
        "topic": "taskflow.reminders",
        "partition": 2,
        "offset": 41,
        "consumer": "notify-worker",
        "error": "DecodeError: not JSON\nat line 1",
        "when": T0.isoformat(),
        "key": "task-1",
        "user": None,
    }


def test_list_user_finds_a_users_dead_letters_by_their_event_or_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    about_alice = [
        replace(letter(5), value=json.dumps({"userid": "alice", "type": "task.created"}).encode()),
        replace(letter(6, topic="taskflow.notifications"), key=b"alice", value=b"\xff not json"),
        replace(letter(7), value=json.dumps({"userid": "bob"}).encode()),
    ]
    assert run(["dlq", "list", "--json", "--user", "alice"], FakeStore(LETTERS + about_alice)) == 0
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["id"], d["user"]) for d in docs] == [("0:5", "alice"), ("0:6", None)]


def test_list_lines_name_the_origin_and_keep_one_line_each(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["dlq", "list", "--topic", "taskflow.tasks"], FakeStore(LETTERS)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[1].split("\t") == [
        "0:2",
        "2026-01-15T12:00:00+00:00",
        "taskflow.tasks[2]@42",
        "notify-worker",
        "DecodeError: not JSON at line 1",
    ]


def test_since_accepts_durations_and_instants() -> None:
    assert parse_since("2h", T0) == T0 - timedelta(hours=2)
    assert parse_since("PT30M", T0) == T0 - timedelta(minutes=30)
    assert parse_since("2026-01-15T11:00:00", T0) == T0 - timedelta(hours=1)
    assert parse_since("2026-01-15T13:00:00+01:00", T0) == T0
    assert [d.id for d in select(LETTERS, since=parse_since("1h", T0))] == ["0:1", "0:2"]
    with pytest.raises(ValueError, match="duration"):
        parse_since("yesterday", T0)


def test_bad_since_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["dlq", "list", "--since", "soon"], FakeStore(LETTERS)) == 2
    assert "--since 'soon'" in capsys.readouterr().err


def test_replay_by_id_prints_what_it_did(capsys: pytest.CaptureFixture[str]) -> None:
    store = FakeStore(LETTERS)
    assert run(["dlq", "replay", "0:2", "0:0"], store) == 0
    assert store.republished == [["0:2", "0:0"]]
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "replayed 0:2 -> taskflow.tasks[1]@100 (was taskflow.tasks[2]@42)",
        "replayed 0:0 -> taskflow.tasks[1]@101 (was taskflow.tasks[2]@40)",
        "replayed 2 dead letters",
    ]


def test_replay_all_of_a_topic(capsys: pytest.CaptureFixture[str]) -> None:
    store = FakeStore(LETTERS)
    assert run(["dlq", "replay", "--all", "--topic", "taskflow.reminders"], store) == 0
    assert store.republished == [["0:1"]]


def test_replay_refuses_unknown_ids_and_replays_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = FakeStore(LETTERS)
    assert run(["dlq", "replay", "0:1", "3:9"], store) == 1
    assert store.republished == []
    assert "no dead letter with id 3:9" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["dlq", "replay"], ["dlq", "replay", "0:1", "--all"]])
def test_replay_wants_ids_or_all(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    store = FakeStore(LETTERS)
    assert run(argv, store) == 2
    assert store.republished == []


def test_replayed_headers_drop_only_the_dlq_ones() -> None:
    assert letter(0).original_headers() == [("traceparent", b"00-x")]


def test_operator_commands_parse() -> None:
    args = parser().parse_args(["recovery", "reset", "reminders", "--recovery-dir", "/r"])
    assert (args.flow, str(args.recovery_dir), args.no_backup) == ("reminders", "/r", False)
    args = parser().parse_args(["snapshots", "republish"])
    assert args.func.__name__ == "_snapshots_republish"
    with pytest.raises(SystemExit):
        parser().parse_args(["recovery", "reset", "payments"])
    args = parser().parse_args(["user", "export", "--user", "u1", "--out", "out/x.json"])
    assert (args.func.__name__, args.user, str(args.out), args.token) == (
        "_user_export",
        "u1",
        "out/x.json",
        None,
    )
    assert parser().parse_args(["user", "reapply-erasures"]).func.__name__ == "_user_reapply"


class UnreachableStore(FakeStore):
    def read(self) -> list[DeadLetter]:
        raise DlqError("read 3 dead letters from taskflow.dlq but did not reach the end")


@pytest.mark.parametrize("argv", [["dlq", "list"], ["dlq", "replay", "--all"]])
def test_an_incomplete_read_prints_nothing_partial(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    store = UnreachableStore(LETTERS)
    assert run(argv, store) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "did not reach the end" in captured.err
    assert store.republished == []
