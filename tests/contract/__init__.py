"""The contract documents committed under `docs/api/`: how they are generated and written.

`python -m tests.contract` rewrites them; `tests/unit/contract` fails when they drift. It
lives here, not in a service or in `events`, because it imports every service's app
factory, which only the launcher (`deploy`) and the tests may do, and it is a developer
tool, not something the installed package ships.
"""
