"""HTTP routes and request schemas of the audit service."""
