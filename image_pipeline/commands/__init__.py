"""Sub-commands of `python -m image_pipeline`; each module has `add_parser(subparsers)` and imports its heavy parts lazily."""

from image_pipeline.commands import backfill, demo, process

COMMANDS = (process, demo, backfill)
