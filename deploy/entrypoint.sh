#!/bin/sh
# Container entrypoint: `flow <audit|reminders>` runs a Bytewax dataflow with recovery;
# a taskflow subcommand (serve, migrate, ...) runs `taskflow`; anything else is exec'd as is.
set -eu

case "${1:-}" in
  flow)
    name="${2:?usage: flow <audit|reminders>}"
    dir="${TASKFLOW_RECOVERY_DIR:-/var/lib/taskflow/recovery}/${name}"
    mkdir -p "$dir"
    # Bytewax needs an initialised recovery store; never re-initialise one in use.
    if [ -z "$(ls -A "$dir")" ]; then
      python -m bytewax.recovery "$dir" 1
    fi
    exec python -m bytewax.run "pipelines.${name}:flow" -r "$dir" \
      -s "${TASKFLOW_SNAPSHOT_SECONDS:-1}" -b "${TASKFLOW_BACKUP_SECONDS:-0}"
    ;;
  -h|--help|serve|migrate|relay|token|audit|broker|up|vapid-keys|dlq|snapshots|recovery)
    exec taskflow "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
