"""Sub-commands of `python -m image_pipeline`; each module has `add_parser(subparsers)`, heavy imports stay lazy."""

from image_pipeline.commands import backfill, demo, deploy_plan, dev, process, routes, rules, settings

COMMANDS = (process, demo, dev, backfill, settings, rules, routes, deploy_plan)
