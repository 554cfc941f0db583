"""The reminder read API: routes and their request/response schemas."""
