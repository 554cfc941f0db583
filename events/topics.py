"""Topic names and message keys of the Kafka contract."""

from __future__ import annotations

from dataclasses import dataclass

TASKS = "taskflow.tasks"
REMINDERS = "taskflow.reminders"
NOTIFICATIONS = "taskflow.notifications"
DLQ = "taskflow.dlq"


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic names in force; `namespace` prefixes them so tests can isolate runs."""

    namespace: str = ""

    @property
    def tasks(self) -> str:
        return self.namespace + TASKS

    @property
    def reminders(self) -> str:
        return self.namespace + REMINDERS

    @property
    def notifications(self) -> str:
        return self.namespace + NOTIFICATIONS

    @property
    def dlq(self) -> str:
        return self.namespace + DLQ

    def all(self) -> tuple[str, ...]:
        return (self.tasks, self.reminders, self.notifications, self.dlq)
