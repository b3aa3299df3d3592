"""`python -m image_pipeline COMMAND`: process local files, run the local demo, or backfill a bucket."""

from __future__ import annotations

import argparse
import sys

from image_pipeline.commands import COMMANDS
from image_pipeline.errors import ConfigurationError, ModelUnusable, UsageError

USAGE_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command; a usage or configuration error is one line on stderr, exit 2."""
    parser = argparse.ArgumentParser(prog="python -m image_pipeline", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ConfigurationError, ModelUnusable, UsageError) as error:
        print(f"{parser.prog} {args.command}: error: {error}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
