"""The shared contract: CloudEvents envelope, typed payloads, topics, codec and Kafka helpers.

`webapi` holds the HTTP rules every service shares (auth, problem+json, paging,
probes) from the "Common rules" of `api.md`. No service logic lives here.
"""
