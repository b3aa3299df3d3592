"""`settings`: the environment variables the function reads, listed from the code that reads them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from image_pipeline.settings import Variable

PROG = "python -m image_pipeline settings"


def add_parser(subparsers: Any) -> None:
    """Register the `settings` command."""
    parser = subparsers.add_parser(
        "settings",
        help="list the function's environment variables, or check the ones set here",
        description="The settings are read in one place (Settings.from_env); this lists what it reads. "
        "Standard library only: works with any python3 >= 3.11, without the project's dependencies.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--names", dest="mode", action="store_const", const="names", help="one name per line")
    mode.add_argument(
        "--markdown", dest="mode", action="store_const", const="markdown", help="the README's settings table"
    )
    mode.add_argument(
        "--check",
        dest="mode",
        action="store_const",
        const="check",
        help="validate the settings in this environment; exit 2 with a message naming a bad one",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the names or the table, or check the environment."""
    from image_pipeline.errors import ConfigurationError
    from image_pipeline.settings import Settings

    if args.mode == "check":
        try:
            Settings.from_env()
        except ConfigurationError as error:
            print(f"{PROG}: error: {error}", file=sys.stderr)
            return 2
        return 0
    variables = Settings.variables()
    if args.mode == "names":
        print("\n".join(variable.name for variable in variables))
    else:
        print(markdown_table(variables))
    return 0


def markdown_table(variables: Iterable[Variable]) -> str:
    """The README's settings table: variable, default, accepted values, meaning."""
    lines = ["| variable | default | accepts | meaning |", "|---|---|---|---|"]
    for variable in variables:
        default = f"`{variable.default}`" if variable.default else "unset"
        cells = (f"`{variable.name}`", default, variable.accepts, variable.help)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)
