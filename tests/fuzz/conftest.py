"""Fuzz fixtures: the services' own database fixtures, imported rather than copied.

In CI (`CI=true`) Hypothesis runs derandomized and without its example database, so a run
explores the same bounded inputs every time; locally it explores new ones on each run, and
`HYPOTHESIS_PROFILE=taskflow-deep` raises every decoder test to 2,000 examples.
"""

import os

from hypothesis import settings

from tests.integration.audit.conftest import audit_db, audit_db_session
from tests.integration.notify.conftest import notify_db, smtp
from tests.integration.reminders.conftest import reminders_db
from tests.integration.task_api.conftest import task_db_url

__all__ = ["audit_db", "audit_db_session", "notify_db", "reminders_db", "smtp", "task_db_url"]

settings.register_profile("taskflow-ci", derandomize=True, database=None)
# A long random hunt before a change lands, so a strategy bug cannot wait for a newcomer's
# first run: HYPOTHESIS_PROFILE=taskflow-deep pytest tests/fuzz/test_decoders.py
settings.register_profile("taskflow-deep", max_examples=2000, database=None)
if os.environ.get("CI"):
    settings.load_profile("taskflow-ci")
elif os.environ.get("HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])
