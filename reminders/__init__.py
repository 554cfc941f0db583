"""The reminder service: pure reminder domain (`reminders.domain`), read model and read API."""
