"""The use case on in-memory ports with routes from a file: documents created, owners checked, every format
recorded, srcsets ready for <picture>, never-bigger variants, and mirrored fields kept in step."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from image_pipeline.options import ImagingOptions
from image_pipeline.ports import Outcome
from image_pipeline.results import ProcessedImage, RenderedVariant
from image_pipeline.routes_file import load_routes
from image_pipeline.settings import Settings
from image_pipeline.uploads import Upload, classify
from image_pipeline.usecase import Dependencies, Trace, handle_upload
from tests.fakes import MemoryDocuments, MemoryObjects, fake_make_variants

BUCKET = "app.appspot.com"
NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
ROUTES = load_routes(Path(__file__).resolve().parent.parent / "examples" / "routes.toml", ImagingOptions()).routes
SETTINGS = dataclasses.replace(Settings(), routes=ROUTES)


class World:
    """Fakes with routes from examples/routes.toml; `documents` seeds the store by path."""

    def __init__(self, documents: dict[str, dict[str, Any]] | None = None, make_variants: Any = fake_make_variants):
        self.objects = MemoryObjects()
        self.documents = MemoryDocuments(dict(documents or {}))
        self.make_variants = make_variants

    def upload(self, name: str, age: timedelta = timedelta(seconds=5)) -> Upload:
        generation = self.objects.put(BUCKET, name, b"image bytes")
        resource = {"bucket": BUCKET, "name": name, "generation": str(generation), "size": "11"}
        upload = classify("event-1", (NOW - age).isoformat(), resource, SETTINGS.routes)
        assert isinstance(upload, Upload)
        return upload

    def run(self, upload: Upload) -> Outcome:
        deps = Dependencies(self.objects, self.documents, self.make_variants, lambda: NOW)
        return handle_upload(upload, SETTINGS.policy, deps, Trace())

    def document(self, path: str) -> dict[str, Any]:
        return self.documents.documents[path]


def test_a_create_route_makes_its_document_and_records_every_format() -> None:
    world = World()
    upload = world.upload("users/u-1/avatar/me.png")

    assert world.run(upload) is Outcome.COMPLETE

    avatar = world.document("users/u-1")["avatar"]
    assert avatar["status"] == "complete"
    assert list(avatar["variants"]) == ["small", "tiny"]
    for name, variant in avatar["variants"].items():
        assert list(variant["formats"]) == ["avif", "webp"]
        assert variant["path"] == f"avatars/u-1/me-{upload.generation}-{name}.avif"  # the primary format at the top
        assert variant["formats"]["avif"]["path"] == variant["path"]
        assert variant["formats"]["webp"]["path"] == f"avatars/u-1/me-{upload.generation}-{name}.webp"
        for stored in variant["formats"].values():
            assert world.objects.objects[(BUCKET, stored["path"])].content_type == stored["contentType"]
    assert sorted(world.objects.names("avatars/")) == sorted(
        f"avatars/u-1/me-{upload.generation}-{name}.{ext}" for name in ("small", "tiny") for ext in ("avif", "webp")
    )


def test_a_document_per_image_is_named_by_the_stem() -> None:
    world = World()

    for name in ("products/p-1/images/Front View.png", "products/p-1/images/back.png"):
        assert world.run(world.upload(name)) is Outcome.COMPLETE

    assert sorted(world.documents.documents) == ["products/p-1/images/Front_View", "products/p-1/images/back"]
    assert world.document("products/p-1/images/back")["image"]["status"] == "complete"


def test_routes_without_a_mirror_write_only_their_field() -> None:
    world = World({"users/u-1": {"name": "Ada"}})

    world.run(world.upload("users/u-1/avatar/me.png"))

    assert sorted(world.document("users/u-1")) == ["avatar", "name"]


@pytest.mark.parametrize(
    ("owner", "outcome"),
    [pytest.param("u-1", Outcome.COMPLETE, id="owner"), pytest.param("someone", Outcome.NOT_OWNER, id="not-owner")],
)
def test_require_compares_document_fields_with_captures(owner: str, outcome: Outcome) -> None:
    world = World({"characters/c-1": {"meta": {"userId": owner}}})

    assert world.run(world.upload("raw-uploads/u-1/c-1/a.png")) is outcome


def test_srcset_lists_each_distinct_width_ascending_with_the_largest_aspect_only() -> None:
    world = World()
    world.run(world.upload("products/p-1/images/x.png"))

    image = world.document("products/p-1/images/x")["image"]
    variants = image["variants"]
    for output_format in ("webp", "jpeg"):
        urls = [variants[name]["formats"][output_format]["url"] for name in ("thumb", "large")]
        assert image["srcset"][output_format] == f"{urls[0]} 320w, {urls[1]} 1600w"


def _two_sizes(thumb: tuple[int, int], large: tuple[int, int], thumb_bytes: int, large_bytes: int):
    """A core stand-in making `thumb` and `large` of the given sizes and byte counts, in every requested format."""

    def make(data: bytes, options: ImagingOptions) -> ProcessedImage:
        made = fake_make_variants(data, options)
        sizes = {"thumb": (thumb, thumb_bytes), "large": (large, large_bytes)}
        variants = tuple(
            RenderedVariant(
                variant.name,
                *sizes[variant.name][0],
                tuple(
                    dataclasses.replace(encoded, data=b"x" * sizes[variant.name][1]) for encoded in variant.encodings
                ),
            )
            for variant in made.variants
        )
        return dataclasses.replace(made, variants=variants)

    return make


def test_a_variant_with_more_bytes_than_a_larger_one_repeats_the_larger_one() -> None:
    world = World(make_variants=_two_sizes((320, 160), (1600, 800), thumb_bytes=5000, large_bytes=4000))
    upload = world.upload("products/p-1/images/x.png")

    world.run(upload)

    image = world.document("products/p-1/images/x")["image"]
    thumb, large = image["variants"]["thumb"], image["variants"]["large"]
    assert thumb["sameAs"] == "large"
    assert (thumb["path"], thumb["url"], thumb["width"], thumb["bytes"]) == (
        large["path"], large["url"], large["width"], large["bytes"]
    )  # fmt: skip
    assert thumb["formats"]["jpeg"]["sameAs"] == "large"
    assert world.objects.names("product-images/") == sorted(
        f"product-images/p-1/x-{upload.generation}-large.{ext}" for ext in ("jpg", "webp")
    )
    assert image["srcset"]["webp"] == f"{large['formats']['webp']['url']} 1600w"


def test_a_smaller_variant_with_fewer_bytes_is_stored() -> None:
    world = World(make_variants=_two_sizes((320, 160), (1600, 800), thumb_bytes=3000, large_bytes=4000))
    world.run(world.upload("products/p-1/images/x.png"))

    thumb = world.document("products/p-1/images/x")["image"]["variants"]["thumb"]
    assert "sameAs" not in thumb and thumb["width"] == 320


def test_a_cover_variant_of_another_aspect_is_left_out_of_the_srcset() -> None:
    world = World(make_variants=_two_sizes((320, 320), (1600, 800), thumb_bytes=10, large_bytes=4000))
    world.run(world.upload("products/p-1/images/x.png"))

    image = world.document("products/p-1/images/x")["image"]
    assert image["srcset"]["webp"] == f"{image['variants']['large']['formats']['webp']['url']} 1600w"


@pytest.mark.parametrize(
    ("mirrored_status", "outcome"),
    [
        pytest.param("complete", Outcome.DUPLICATE, id="settled"),
        pytest.param("finalizing", Outcome.COMPLETE, id="open"),
    ],
)
def test_documents_settled_before_the_manifest_had_a_status_fall_back_to_the_mirror(
    mirrored_status: str, outcome: Outcome
) -> None:
    world = World()
    upload = world.upload("raw-uploads/u-1/c-1/a.png")
    legacy = {
        "showcaseProcessingStatus": mirrored_status,
        "showcase": {"source": {"generation": str(upload.generation)}},
    }
    world.documents.documents["characters/c-1"] = {"meta": {"userId": "u-1"}, "visuals": legacy}

    assert world.run(upload) is outcome


def test_a_missing_document_of_a_wait_route_is_retried_not_created() -> None:
    from image_pipeline.errors import DocumentNotYetCreated

    world = World()

    with pytest.raises(DocumentNotYetCreated):
        world.run(world.upload("raw-uploads/u-1/c-1/a.png"))
    assert world.documents.documents == {}
