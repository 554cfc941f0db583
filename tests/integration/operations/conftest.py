"""Operations tests reuse the audit fixtures: a migrated audit database and a pool on it."""

from tests.integration.audit.conftest import audit_db, audit_db_session, pool

__all__ = ["audit_db", "audit_db_session", "pool"]
