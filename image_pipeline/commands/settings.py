"""`settings`: the environment variables the function reads, listed from the code that reads them."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from image_pipeline.settings import Variable

# How a settings error is headed, by this command and by deploy-plan, which reports it as deploy.sh always has.
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
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--route-level",
        dest="scope",
        action="store_const",
        const="route",
        help="with --names: only the built-in route's variables (refused beside ROUTES_FILE)",
    )
    scope.add_argument(
        "--global",
        dest="scope",
        action="store_const",
        const="global",
        help="with --names: only the variables that apply to every route",
    )
    parser.set_defaults(run=run, scope=None)


def run(args: argparse.Namespace) -> int:
    """Print the names or the table, or check the environment."""
    from image_pipeline.errors import UsageError
    from image_pipeline.settings import Settings

    if args.scope is not None and args.mode != "names":
        raise UsageError("--route-level and --global go with --names")
    if args.mode == "check":
        Settings.from_env()
        return 0
    variables = Settings.variables()
    if args.mode == "names":
        chosen = [variable for variable in variables if args.scope is None or variable.route == (args.scope == "route")]
        print("\n".join(variable.name for variable in chosen))
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
