#!/bin/sh
# Container entrypoint: `flow <audit|reminders>` runs a Bytewax dataflow with recovery;
# a taskflow subcommand (serve, migrate, ...) runs `taskflow`; anything else is exec'd as is.
set -eu

case "${1:-}" in
  flow)
    name="${2:?usage: flow <audit|reminders>}"
    # Workers, processes and recovery partitions come from TASKFLOW_<FLOW>_FLOW_* settings:
    # the launcher initialises this process's partitions under $TASKFLOW_RECOVERY_DIR/<flow>
    # (never re-initialising a store in use), then execs `python -m bytewax.run`.
    export TASKFLOW_RECOVERY_DIR="${TASKFLOW_RECOVERY_DIR:-/var/lib/taskflow/recovery}"
    exec python -m pipelines "$name"
    ;;
  -h|--help|serve|migrate|relay|token|audit|broker|up|vapid-keys|dlq|snapshots|recovery|user)
    exec taskflow "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
