"""`deploy-plan`: what deploy.sh deploys, worked out from its options and the function's settings.

deploy.sh's helper: it passes its options in the environment, by the names of its variables (MEMORY, TIMEOUT...), and
reads back one KEY=value line per value (ENV, MODEL_READ and CHANNEL lines repeat). `channel-policy` is the exception:
it prints the setIamPolicy request that grants a role on an Eventarc channel, from the getIamPolicy answer deploy.sh
saved (nothing when the policy grants it already). A problem is reported as deploy.sh reports its own, on stderr: exit
status 2 for a usage error, 1 otherwise. Standard library only, like the settings it reads.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from image_pipeline import deploy_plan as plan
from image_pipeline.commands.settings import PROG as SETTINGS_PROG


def add_parser(subparsers: Any) -> None:
    """Register the `deploy-plan` command."""
    parser = subparsers.add_parser(
        "deploy-plan",
        help="deploy.sh's plan: sizing, identities, env-vars file and checks, from its options in the environment",
        description="What deploy.sh deploys, worked out from its options (in the environment, by the names its --help "
        "gives) and the function's settings: KEY=value lines. Standard library only: works with any python3 >= 3.11, "
        "without the project's dependencies.",
    )
    parser.add_argument("--prog", default="deploy.sh", help="the script whose messages these are (default deploy.sh)")
    parser.add_argument(
        "--source-root", required=True, help="the folder deployed (deploy.sh's); a relative ROUTES_FILE starts there"
    )
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    kinds.add_parser("function", help="deploy.sh deploy: the function's sizing, identities, env-vars file and model")
    job = kinds.add_parser("job", help="deploy.sh backfill-job: the job's identity, arguments and env-vars file")
    job.add_argument("backfill_args", nargs="*", metavar="BACKFILL_ARG", help="extra arguments for the backfill")
    kinds.add_parser("rules", help="deploy.sh rules: whether the routes need generated rules, and their routes file")
    location = kinds.add_parser("location", help="the trigger location for a bucket in LOCATION, for REGION")
    location.add_argument("location", metavar="LOCATION")
    kinds.add_parser("setting-names", help="the setting names for deploy.sh --help, with the defaults it writes")
    policy = kinds.add_parser(
        "channel-policy",
        help="deploy.sh's grant on an Eventarc channel: the setIamPolicy request adding MEMBER to ROLE, from the "
        "getIamPolicy answer in POLICY_FILE (nothing when it is there already)",
    )
    policy.add_argument("--member", required=True, help="who gets the role, e.g. serviceAccount:EMAIL")
    policy.add_argument("--role", required=True, help="the role, e.g. roles/eventarc.publisher")
    policy.add_argument("policy_file", metavar="POLICY_FILE", help="getIamPolicy's answer (JSON)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the plan's lines, or report why there is none as deploy.sh would."""
    try:
        lines = plan_lines(args, os.environ, lambda message: print(f"{args.prog}: warning: {message}", file=sys.stderr))
    except plan.InvalidSettings as error:
        # The function's own settings check said what is wrong; deploy.sh says what it means for the deploy.
        print(f"{SETTINGS_PROG}: error: {error}", file=sys.stderr)
        print(f"{args.prog}: error: invalid function settings (see above)", file=sys.stderr)
        return error.status
    except plan.FlagError as error:
        print(f"{args.prog}: error: {error} (see {args.prog} --help)", file=sys.stderr)
        return error.status
    except plan.PlanError as error:
        print(f"{args.prog}: error: {error}", file=sys.stderr)
        return error.status
    if lines:
        print("\n".join(lines))
    return 0


def plan_lines(args: argparse.Namespace, environ: Mapping[str, str], warn: Callable[[str], None]) -> tuple[str, ...]:
    """The lines for one kind of plan."""
    if args.kind == "function":
        return function_lines(plan.plan_function(environ, args.source_root, warn))
    if args.kind == "job":
        job = plan.plan_job(environ, args.source_root, args.backfill_args)
        return (f"BUCKET={job.bucket}", f"RUNTIME_EMAIL={job.runtime_email}", f"ARGS={job.args}", *_env(job.env_file))
    if args.kind == "rules":
        rules = plan.plan_rules(environ, args.source_root)
        return (f"SHAPED_BY={rules.shaped_by}", f"ROUTES_FILE={rules.routes_file}")
    if args.kind == "channel-policy":
        request = plan.set_policy_request(_read(args.policy_file), args.role, args.member)
        return (request,) if request else ()
    if args.kind == "location":
        bucket = plan.bucket_name(environ.get("BUCKET", ""), environ.get("PROJECT_ID", ""))
        return (f"TRIGGER_LOCATION={plan.trigger_location(args.location, environ.get('REGION', ''), bucket)}",)
    return plan.help_setting_names(plan.read_settings().variables)


def function_lines(function: plan.FunctionPlan) -> tuple[str, ...]:
    """A function plan as deploy.sh reads it; every key is always there (empty when it does not apply)."""
    upload = function.upload
    return (
        f"BUCKET={function.bucket}",
        f"RUNTIME_EMAIL={function.runtime.email}",
        f"RUNTIME_ACCOUNT_ID={function.runtime.account_id}",
        f"TRIGGER_EMAIL={function.trigger.email}",
        f"TRIGGER_ACCOUNT_ID={function.trigger.account_id}",
        f"MEMORY={function.sizing.memory}",
        f"CPU={function.sizing.cpu}",
        f"TIMEOUT={function.sizing.timeout}",
        f"BUILD_SERVICE_ACCOUNT={function.build_service_account}",
        f"CUTOUT_OBJECT={upload.object_name if upload else ''}",
        f"CUTOUT_SHA256={upload.sha256 if upload else ''}",
        *(f"MODEL_READ={read.bucket} {read.uri}" for read in function.model_reads),
        *(f"CHANNEL={_channel(channel)}" for channel in function.channels),
        *_env(function.env_file),
    )


def _env(lines: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"ENV={line}" for line in lines)


def _channel(channel: plan.EventChannel) -> str:
    """A channel as deploy.sh reads it: its full name, project, location and id, and the routes publishing there."""
    return f"{channel.name} {channel.project} {channel.location} {channel.channel_id} {','.join(channel.routes)}"


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        raise plan.PlanError(f"cannot read '{path}'") from None
