"""Acceptance for routes: the function configured by the example routes file (CharaForge's showcase, an avatar and a
product gallery), fed Eventarc-style deliveries on fake-gcs-server and the Firestore emulator.

Every test here, the contract suite of tests/test_function_e2e.py included, drives that function: this module's
`backend` is the routes file's.
"""

from __future__ import annotations

import io
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from google.cloud import firestore
from PIL import Image, ImageDraw

from tests import test_function_e2e as contract
from tests.backend import Backend, photo, token_of

# The contract suite of the built-in route, collected again here: CharaForge's route spelled out in the routes file
# must keep every promise the built-in one makes (pytest collects any `test_*` function in a module's namespace).
globals().update({name: test for name, test in vars(contract).items() if name.startswith("test_")})

OWNER = "user-1"
CHARACTER = "char-1"
BACKGROUND = (0xF4, 0xF4, 0xF4)


@pytest.fixture
def backend(routes_backend: Backend) -> Backend:
    """A clean bucket and database, delivering to the function that reads the example routes file."""
    return routes_backend


def transparent_png(width: int, height: int, clear: tuple[int, int, int, int]) -> bytes:
    """A photo-like PNG whose `clear` box (left, top, right, bottom) is fully transparent black."""
    image = Image.open(io.BytesIO(photo(width, height, "PNG"))).convert("RGBA")
    ImageDraw.Draw(image).rectangle(clear, fill=(0, 0, 0, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@dataclass(frozen=True)
class Probe:
    """A pixel of one variant, at a fraction of its width and height, and whether the source was transparent there."""

    variant: str
    x: float
    y: float
    transparent: bool


@dataclass(frozen=True)
class RouteCase:
    """One upload under one route and what it must produce."""

    route: str
    source: str
    data: bytes
    content_type: str
    document: str
    field: str
    output: str
    formats: tuple[str, ...]  # the first is primary
    sizes: dict[str, tuple[int, int]]
    srcset_widths: tuple[int, ...]
    probes: tuple[Probe, ...] = ()

    @property
    def stem(self) -> str:
        """The source file name without its extension."""
        return self.source.rsplit("/", 1)[1].rsplit(".", 1)[0]


SHOWCASE = RouteCase(
    route="showcase",
    source=f"raw-uploads/{OWNER}/{CHARACTER}/portrait.jpg",
    data=photo(1600, 1200),
    content_type="image/jpeg",
    document=f"characters/{CHARACTER}",
    field="visuals.showcase",
    output=f"showcase-images/{OWNER}/{CHARACTER}/",
    formats=("webp",),
    sizes={"thumb": (256, 192), "medium": (1024, 768), "large": (1600, 1200)},
    srcset_widths=(256, 1024, 1600),
)
# The left half is transparent: the centre crop of the cover boxes keeps it on their left.
AVATAR = RouteCase(
    route="avatar",
    source="users/user-2/avatar/me.png",
    data=transparent_png(900, 600, (0, 0, 449, 599)),
    content_type="image/png",
    document="users/user-2",
    field="avatar",
    output="avatars/user-2/",
    formats=("avif", "webp"),
    sizes={"small": (256, 256), "tiny": (64, 64)},
    srcset_widths=(64, 256),
    probes=(
        Probe("small", 0.1, 0.5, transparent=True),
        Probe("small", 0.9, 0.5, transparent=False),
        Probe("tiny", 0.1, 0.5, transparent=True),
        Probe("tiny", 0.9, 0.5, transparent=False),
    ),
)
# The top-left corner is transparent: kept in WebP, flattened onto the route's background in JPEG.
GALLERY = RouteCase(
    route="gallery",
    source="products/p-1/images/red-chair.png",
    data=transparent_png(2000, 1000, (0, 0, 499, 249)),
    content_type="image/png",
    document="products/p-1/images/red-chair",
    field="image",
    output="product-images/p-1/",
    formats=("webp", "jpeg"),
    sizes={"thumb": (320, 160), "large": (1600, 800)},
    srcset_widths=(320, 1600),
    probes=(
        Probe("thumb", 0.06, 0.1, transparent=True),
        Probe("thumb", 0.75, 0.6, transparent=False),
        Probe("large", 0.06, 0.1, transparent=True),
        Probe("large", 0.75, 0.6, transparent=False),
    ),
)
CASES = (SHOWCASE, AVATAR, GALLERY)
PIL_FORMATS = {"avif": "AVIF", "webp": "WEBP", "jpeg": "JPEG"}
EXTENSIONS = {"avif": "avif", "webp": "webp", "jpeg": "jpg"}

# What each route's neighbours already hold: documents of all three routes and an earlier output in every folder.
NEIGHBOUR_DOCUMENTS = {
    f"characters/{CHARACTER}": {"meta": {"userId": OWNER}, "name": "Aria"},
    "characters/char-2": {"meta": {"userId": OWNER}, "visuals": {"showcaseImageUrl": "https://kept"}},
    "users/user-1": {"displayName": "Ada", "avatar": {"status": "complete"}},
    "products/p-1/images/blue-chair": {"title": "Blue chair"},
}
NEIGHBOUR_OBJECTS = (
    f"showcase-images/{OWNER}/char-2/old-1-large.webp",
    "avatars/user-1/old-1-small.webp",
    "product-images/p-1/blue-chair-1-large.webp",
)


def all_documents(client: firestore.Client) -> dict[str, dict[str, Any]]:
    """Every stored document in the database by path, subcollections included."""
    found: dict[str, dict[str, Any]] = {}
    pending = list(client.collections())
    while pending:
        collection = pending.pop()
        for reference in collection.list_documents():
            snapshot = reference.get()
            if snapshot.exists:
                found[reference.path] = snapshot.to_dict()
            pending.extend(reference.collections())
    return found


def document_at(backend: Backend, path: str) -> dict[str, Any] | None:
    """One document by path, or None."""
    snapshot = backend.firestore_client.document(path).get()
    return snapshot.to_dict() if snapshot.exists else None


def object_generations(backend: Backend) -> dict[str, int]:
    """Every object in the bucket and its generation: a rewrite would change it."""
    return {name: blob.generation for name, blob in backend.objects("").items()}


def seed_neighbours(backend: Backend) -> None:
    """The other routes' documents and outputs, which a delivery for one route must leave alone."""
    for path, fields in NEIGHBOUR_DOCUMENTS.items():
        backend.firestore_client.document(path).set(fields)
    for name in NEIGHBOUR_OBJECTS:
        backend.upload(name, b"not ours to touch", content_type="image/webp")


def manifest_of(document: dict[str, Any], field: str) -> dict[str, Any]:
    """The manifest at a dotted field path."""
    value: Any = document
    for part in field.split("."):
        value = value[part]
    return value


def parse_srcset(srcset: str) -> list[tuple[str, int]]:
    """`"URL 256w, URL 1024w"` as (URL, width) pairs, in order."""
    pairs = [entry.rsplit(" ", 1) for entry in srcset.split(", ")]
    return [(url, int(width.removesuffix("w"))) for url, width in pairs]


@pytest.mark.parametrize("case", CASES, ids=[case.route for case in CASES])
def test_each_route_writes_its_document_and_outputs_and_nothing_else(backend: Backend, case: RouteCase) -> None:
    seed_neighbours(backend)
    source = backend.upload(case.source, case.data, content_type=case.content_type)
    documents_before, objects_before = all_documents(backend.firestore_client), object_generations(backend)

    assert backend.deliver(source, event_id=f"event-{case.route}") == 200

    [summary] = backend.summary_lines(f"event-{case.route}")
    assert (summary["route"], summary["outcome"]) == (case.route, "complete")
    document = document_at(backend, case.document)
    manifest = manifest_of(document, case.field)
    assert manifest["status"] == "complete" and manifest["error"] is None
    assert manifest["source"]["path"] == case.source and manifest["source"]["generation"] == source["generation"]
    assert set(manifest["variants"]) == set(case.sizes)
    assert_placeholder(manifest["placeholder"])
    stored = assert_variants(backend, case, manifest, source["generation"])
    assert_srcsets(case, manifest)
    # Only this route's document and folder changed, and only by the objects its manifest names.
    documents_after = all_documents(backend.firestore_client)
    assert {path: fields for path, fields in documents_after.items() if path != case.document} == {
        path: fields for path, fields in documents_before.items() if path != case.document
    }
    objects_after = object_generations(backend)
    assert {name: objects_after[name] for name in objects_before} == objects_before
    assert set(objects_after) - set(objects_before) == stored
    if case is SHOWCASE:
        assert_showcase_mirror(document, manifest)
    else:
        assert case.document not in documents_before
        assert document == {case.field: manifest}


def assert_placeholder(placeholder: dict[str, Any]) -> None:
    """All three placeholders, each a non-empty string."""
    assert set(placeholder) == {"dominantColor", "blurhash", "thumbhash"}
    assert all(isinstance(value, str) and value for value in placeholder.values())
    assert placeholder["dominantColor"].startswith("#") and len(placeholder["dominantColor"]) == 7


def assert_variants(backend: Backend, case: RouteCase, manifest: dict[str, Any], generation: str) -> set[str]:
    """Every variant in every format is stored, named, sized and encoded as the manifest says; the paths stored."""
    stored = backend.objects(case.output)
    paths = set()
    for name, variant in manifest["variants"].items():
        assert set(variant["formats"]) == set(case.formats)  # Firestore keeps no key order
        primary = variant["formats"][case.formats[0]]
        assert {key: variant[key] for key in primary} == primary
        assert (variant["width"], variant["height"]) == case.sizes[name]
        for output_format, entry in variant["formats"].items():
            path = f"{case.output}{case.stem}-{generation}-{name}.{EXTENSIONS[output_format]}"
            assert entry["path"] == path and "sameAs" not in entry
            blob = stored[path]
            assert entry["url"].endswith(f"&token={token_of(blob)}")
            assert entry["contentType"] == blob.content_type == f"image/{output_format}"
            body = backend.download_url(entry["url"]).content
            assert len(body) == entry["bytes"] == blob.size
            image = Image.open(io.BytesIO(body))
            image.load()
            assert (image.format, image.size) == (PIL_FORMATS[output_format], case.sizes[name])
            assert_pixels(case, name, output_format, image)
            paths.add(path)
    return paths


def assert_pixels(case: RouteCase, variant: str, output_format: str, image: Image.Image) -> None:
    """Alpha is kept where the format has it; JPEG is flattened onto the background where the source was clear."""
    has_alpha = output_format != "jpeg"
    assert ("A" in image.getbands()) is (has_alpha and bool(case.probes))
    for probe in (probe for probe in case.probes if probe.variant == variant):
        xy = (int(probe.x * image.width), int(probe.y * image.height))
        pixel = image.convert("RGBA").getpixel(xy)
        if has_alpha:
            assert (pixel[3] <= 8) is probe.transparent, (output_format, probe, pixel)
        elif probe.transparent:
            assert all(abs(value - expected) <= 6 for value, expected in zip(pixel[:3], BACKGROUND, strict=True)), pixel


def assert_srcsets(case: RouteCase, manifest: dict[str, Any]) -> None:
    """One srcset per format: every variant of the largest's aspect, ascending by width, each its own URL."""
    assert set(manifest["srcset"]) == set(case.formats)
    by_width = {variant["width"]: variant for variant in manifest["variants"].values()}
    for output_format, srcset in manifest["srcset"].items():
        entries = parse_srcset(srcset)
        assert [width for _, width in entries] == list(case.srcset_widths)
        assert all(url == by_width[width]["formats"][output_format]["url"] for url, width in entries)


def assert_showcase_mirror(document: dict[str, Any], manifest: dict[str, Any]) -> None:
    """CharaForge's three fields, exactly as before routes; its other fields kept."""
    assert document["name"] == "Aria" and document["meta"] == {"userId": OWNER}
    mirror = {"showcaseProcessingStatus", "isShowcaseProcessed", "showcaseImageUrl"}
    assert set(document["visuals"]) == {"showcase", *mirror}
    assert document["visuals"]["showcaseProcessingStatus"] == "complete"
    assert document["visuals"]["isShowcaseProcessed"] is True
    assert document["visuals"]["showcaseImageUrl"] == manifest["variants"]["large"]["url"]


def test_the_avatar_route_keeps_the_users_other_fields(backend: Backend) -> None:
    backend.firestore_client.document("users/user-2").set({"displayName": "Grace", "avatar": {"stale": True}})
    source = backend.upload(AVATAR.source, AVATAR.data, content_type="image/png")

    assert backend.deliver(source) == 200

    document = document_at(backend, "users/user-2")
    assert document["displayName"] == "Grace"
    assert document["avatar"]["status"] == "complete" and "stale" not in document["avatar"]


def test_the_gallery_makes_one_document_per_image(backend: Backend) -> None:
    uploads = {
        stem: backend.upload(f"products/p-1/images/{stem}.{ext}", photo(1200, 800, fmt), content_type=f"image/{ext}")
        for stem, ext, fmt in (("red-chair", "png", "PNG"), ("blue-chair", "jpeg", "JPEG"))
    }

    assert [backend.deliver(source) for source in uploads.values()] == [200, 200]

    assert set(all_documents(backend.firestore_client)) == {f"products/p-1/images/{stem}" for stem in uploads}
    for stem, source in uploads.items():
        manifest = document_at(backend, f"products/p-1/images/{stem}")["image"]
        assert (manifest["status"], manifest["source"]["path"]) == ("complete", source["name"])
        assert all(f"/{stem}-{source['generation']}-" in variant["path"] for variant in manifest["variants"].values())
    assert len(backend.objects("product-images/p-1/")) == 2 * 2 * 2  # two images, two variants, two formats


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("avatars/user-1/x-1-small.webp", id="avatar-output"),
        pytest.param("product-images/p-1/red-chair-1-large.jpg", id="gallery-output"),
        pytest.param(f"showcase-images/{OWNER}/{CHARACTER}/portrait-1-large.webp", id="showcase-output"),
        pytest.param("users/user-1/avatar/", id="avatar-folder-placeholder"),
        pytest.param("users/user-1/banner/me.png", id="no-route"),
        pytest.param("products/p-1/images/extra/red-chair.png", id="extra-segment"),
        pytest.param("uploads/me.png", id="unrouted-prefix"),
    ],
)
def test_objects_no_route_takes_are_skipped_and_write_nothing(backend: Backend, name: str) -> None:
    seed_neighbours(backend)
    source = backend.upload(AVATAR.source, photo(64, 48))
    before = (all_documents(backend.firestore_client), object_generations(backend))
    event_id = uuid.uuid4().hex

    status = backend.deliver({**source, "name": name}, event_id=event_id)

    assert 200 <= status < 300
    assert (all_documents(backend.firestore_client), object_generations(backend)) == before
    [summary] = backend.summary_lines(event_id)
    assert (summary["severity"], summary["outcome"], summary["object"]) == ("INFO", "skipped", name)


@pytest.mark.parametrize("case", [AVATAR, GALLERY], ids=["avatar", "gallery"])
def test_a_redelivery_to_a_document_the_function_created_changes_nothing(backend: Backend, case: RouteCase) -> None:
    source = backend.upload(case.source, case.data, content_type=case.content_type)
    assert backend.deliver(source, event_id="event-1") == 200
    before = (document_at(backend, case.document), object_generations(backend))

    assert backend.deliver(source, event_id="event-1") == 200

    assert (document_at(backend, case.document), object_generations(backend)) == before


@pytest.mark.parametrize("case", [AVATAR, GALLERY], ids=["avatar", "gallery"])
def test_concurrent_duplicates_creating_the_document_make_one_set_of_outputs(backend: Backend, case: RouteCase) -> None:
    source = backend.upload(case.source, case.data, content_type=case.content_type)

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda delay: contract.deliver_apart(backend, source, delay), (0, 0, 0.1, 0.2)))

    assert statuses == [200] * 4
    manifest = manifest_of(document_at(backend, case.document), case.field)
    assert manifest["status"] == "complete"
    stored = backend.objects(case.output)
    assert len(stored) == len(case.sizes) * len(case.formats)
    for variant in manifest["variants"].values():
        for entry in variant["formats"].values():
            assert entry["url"].endswith(f"&token={token_of(stored[entry['path']])}")
