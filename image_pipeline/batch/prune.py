"""Prune: delete output objects that no manifest references (older generations, results of deleted sources).

An output object belongs to the documents its name can have been made for: its route's output folder gives the
captures, its file name (the route's `names`, `{stem}-{generation}-{variant}.{ext}` by default) the stem, and the
route's document template turns them into a document path. It is referenced when the manifest at the route's `field`
in one of those documents names it (`variants.*.path`, `variants.*.formats.*.path`). A document whose source is gone
still names its outputs, so they stay. Whatever cannot be told for sure is kept: objects no route's output folder
fits, routes whose output folder and names do not give every part of their document path, objects younger than the
safety age (an event in flight writes its objects before its manifest), and objects whose creation time is unknown.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from image_pipeline import manifest
from image_pipeline.batch import LOGGER
from image_pipeline.batch.plan import listing_prefixes
from image_pipeline.batch.retry import retrying
from image_pipeline.logs import log
from image_pipeline.ports import DocumentStore, ObjectStore
from image_pipeline.routes import STEM, Route, Template

_VALUE = "[A-Za-z0-9_-]{1,128}"
# Manifests read per run are few per folder; a bounded cache spares the reads for the other variants and formats.
_CACHE_SIZE = 4096


@dataclass(frozen=True)
class Orphan:
    """An output object no manifest references, old enough to delete."""

    name: str
    generation: str


def orphan_of(
    resource: Mapping[str, Any], referenced: Container[str], now: datetime, min_age_s: float
) -> Orphan | None:
    """The decision for one listed output: an orphan if unreferenced and created at least `min_age_s` before now."""
    name = str(resource.get("name", ""))
    if name in referenced:
        return None
    created = _created(resource)
    if created is None or now - created < timedelta(seconds=min_age_s):
        return None
    return Orphan(name, str(resource.get("generation")))


def _created(resource: Mapping[str, Any]) -> datetime | None:
    """The object's creation time (`timeCreated`), None if absent or unreadable."""
    try:
        created = datetime.fromisoformat(str(resource["timeCreated"]))
    except (KeyError, ValueError):
        return None
    return created if created.tzinfo is not None else None


@dataclass(frozen=True)
class OutputFolder:
    """A route's output folder read backwards: from an object name to the documents it can have been made for."""

    route: Route
    pattern: re.Pattern[str] | None  # None: the folder does not name every part of the document path

    @classmethod
    def of(cls, route: Route) -> OutputFolder:
        segments = route.output.text[:-1].split("/")
        pieces = []
        for segment in segments:
            names = Template(segment).placeholders()
            if names and segment != f"{{{names[0]}}}":
                return cls(route, None)  # a segment mixing text and placeholders cannot be split for sure
            pieces.append(f"(?P<{names[0]}>{_VALUE})" if names else re.escape(segment))
        named = {name for segment in segments for name in Template(segment).placeholders()}
        if route.names.has_stem:
            named.add(STEM)
        if not set(route.document.placeholders()) <= named:
            return cls(route, None)
        return cls(route, re.compile("/".join(pieces) + "/(?P<_file>[^/]+)"))

    @property
    def prefix(self) -> str:
        """The literal folders before the first placeholder: where the listing starts."""
        text = self.route.output.text
        return text[: text.rfind("/", 0, text.find("{")) + 1] if "{" in text else text

    def fits(self, name: str) -> bool:
        """Whether the route can have written this object: directly in its folder, with an output file name."""
        folder, _, file_name = name.rpartition("/")
        return bool(self.route.output.as_pattern().fullmatch(folder + "/")) and self.route.names.could_make(file_name)

    def documents(self, name: str) -> tuple[str, ...] | None:
        """Every document path this object can belong to; None when the folder cannot tell."""
        found = self.pattern.fullmatch(name) if self.pattern else None
        if found is None:
            return None
        values = {key: value for key, value in found.groupdict().items() if key != "_file"}
        if STEM in self.route.document.placeholders() and self.route.names.has_stem:
            # A stem may itself hold what follows it (`a-1-b` in `{stem}-{generation}-{variant}`): every split counts.
            stems = self.route.names.stems(found.group("_file"))
        else:
            stems = (values.get(STEM, ""),)
        return tuple(dict.fromkeys(self.route.document.render({**values, STEM: stem}) for stem in stems))


@dataclass(frozen=True)
class PruneReport:
    """What happened to one listed output object."""

    name: str
    generation: str | None
    action: str  # orphan | error | one of _KEPT
    deleted: bool = False
    detail: str | None = None


_KEPT = ("referenced", "too_young", "not_ours", "other_route", "unknown_document")


class Prune:
    """One prune run over the output folders of `routes`, attributing each object against every configured route."""

    def __init__(
        self,
        bucket: str,
        routes: Sequence[Route],
        all_routes: Sequence[Route],
        objects: ObjectStore,
        documents: DocumentStore,
        now: Callable[[], datetime],
        min_age_s: float,
        delete: bool,
        attempts: int = 4,
        backoff_s: float = 1.0,
    ) -> None:
        self.bucket = bucket
        self.folders = tuple(OutputFolder.of(route) for route in all_routes)
        self.prefixes = listing_prefixes(OutputFolder.of(route).prefix for route in routes)
        self.chosen = {route.name for route in routes}
        self.objects, self.documents = objects, documents
        self.now, self.min_age_s, self.delete = now, min_age_s, delete
        self.attempts, self.backoff_s = attempts, backoff_s
        # Retries wait on it, so that a caller running the prune in a thread can cut their backoff short by setting it;
        # the CLI never does: SIGTERM and Ctrl-C reach its main thread as KeyboardInterrupt, inside the wait.
        self.stop = threading.Event()
        self._manifests: dict[tuple[str, str], frozenset[str]] = {}

    def run(self, observe: Callable[[PruneReport], None] = lambda report: None) -> dict[str, Any]:
        """Examine every object under the output folders, deleting orphans unless a dry run; return the summary."""
        started = time.monotonic()
        counts: Counter[str] = Counter()
        interrupted, listing_error = False, None
        try:
            for prefix in self.prefixes:
                for resource in self.objects.list_objects(self.bucket, prefix):
                    report = self.examine(resource)
                    counts[report.action] += 1
                    counts["deleted"] += report.deleted
                    observe(report)
        except KeyboardInterrupt:
            interrupted = True
        except Exception as error:
            # Page retries are exhausted (or the bucket is wrong): end with a summary; a rerun resumes.
            listing_error = f"{type(error).__name__}: {error}"
        kept = {action: counts[action] for action in _KEPT}
        return {
            "bucket": self.bucket,
            "prefixes": list(self.prefixes),
            "dry_run": not self.delete,
            "min_age_s": self.min_age_s,
            "listed": sum(kept.values()) + counts["orphan"] + counts["error"],
            "orphans": counts["orphan"],
            "deleted": counts["deleted"],
            "kept": kept,
            "errors": counts["error"],
            "interrupted": interrupted,
            "listing_error": listing_error,
            "duration_s": round(time.monotonic() - started, 3),
        }

    def examine(self, resource: Mapping[str, Any]) -> PruneReport:
        """Decide, and delete an orphan unless this is a dry run; never raises."""
        name, generation = str(resource.get("name")), _text(resource.get("generation"))
        try:
            referenced = self._references(name)
            if isinstance(referenced, str):
                return PruneReport(name, generation, referenced)
            orphan = orphan_of(resource, referenced, self.now(), self.min_age_s)
            if orphan is None:
                return PruneReport(name, generation, "referenced" if name in referenced else "too_young")
            if self.delete:
                self._retrying(name, lambda: self.objects.delete(self.bucket, name, int(orphan.generation)))
            report = PruneReport(name, generation, "orphan", deleted=self.delete)
        except Exception as error:
            report = PruneReport(name, generation, "error", detail=f"{type(error).__name__}: {error}")
        log(
            LOGGER,
            logging.ERROR if report.action == "error" else logging.INFO,
            f"prune {report.action}: {name}",
            object=name,
            generation=generation,
            deleted=report.deleted,
            detail=report.detail,
        )
        return report

    def _references(self, name: str) -> set[str] | str:
        """The paths named by the manifests the object can belong to, or why it is kept without looking."""
        fitting = [folder for folder in self.folders if folder.fits(name)]
        if not fitting:
            return "not_ours"
        if not any(folder.route.name in self.chosen for folder in fitting):
            return "other_route"
        referenced: set[str] = set()
        for folder in fitting:
            documents = folder.documents(name)
            if documents is None:
                return "unknown_document"
            for path in documents:
                referenced |= self._referenced(folder.route, path)
        return referenced

    def _referenced(self, route: Route, path: str) -> frozenset[str]:
        """The paths the route's manifest in that document names (cached: a folder's objects share documents)."""
        key = (path, route.field)
        if key not in self._manifests:
            if len(self._manifests) >= _CACHE_SIZE:
                self._manifests.clear()
            document = self._retrying(path, lambda: self.documents.get(path))
            self._manifests[key] = manifest.read(document, route).paths
        return self._manifests[key]

    def _retrying(self, name: str, call: Callable[[], Any]) -> Any:
        return retrying(call, name, self.attempts, self.backoff_s, self.stop)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
