"""`taskflow`: one command for every process and chore.

Each service exposes its entry points in its own `cli.py`; this module parses arguments
and calls them. Each handler imports what it runs, so `taskflow --help` stays fast and a
command loads only its own service.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import ValidationError
from pydantic_settings import SettingsError

if TYPE_CHECKING:
    from deploy.dlq import DeadLetterStore


class ServiceEntry(NamedTuple):
    serve: Callable[[str | None, int | None], None]
    migrate: Callable[[], Coroutine[Any, Any, None]]


def _task_api() -> ServiceEntry:
    from task_api import cli

    return ServiceEntry(cli.serve, cli.migrate)


def _notify() -> ServiceEntry:
    from notify_ws import cli

    return ServiceEntry(cli.serve, cli.migrate)


def _audit() -> ServiceEntry:
    from audit_store import cli

    return ServiceEntry(cli.serve, cli.migrate)


def _reminders() -> ServiceEntry:
    from reminders import cli

    return ServiceEntry(cli.serve, cli.migrate)


SERVICES: dict[str, Callable[[], ServiceEntry]] = {
    "task-api": _task_api,
    "notify": _notify,
    "audit": _audit,
    "reminders": _reminders,
}
DeadLetters = Callable[[], "DeadLetterStore"]


def _serve(args: argparse.Namespace) -> int:
    SERVICES[args.service]().serve(args.host, args.port)
    return 0


def _migrate(args: argparse.Namespace) -> int:
    for service in args.services or list(SERVICES):
        asyncio.run(SERVICES[service]().migrate())
        print(f"migrated {service}")
    return 0


def _relay(args: argparse.Namespace) -> int:
    from task_api.cli import relay

    relay()
    return 0


def _broker(args: argparse.Namespace) -> int:
    from deploy.local import run_broker

    run_broker(port=args.port)
    return 0


def _up(args: argparse.Namespace) -> int:
    from deploy.local import up

    return up(data_dir=args.data_dir)


def _token(args: argparse.Namespace) -> int:
    from deploy.local import dev_token

    print(dev_token(args.user, tuple(args.role), timedelta(seconds=args.ttl)))
    return 0


def _audit_purge(args: argparse.Namespace) -> int:
    from audit_store.cli import purge

    asyncio.run(purge())
    return 0


def _audit_rewrap_keys(args: argparse.Namespace) -> int:
    from audit_store.cli import rewrap_keys

    asyncio.run(rewrap_keys())
    return 0


def _audit_reapply_erasures(args: argparse.Namespace) -> int:
    from audit_store.cli import reapply_erasures

    asyncio.run(reapply_erasures())
    return 0


def _vapid_keys(args: argparse.Namespace) -> int:
    from notify_ws.cli import vapid_keys

    vapid_keys()
    return 0


def _snapshots_republish(args: argparse.Namespace) -> int:
    from task_api.cli import republish_snapshots

    count = asyncio.run(republish_snapshots())
    print(f"republished {count} open tasks as task.snapshot (and re-sent recent events)")
    return 0


def _recovery_reset(args: argparse.Namespace) -> int:
    from deploy.recovery import RecoveryError, recovery_dir, reset

    data_dir = Path(args.data_dir)
    try:
        directory = recovery_dir(args.flow, data_dir, args.recovery_dir)
        done = reset(directory, data_dir, args.partitions, keep_backup=not args.no_backup)
    except RecoveryError as exc:
        print(f"taskflow: recovery not reset: {exc}", file=sys.stderr)
        return 1
    kept = f"; the old store is in {done.backup}" if done.backup else ""
    print(f"reset {args.flow} recovery in {done.directory} ({done.partitions} partitions){kept}")
    if args.flow == "reminders":
        print("next: `taskflow snapshots republish`, so the flow rebuilds its timers")
    return 0


def _kafka_dead_letters() -> DeadLetterStore:
    from deploy.dlq import KafkaDeadLetterStore
    from events.kafka import KafkaSettings

    return KafkaDeadLetterStore(KafkaSettings())


def _dlq_list(args: argparse.Namespace) -> int:
    from deploy.dlq import DlqError, parse_since, select

    try:
        since = parse_since(args.since, datetime.now(UTC)) if args.since else None
    except ValueError as exc:
        print(f"taskflow: {exc}", file=sys.stderr)
        return 2
    store: DeadLetterStore = args.dead_letters()
    try:
        letters = store.read()
    except DlqError as exc:
        print(f"taskflow: {exc}", file=sys.stderr)
        return 1
    for letter in select(letters, args.topic, since, user=args.user):
        print(json.dumps(letter.summary()) if args.json else letter.line())
    return 0


def _dlq_replay(args: argparse.Namespace) -> int:
    from deploy.dlq import DlqError, pick, select

    if bool(args.ids) == args.all:
        print("taskflow: give dead-letter ids or --all (not both)", file=sys.stderr)
        return 2
    store: DeadLetterStore = args.dead_letters()
    try:
        letters = store.read()
        chosen = select(letters, args.topic) if args.all else pick(letters, args.ids)
        replayed = asyncio.run(store.republish(chosen))
    except DlqError as exc:
        print(f"taskflow: {exc}", file=sys.stderr)
        return 1
    for item in replayed:
        print(item.line())
    print(f"replayed {len(replayed)} dead letters")
    return 0


def _dlq_purge(args: argparse.Namespace) -> int:
    from deploy.dlq import DlqError
    from deploy.dlq_purge import DlqPurge
    from deploy.dlq_purge_kafka import KafkaPurgeBroker
    from events.kafka import KafkaSettings

    user = args.user.strip()
    if not user:
        print("taskflow: --user must name a user", file=sys.stderr)
        return 2
    settings = KafkaSettings()
    broker = KafkaPurgeBroker(settings)
    purge = DlqPurge(broker, settings.topics.dlq)
    try:
        report = purge.run(user) if args.yes else purge.preview(user)
    except DlqError as exc:
        print(
            f"taskflow: {exc} (run the purge again: it resumes where it stopped)", file=sys.stderr
        )
        return 1
    finally:
        broker.close()
    for line in report.lines():
        print(line)
    return 0


def _user_export(args: argparse.Namespace) -> int:
    from deploy.local import dev_token
    from deploy.user_export import gather, peers, summary, write

    token = args.token or dev_token(args.user)
    document = asyncio.run(gather(args.user, token, peers(), datetime.now(UTC)))
    write(document, args.out)
    for line in summary(document):
        print(line, file=sys.stderr)
    if not document["complete"]:
        print("taskflow: the export is incomplete (see `services`)", file=sys.stderr)
    return 0 if document["complete"] else 1


def _user_reapply(args: argparse.Namespace) -> int:
    from task_api.erasure import reapply_after_restore

    count = asyncio.run(reapply_after_restore())
    print(f"re-applied {count} erasures (their user.erased events are queued again)")
    return 0


def _user_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = sub.add_parser("user", help="a user's data: export, erasure after a restore")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    export = user_sub.add_parser("export", help="every service's data of a user, one JSON file")
    export.add_argument("--user", required=True)
    export.add_argument("--out", type=Path, default=None, help="file (default: stdout)")
    export.add_argument("--token", help="the user's JWT (default: minted like `taskflow token`)")
    export.set_defaults(func=_user_export)
    reapply = user_sub.add_parser(
        "reapply-erasures",
        help="after a restore from backup: delete erased users' rows again, re-send user.erased",
    )
    reapply.set_defaults(func=_user_reapply)


def _operator_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dlq = sub.add_parser("dlq", help="list, replay and purge dead letters (taskflow.dlq)")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    listing = dlq_sub.add_parser("list", help="one line per dead letter: id, when, origin")
    listing.add_argument("--topic", help="only dead letters from this origin topic")
    listing.add_argument("--since", help="ISO time (2026-01-15T12:00Z) or duration (2h, PT30M)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.add_argument("--user", help="only dead letters about this user (docs/privacy.md)")
    listing.set_defaults(func=_dlq_list)
    replay = dlq_sub.add_parser("replay", help="re-publish dead letters to their origin topic")
    replay.add_argument("ids", nargs="*", metavar="ID", help="ids as `dlq list` prints them")
    replay.add_argument("--all", action="store_true", help="every dead letter (see --topic)")
    replay.add_argument("--topic", help="with --all: only those from this origin topic")
    replay.set_defaults(func=_dlq_replay)
    purge = dlq_sub.add_parser(
        "purge",
        help="delete a user's dead letters (right to erasure; without --yes: a dry run)",
        description="Rewrites the DLQ topic. See docs/privacy.md and docs/operations.md.",
    )
    purge.add_argument("--user", required=True, help="the user whose dead letters go")
    purge.add_argument("--yes", action="store_true", help="purge (without it: only count)")
    purge.set_defaults(func=_dlq_purge)

    snapshots = sub.add_parser("snapshots", help="task snapshots")
    snapshots_sub = snapshots.add_subparsers(dest="snapshots_command", required=True)
    republish = snapshots_sub.add_parser(
        "republish", help="re-send recent events, then a task.snapshot of every open task"
    )
    republish.set_defaults(func=_snapshots_republish)

    recovery = sub.add_parser("recovery", help="dataflow recovery stores")
    recovery_sub = recovery.add_subparsers(dest="recovery_command", required=True)
    reset = recovery_sub.add_parser(
        "reset",
        help="start a flow's recovery store afresh (after the broker lost its log)",
        description="Refused while the flow runs. See docs/operations.md.",
    )
    reset.add_argument("flow", choices=["audit", "reminders"])
    reset.add_argument("--recovery-dir", type=Path, default=None, help="the store itself")
    reset.add_argument("--data-dir", default=os.environ.get("TASKFLOW_DATA_DIR", ".taskflow"))
    reset.add_argument("--partitions", type=int, default=None, help="default: as before")
    reset.add_argument("--no-backup", action="store_true", help="delete the old store")
    reset.set_defaults(func=_recovery_reset)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="taskflow", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the whole system on embedded defaults")
    up.add_argument("--data-dir", default=".taskflow")
    up.set_defaults(func=_up)

    serve = sub.add_parser("serve", help="run one service")
    serve.add_argument("service", choices=sorted(SERVICES))
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(func=_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("services", nargs="*", choices=sorted(SERVICES))
    migrate.set_defaults(func=_migrate)

    relay = sub.add_parser("relay", help="run the outbox relay as its own process")
    relay.set_defaults(func=_relay)

    broker = sub.add_parser("broker", help="run the local Kafka-protocol broker (Tansu)")
    broker.add_argument("--port", type=int, default=9092)
    broker.set_defaults(func=_broker)

    token = sub.add_parser("token", help="print a development JWT")
    token.add_argument("--user", required=True)
    token.add_argument("--role", action="append", default=[])
    token.add_argument("--ttl", type=int, default=3600, help="seconds")
    token.set_defaults(func=_token)

    audit = sub.add_parser("audit", help="audit chores")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    purge = audit_sub.add_parser("purge", help="apply retention (legal holds respected)")
    purge.set_defaults(func=_audit_purge)
    rewrap = audit_sub.add_parser(
        "rewrap-keys", help="re-wrap user data keys with the current KEK (after rotating it)"
    )
    rewrap.set_defaults(func=_audit_rewrap_keys)
    reapply = audit_sub.add_parser(
        "reapply-erasures", help="shred again every recorded erasure (after a restore)"
    )
    reapply.set_defaults(func=_audit_reapply_erasures)

    vapid = sub.add_parser("vapid-keys", help="generate a VAPID key pair for Web Push")
    vapid.set_defaults(func=_vapid_keys)
    _operator_commands(sub)
    _user_commands(sub)
    return root


def main(argv: Sequence[str] | None = None, dead_letters: DeadLetters | None = None) -> int:
    """Run one command; `dead_letters` replaces the Kafka DLQ store (tests)."""
    args = parser().parse_args(argv)
    args.dead_letters = dead_letters or _kafka_dead_letters
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except (ValidationError, SettingsError) as exc:
        # Settings are read before anything starts: say what is wrong, without a traceback
        # (pydantic-settings keeps the values, secrets included, out of the message).
        print(f"taskflow: invalid configuration, nothing was started:\n{exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
