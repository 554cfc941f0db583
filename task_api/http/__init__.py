"""HTTP layer of the task service: request/response schemas and routes."""
