"""`settings`: the environment variables the function reads, listed from the code that reads them."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from image_pipeline.routes import Route
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
    mode.add_argument(
        "--route-sizes",
        dest="mode",
        action="store_const",
        const="route-sizes",
        help="check the settings, then per route (ROUTES_FILE's, else the built-in one) one tab-separated line: "
        "name, the largest variant's box as WIDTHxHEIGHT, its formats comma-separated, its cutout model's URI or - "
        "(what deploy.sh sizes and grants by)",
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
    """Print the names, the table or the route sizes, or check the environment."""
    from image_pipeline.errors import UsageError
    from image_pipeline.settings import Settings

    if args.scope is not None and args.mode != "names":
        raise UsageError("--route-level and --global go with --names")
    if args.mode in ("check", "route-sizes"):
        settings = Settings.from_env()
        if args.mode == "route-sizes":
            print("\n".join(route_size(route) for route in settings.routes))
        return 0
    variables = Settings.variables()
    if args.mode == "names":
        chosen = [variable for variable in variables if args.scope is None or variable.route == (args.scope == "route")]
        print("\n".join(variable.name for variable in chosen))
    else:
        print(markdown_table(variables))
    return 0


def route_size(route: Route) -> str:
    """What drives a route's memory and CPU beyond the shared limits: its largest box, formats and cutout model."""
    width, height = route.imaging.largest_variant.box
    formats = ",".join(encoding.format.value for encoding in route.imaging.encodings)
    model = route.cutout.uri if route.cutout is not None else "-"
    return f"{route.name}\t{width}x{height}\t{formats}\t{model}"


def markdown_table(variables: Iterable[Variable]) -> str:
    """The README's settings table: variable, default, accepted values, meaning."""
    lines = ["| variable | default | accepts | meaning |", "|---|---|---|---|"]
    for variable in variables:
        default = f"`{variable.default}`" if variable.default else "unset"
        cells = (f"`{variable.name}`", default, variable.accepts, variable.help)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)
