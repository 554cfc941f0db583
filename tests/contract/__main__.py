"""`python -m tests.contract`: rewrite docs/api/openapi/*.json and docs/api/asyncapi.yaml."""

from __future__ import annotations

import asyncio

from tests.contract.documents import ROOT, write_all


def main() -> None:
    for path in asyncio.run(write_all()):
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
