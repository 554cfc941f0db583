"""`python -m pipelines audit|reminders`: run a dataflow as settings say.

Scale and recovery come from `TASKFLOW_<FLOW>_FLOW_*` (`runtime.flow_launch`); the
process then becomes `python -m bytewax.run pipelines.<flow>:flow -r DIR -s S -b B -w W
[-i I -a ADDRESSES]`, which also works by hand.
"""

from __future__ import annotations

import argparse

from runtime.flow_launch import launch

FLOWS = {"audit": "pipelines.audit:flow", "reminders": "pipelines.reminders:flow"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__)
    parser.add_argument("flow", choices=sorted(FLOWS))
    args = parser.parse_args(argv)
    launch(args.flow, FLOWS[args.flow])


if __name__ == "__main__":
    main()
