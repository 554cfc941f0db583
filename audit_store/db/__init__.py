"""The audit database: versioned SQL migrations and the connection pool."""
