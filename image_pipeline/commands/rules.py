"""`rules`: the Firebase Security Rules (firestore.rules, storage.rules) for the configured routes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

FIRESTORE_FILE = "firestore.rules"
STORAGE_FILE = "storage.rules"


def add_parser(subparsers: Any) -> None:
    """Register the `rules` command."""
    parser = subparsers.add_parser(
        "rules",
        help="make firestore.rules and storage.rules for the configured routes",
        description="Make the Firebase Security Rules for the routes of ROUTES_FILE (else the built-in route): "
        "uploads only by each route's owner under its match, no client writes under any output folder nor to any "
        "manifest or mirror field. Writes firestore.rules and storage.rules into --out, or prints the one chosen "
        "with --firestore or --storage on stdout.",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--firestore", action="store_true", help="only firestore.rules")
    which.add_argument("--storage", action="store_true", help="only storage.rules")
    parser.add_argument("--out", type=Path, metavar="DIR", help="write the files into this folder")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Render the chosen rules; exit 2 on a configuration or usage error."""
    from image_pipeline import rules
    from image_pipeline.errors import UsageError
    from image_pipeline.settings import Settings

    routes = Settings.from_env().routes
    try:
        texts = {
            name: render(routes)
            for name, render, chosen in (
                (FIRESTORE_FILE, rules.firestore_rules, not args.storage),
                (STORAGE_FILE, rules.storage_rules, not args.firestore),
            )
            if chosen
        }
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.out is None:
        if len(texts) > 1:
            raise UsageError("choose --firestore or --storage to print one file, or --out DIR to write both")
        sys.stdout.write(next(iter(texts.values())))
        return 0
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            (args.out / name).write_text(text, encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot use --out {args.out}: {error.strerror}") from None
    return 0
