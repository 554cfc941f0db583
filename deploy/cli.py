"""`taskflow`: one command for every process and chore.

Each service exposes its entry points in its own `cli.py`; this module only parses
arguments and imports the one that is asked for, so services never import each other.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

SERVICES = {
    "task-api": "task_api.cli",
    "notify": "notify_ws.cli",
    "audit": "audit_store.cli",
    "reminders": "reminders.cli",
}


def _entry(module: str, name: str) -> Callable[..., Any]:
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def _serve(args: argparse.Namespace) -> int:
    _entry(SERVICES[args.service], "serve")(host=args.host, port=args.port)
    return 0


def _migrate(args: argparse.Namespace) -> int:
    for service in args.services or list(SERVICES):
        migrate = _entry(SERVICES[service], "migrate")
        asyncio.run(migrate())
        print(f"migrated {service}")
    return 0


def _relay(args: argparse.Namespace) -> int:
    _entry("task_api.cli", "relay")()
    return 0


def _broker(args: argparse.Namespace) -> int:
    _entry("deploy.local", "run_broker")(port=args.port)
    return 0


def _up(args: argparse.Namespace) -> int:
    return int(_entry("deploy.local", "up")(data_dir=args.data_dir))


def _token(args: argparse.Namespace) -> int:
    print(
        _entry("deploy.local", "dev_token")(
            args.user, tuple(args.role), timedelta(seconds=args.ttl)
        )
    )
    return 0


def _audit_purge(args: argparse.Namespace) -> int:
    asyncio.run(_entry("audit_store.cli", "purge")())
    return 0


def _vapid_keys(args: argparse.Namespace) -> int:
    _entry("notify_ws.cli", "vapid_keys")()
    return 0


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

    vapid = sub.add_parser("vapid-keys", help="generate a VAPID key pair for Web Push")
    vapid.set_defaults(func=_vapid_keys)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
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
