"""The reminder service's own PostgreSQL database: migrations and the read model."""
