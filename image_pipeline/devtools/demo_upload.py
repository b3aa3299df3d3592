"""Where the local tools upload for a route, and the document they create first, as the app would.

The demo, the page and the benchmarks share it: one rule for demo capture values, one check that the function would
give the upload to that route.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from image_pipeline.errors import ConfigurationError
from image_pipeline.ports import Decision, DocumentStore
from image_pipeline.routes import MissingDocument, Route
from image_pipeline.uploads import Upload, classify

BUCKET = "demo-image-pipeline.appspot.com"
# The upload's capture values: CharaForge's own two (the page and the docs show them), any other {name} is demo-{name}.
DEMO_VALUES = {"uid": "demo-user", "characterId": "demo-character"}


def demo_folder(route: Route) -> str:
    """The folder a demo upload for `route` goes to: its match with the demo capture values."""
    return "/".join(
        segment if capture is None else DEMO_VALUES.get(capture, f"demo-{capture}")
        for segment, capture in zip(route.match.segments[:-1], route.match.captures[:-1], strict=True)
    )


@dataclass(frozen=True)
class DemoUpload:
    """Where a local tool uploads for one route, and the fields it seeds the document with as the app would."""

    route: Route
    name: str  # the object name: the route's match with demo capture values
    document: str
    seed: Mapping[str, str] | None  # dotted field paths; None: the route creates its document (missing = "create")

    @classmethod
    def of(cls, route: Route, file_name: str, routes: tuple[Route, ...]) -> DemoUpload:
        """The demo upload for `route`; ConfigurationError if the function would not give it to that route."""
        name = f"{demo_folder(route)}/{file_name}".lstrip("/")
        found = classify("demo", None, {"bucket": BUCKET, "name": name, "generation": "1", "size": "1"}, routes)
        if not isinstance(found, Upload) or found.route != route:
            taker = f"route {found.route.name!r}" if isinstance(found, Upload) else "no route"
            raise ConfigurationError(f"--route {route.name!r}: the demo upload {name!r} would be taken by {taker}")
        seed = None
        if route.missing is MissingDocument.WAIT:
            required = {path: template.render(found.values) for path, template in route.require.items()}
            collection = found.document.split("/")[-2]
            seed = {**required, "name": f"Demo {collection.removesuffix('s')}"}
        return cls(route, name, found.document, seed)

    def seed_document(self, documents: DocumentStore) -> None:
        """Create (or update) the document with the seed fields, as the app does before it uploads."""
        if self.seed is not None:
            seed = dict(self.seed)
            documents.transact(self.document, lambda _: Decision(writes=seed))
