"""`python -m image_pipeline COMMAND`: process local files, run the local demo, or backfill a bucket."""

from __future__ import annotations

import argparse
import sys

from image_pipeline.commands import COMMANDS


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command; argparse exits 2 on a usage error."""
    parser = argparse.ArgumentParser(prog="python -m image_pipeline", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
