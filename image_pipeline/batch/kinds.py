"""What a backfill does with a listed object, per kind of route: our `[[route]]`s, or one extension route.

Each kind takes the objects its function path would take, tells whether one is done already, and processes it with
the function's own use case, so a backfilled upload ends exactly as if its finalize event had just arrived.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from image_pipeline.batch.run import Action
from image_pipeline.extension.resize import ExtensionTrace, Finalize, handle_finalize
from image_pipeline.extension.route import ExtensionRoute
from image_pipeline.policy import Policy
from image_pipeline.ports import Outcome
from image_pipeline.routes import Route
from image_pipeline.uploads import Skip, Upload, classify
from image_pipeline.usecase import Dependencies, Trace, guard, handle_upload


@dataclass(frozen=True)
class RouteUploads:
    """Our routes: the first whose match takes an object; `only` names those to process (empty: every one)."""

    routes: tuple[Route, ...]
    policy: Policy
    only: tuple[str, ...] = ()

    def take(
        self, resource: Mapping[str, Any], event_id: str, event_time: str, deps: Dependencies
    ) -> RouteJob | Action:
        upload = classify(event_id, event_time, resource, self.routes)
        if isinstance(upload, Skip):
            return Action.NOT_SOURCE
        if self.only and upload.route.name not in self.only:
            return Action.OTHER_ROUTE
        return RouteJob(upload, self.policy, deps)


@dataclass(frozen=True)
class RouteJob:
    """An upload of one of our routes: done when its document records a result for its generation."""

    upload: Upload
    policy: Policy
    deps: Dependencies
    trace: Trace = field(default_factory=Trace)

    def settled(self) -> Outcome | None:
        return guard(self.deps.documents.get(self.upload.document), self.upload)

    def process(self, force: bool) -> Outcome:
        return handle_upload(self.upload, self.policy, self.deps, self.trace, reprocess=force)


@dataclass(frozen=True)
class ExtensionUploads:
    """One extension route: every object its filters pass (it keeps no record, so its outputs tell what is done)."""

    route: ExtensionRoute
    policy: Policy

    def take(
        self, resource: Mapping[str, Any], event_id: str, event_time: str, deps: Dependencies
    ) -> ExtensionJob | Action:
        if self.route.skip_reason(resource) is not None:
            return Action.NOT_SOURCE
        return ExtensionJob(self.route, Finalize(event_id, event_time, resource), self.policy, deps)


@dataclass(frozen=True)
class ExtensionJob:
    """An upload of an extension route: done when every output it would get exists."""

    route: ExtensionRoute
    finalize: Finalize
    policy: Policy
    deps: Dependencies
    trace: ExtensionTrace = field(default_factory=ExtensionTrace)

    def settled(self) -> Outcome | None:
        """DUPLICATE when every planned output exists, whatever made it and from whichever generation: outputs the
        extension made before the move count as done."""
        plan = self.route.plan(self.finalize.name, str(self.finalize.resource["contentType"]))
        bucket = self.finalize.bucket
        done = all(self.deps.objects.stat(bucket, output.path) is not None for output in plan.objects)
        return Outcome.DUPLICATE if done else None

    def process(self, force: bool) -> Outcome:
        """The function's handling of the finalize; forced or not, outputs this function already made from this
        generation are kept (new tokens would break the URLs apps saved), others are rewritten."""
        return handle_finalize(self.route, self.finalize, self.policy, self.deps, self.trace)
