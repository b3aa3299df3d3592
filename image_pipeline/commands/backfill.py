"""`backfill`: run the function on uploads already in the bucket that have no result for their generation yet, or
(`--route NAME` of an extension route) that have not got all their outputs."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from image_pipeline.errors import UsageError

PROG = "python -m image_pipeline backfill"
INTERRUPTED = 130
MAX_CONCURRENCY = 64


def add_parser(subparsers: Any) -> None:
    """Register the `backfill` command."""
    parser = subparsers.add_parser(
        "backfill",
        help="process the uploads already in a bucket that have no result yet (resumable, sharded)",
        description="List the objects under every route's source folder and run the function's own use case on each "
        "one whose document has no result for its current generation (every one with --force). Extension routes "
        "(extension = storage-resize-images) are left alone unless --route names one: then it lists under the "
        "route's INCLUDE_PATH_LIST folders and handles, as the function does, every upload the route's filters "
        "pass whose outputs do not all exist yet (every one with --force); if the route deletes originals, a run "
        "without --yes only says how many it would delete. Settings come from the same environment variables as "
        "the function. Prints one JSON summary line on stdout; exits 0 when everything listed is done, 1 if an "
        "object ended failed or in error, 2 on a usage error or an unconfirmed delete, 130 when interrupted "
        "(Ctrl-C or SIGTERM: objects in flight finish first, a rerun resumes).",
    )
    parser.add_argument("--bucket", help="the bucket to list (default: $BUCKET)")
    parser.add_argument(
        "--route",
        metavar="NAME",
        help="process only this route's uploads (default: every route but the extension routes, which are "
        "backfilled only by name)",
    )
    parser.add_argument(
        "--prefix", help="list only under this prefix, inside a route's sources (default: every route's folder)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="reprocess objects whose result is already recorded (extension route: whose outputs all exist)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the objects it would process; write nothing")
    parser.add_argument(
        "--limit", type=_positive, metavar="N", help="process at most N objects (done ones don't count)"
    )
    parser.add_argument(
        "--concurrency", type=_concurrency, default=4, metavar="N", help="objects processed at once (default 4)"
    )
    parser.add_argument(
        "--shard",
        type=_shard,
        metavar="I/N",
        help="take only objects whose name hashes to I modulo N "
        "(default: $CLOUD_RUN_TASK_INDEX/$CLOUD_RUN_TASK_COUNT, else 0/1)",
    )
    parser.add_argument(
        "--attempts", type=_positive, default=4, metavar="N", help="tries per object on transient errors (default 4)"
    )
    parser.add_argument(
        "--progress-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between progress log lines when stderr is not a terminal (default 10)",
    )
    parser.add_argument(
        "--prune",
        action="store_true",
        help="instead: list the output objects no manifest references (older generations, deleted sources); "
        "with --yes, delete them",
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help="with --prune: delete what it lists; with --route of an extension route that deletes originals "
        "(DELETE_ORIGINAL_FILE true or on_success): go ahead and delete them",
    )
    parser.add_argument(
        "--prune-min-age-s",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="with --prune: keep objects younger than this, which an event in flight may still record (default 3600)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the backfill and print its summary; the exit code says whether everything listed is done."""
    from image_pipeline import logs
    from image_pipeline.settings import Settings

    settings = Settings.from_env()
    plan = make_plan(args, settings, os.environ)
    extension = extension_route(args.route, settings)
    logs.configure(stream=sys.stderr, level=settings.log_level.value)
    if args.prune:
        return prune(args, plan, settings, extension)
    if args.yes and extension is None:
        raise UsageError("--yes only confirms --prune, or the deletes of an extension route named by --route")

    from image_pipeline.batch.kinds import ExtensionUploads, RouteUploads
    from image_pipeline.batch.run import Backfill, Uploads
    from image_pipeline.bootstrap import connect
    from image_pipeline.commands.progress import Progress

    uploads: Uploads = (
        ExtensionUploads(extension, settings.policy)
        if extension is not None
        else RouteUploads(settings.routes, settings.policy, plan.routes)
    )
    deps = connect(settings)
    if extension is not None and deletes_originals(extension) and not (args.yes or plan.dry_run):
        return refuse_unconfirmed_deletes(extension, Backfill(replace(plan, dry_run=True), uploads, deps))

    interactive = sys.stderr.isatty()
    progress = Progress(sys.stderr, interactive, 0.2 if interactive else args.progress_interval, plan.limit)
    if interactive:
        logs.configure(stream=progress, level=settings.log_level.value)
    printing = threading.Lock()

    def observe(report: Any, tally: Any) -> None:
        if report.action.value == "would_process":
            with printing:
                print(json.dumps({"would_process": report.name, "generation": report.generation}), flush=True)
        progress.update(tally)

    backfill = Backfill(plan, uploads, deps, observe)
    with sigterm_as_interrupt():
        summary = backfill.run()
    progress.update(backfill.tally, final=True)
    with printing:
        print(json.dumps(summary), flush=True)
    return exit_code(summary)


def extension_route(name: str | None, settings: Any) -> Any:
    """The extension route `--route` names, or None (no --route, or one of our routes)."""
    return next((route for route in settings.extension_routes if route.name == name), None)


def deletes_originals(route: Any) -> bool:
    """Whether the extension route deletes the uploads it handles (DELETE_ORIGINAL_FILE true or on_success)."""
    from image_pipeline.extension.params import DeleteOriginalFile

    return bool(route.params.delete_original is not DeleteOriginalFile.NEVER)


def refuse_unconfirmed_deletes(route: Any, counting: Any) -> int:
    """Run `counting` (this run as a dry run) and refuse, saying how many originals the run would delete.

    A count that did not finish (interrupted, the listing or an object in error) prints its summary and exits as a
    run would: the number would be too low.
    """
    from image_pipeline.extension.params import DeleteOriginalFile

    with sigterm_as_interrupt():
        summary = counting.run()
    if exit_code(summary):
        print(json.dumps(summary), flush=True)
        return exit_code(summary)
    value, fate = (
        ("true", "delete them")
        if route.params.delete_original is DeleteOriginalFile.ALWAYS
        else ("on_success", "delete each one whose outputs are all written")
    )
    raise UsageError(
        f"route {route.name!r} deletes originals (DELETE_ORIGINAL_FILE={value}): this run would process "
        f"{summary['would_process']} uploads and {fate}; run again with --yes to go ahead"
    )


def prune(args: argparse.Namespace, plan: Any, settings: Any, extension: Any) -> int:
    """List (with --yes, delete) the output objects no manifest references: one JSON line each, then a summary."""
    from image_pipeline.batch.prune import Prune
    from image_pipeline.bootstrap import connect

    if extension is not None:
        raise UsageError(f"--prune: route {extension.name!r} is an extension route, which records no manifests")
    routes = tuple(route for route in settings.routes if not plan.routes or route.name in plan.routes)
    deps = connect(settings)
    pruning = Prune(
        plan.bucket, routes, settings.routes, deps.objects, deps.documents, deps.now, args.prune_min_age_s, args.yes
    )

    def observe(report: Any) -> None:
        if report.action == "orphan":
            line = {"orphan": report.name, "generation": report.generation, "deleted": report.deleted}
            print(json.dumps(line), flush=True)

    with sigterm_as_interrupt():
        summary = pruning.run(observe)
    print(json.dumps(summary), flush=True)
    if summary["interrupted"]:
        return INTERRUPTED
    return 1 if summary["errors"] or summary["listing_error"] else 0


def make_plan(args: argparse.Namespace, settings: Any, environ: Mapping[str, str]) -> Any:
    """The run's plan from the flags, the environment and the settings."""
    from image_pipeline.batch.plan import Plan, listing_prefixes

    bucket = args.bucket or environ.get("BUCKET", "").strip()
    if not bucket:
        raise UsageError("no bucket: pass --bucket or set BUCKET")
    sources = route_sources(args.route, settings)
    if args.prefix is not None and not any(args.prefix.startswith(source) for source in sources):
        raise UsageError(f"--prefix {args.prefix!r} is not inside a route's sources ({', '.join(sources)})")
    return Plan(
        bucket=bucket,
        prefixes=(args.prefix,) if args.prefix is not None else listing_prefixes(sources),
        routes=(args.route,) if args.route is not None else (),
        shard=args.shard or shard_from_env(environ),
        force=args.force,
        dry_run=args.dry_run,
        limit=args.limit,
        concurrency=args.concurrency,
        attempts=args.attempts,
    )


def route_sources(name: str | None, settings: Any) -> list[str]:
    """The folders to list: every one of our routes' sources, or the named route's (an extension route's only so)."""
    extension = extension_route(name, settings)
    if extension is not None:
        return list(extension.listing_prefixes)
    routes = [route for route in settings.routes if name is None or route.name == name]
    if name is not None and not routes:
        known = ", ".join(route.name for route in (*settings.routes, *settings.extension_routes))
        raise UsageError(f"--route {name!r} is not a configured route (routes: {known})")
    return [route.match.literal_prefix for route in routes]


def shard_from_env(environ: Mapping[str, str]) -> Any:
    """This Cloud Run task's shard (CLOUD_RUN_TASK_INDEX of CLOUD_RUN_TASK_COUNT), or the whole listing."""
    from image_pipeline.batch.plan import Shard

    index, count = environ.get("CLOUD_RUN_TASK_INDEX"), environ.get("CLOUD_RUN_TASK_COUNT")
    if index is None and count is None:
        return Shard()
    try:
        return _shard(f"{index}/{count}")
    except argparse.ArgumentTypeError as error:
        raise UsageError(f"CLOUD_RUN_TASK_INDEX/CLOUD_RUN_TASK_COUNT: {error}") from None


def exit_code(summary: Mapping[str, Any]) -> int:
    """130 when interrupted; 1 if any object ended failed or in error, or the listing broke; else 0."""
    if summary["interrupted"]:
        return INTERRUPTED
    if summary["failed"] or summary["errors"] or summary["listing_error"]:
        return 1
    return 0


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (Cloud Run stopping a task) like Ctrl-C, so the run ends with a summary."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _positive(text: str) -> int:
    """A whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _concurrency(text: str) -> int:
    """1 to MAX_CONCURRENCY."""
    value = _positive(text)
    if value > MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_CONCURRENCY}, got {value}")
    return value


def _shard(text: str) -> Any:
    """`I/N` with 0 <= I < N."""
    from image_pipeline.batch.plan import Shard

    index, _, count = text.partition("/")
    try:
        return Shard(int(index), int(count))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a shard is I/N with 0 <= I < N, got {text!r}") from None
