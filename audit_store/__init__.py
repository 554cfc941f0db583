"""The audit service: append-only, hash-chained storage of every TaskFlow event.

Storage and integrity (`ingest`, `chain`, `digests`, `verify`), retention and legal hold
(`retention`), search and export (`search`, `export`) and the Quart app (`app`).
"""
