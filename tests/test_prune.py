"""backfill --prune: output objects no manifest references are found, and deleted only with --yes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from image_pipeline.__main__ import main
from image_pipeline.batch.prune import Prune, orphan_of
from image_pipeline.manifest import read as read_manifest
from image_pipeline.options import ImagingOptions
from image_pipeline.output_names import Names
from image_pipeline.routes import MissingDocument, Pattern, Route, Template
from image_pipeline.settings import Settings
from tests.fakes import MemoryDocuments, MemoryObjects

BUCKET = "b"
NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)
OLD = NOW - timedelta(days=2)
SHOWCASE = Settings().routes[0]
GALLERY = Route(
    "gallery",
    Pattern.parse("products/{productId}/images/{file}"),
    Template("products/{productId}/images/{stem}"),
    "image",
    Template("product-images/{productId}/"),
    ImagingOptions(),
    missing=MissingDocument.CREATE,
)
UNKNOWN = Route(
    "thumbs",
    Pattern.parse("in/{uid}/{id}/{file}"),
    Template("docs/{id}"),
    "thumbs",
    Template("thumbs/{uid}/"),
    ImagingOptions(),
    owner="uid",
)
ROUTES = (SHOWCASE, GALLERY, UNKNOWN)


class DatedObjects(MemoryObjects):
    """MemoryObjects whose listing carries each object's `timeCreated`, as Cloud Storage's does."""

    def __init__(self) -> None:
        super().__init__()
        self.created: dict[str, datetime] = {}

    def add(self, name: str, created: datetime | None = OLD) -> int:
        generation = self.put(BUCKET, name, b"x")
        if created is not None:
            self.created[name] = created
        return generation

    def list_objects(self, bucket: str, prefix: str):
        for resource in super().list_objects(bucket, prefix):
            created = self.created.get(resource["name"])
            yield resource | ({"timeCreated": created.isoformat()} if created else {})


def manifest(*paths: str, formats: tuple[str, ...] = ()) -> dict[str, Any]:
    variants = {f"v{i}": {"path": path, "width": 1} for i, path in enumerate(paths)}
    if formats:
        variants["v0"]["formats"] = {f"f{i}": {"path": path} for i, path in enumerate(formats)}
    return {"status": "complete", "variants": variants}


@pytest.fixture
def store():
    objects, documents = DatedObjects(), MemoryDocuments()
    documents.documents["characters/c1"] = {
        "meta": {"userId": "u1"},
        "visuals": {
            "showcase": manifest(
                "showcase-images/u1/c1/photo-2-thumb.webp", formats=("showcase-images/u1/c1/photo-2-thumb.avif",)
            )
        },
    }
    # c2's source is deleted; its document still points at its outputs.
    documents.documents["characters/c2"] = {"visuals": {"showcase": manifest("showcase-images/u1/c2/x-5-thumb.webp")}}
    documents.documents["products/p1/images/shoe"] = {"image": manifest("product-images/p1/shoe-9-large.webp")}
    documents.documents["products/p1/images/a-1-b"] = {"image": manifest("product-images/p1/a-1-b-170-thumb.webp")}
    objects.add("raw-uploads/u1/c1/photo.jpg")
    for name in (
        "showcase-images/u1/c1/photo-2-thumb.webp",
        "showcase-images/u1/c1/photo-2-thumb.avif",
        "showcase-images/u1/c2/x-5-thumb.webp",
        "product-images/p1/shoe-9-large.webp",
        "product-images/p1/a-1-b-170-thumb.webp",
        "showcase-images/u1/c1/notes.txt",
        "showcase-images/u1/c1/deeper/photo-1-thumb.webp",
        "thumbs/u1/photo-1-thumb.webp",
    ):
        objects.add(name)
    objects.add("showcase-images/u1/c1/photo-3-thumb.webp", created=NOW - timedelta(minutes=5))  # in flight
    objects.add("showcase-images/u1/c1/photo-4-thumb.webp", created=None)  # creation time unknown
    return objects, documents


ORPHANS = {
    "showcase-images/u1/c1/photo-1-thumb.webp",  # an older generation
    "showcase-images/u1/c1/photo-1-thumb.avif",
    "showcase-images/u1/c3/y-7-thumb.webp",  # its document is gone
    "product-images/p1/shoe-8-large.webp",  # an older generation, document per image
    "product-images/p1/a-1-b-160-thumb.webp",
}


def add_orphans(objects: DatedObjects) -> dict[str, int]:
    return {name: objects.add(name) for name in sorted(ORPHANS)}


def prune(objects, documents, routes=ROUTES, delete=False, min_age_s=3600.0):
    reports = []
    run = Prune(BUCKET, routes, ROUTES, objects, documents, lambda: NOW, min_age_s, delete, attempts=1)
    return run.run(reports.append), {report.name: report for report in reports}


def test_dry_run_lists_the_orphans_and_deletes_nothing(store):
    objects, documents = store
    generations = add_orphans(objects)
    before = dict(objects.objects)
    summary, reports = prune(objects, documents)
    orphans = {name: report.generation for name, report in reports.items() if report.action == "orphan"}
    assert orphans == {name: str(generation) for name, generation in generations.items()}
    assert not any(report.deleted for report in reports.values())
    assert objects.objects == before
    assert summary["orphans"] == len(ORPHANS) and summary["deleted"] == 0 and summary["dry_run"] is True


def test_yes_deletes_exactly_the_orphans(store):
    objects, documents = store
    add_orphans(objects)
    names = set(objects.names(""))
    summary, reports = prune(objects, documents, delete=True)
    assert set(objects.names("")) == names - ORPHANS
    assert all(reports[name].deleted for name in ORPHANS)
    assert summary["deleted"] == len(ORPHANS) and summary["errors"] == 0


@pytest.mark.parametrize(
    ("name", "action"),
    [
        ("showcase-images/u1/c1/photo-2-thumb.webp", "referenced"),
        ("showcase-images/u1/c1/photo-2-thumb.avif", "referenced"),  # a non-primary format
        ("showcase-images/u1/c2/x-5-thumb.webp", "referenced"),  # source deleted, document kept
        ("product-images/p1/shoe-9-large.webp", "referenced"),
        ("product-images/p1/a-1-b-170-thumb.webp", "referenced"),  # a stem that holds -digits-
        ("showcase-images/u1/c1/photo-3-thumb.webp", "too_young"),
        ("showcase-images/u1/c1/photo-4-thumb.webp", "too_young"),
        ("showcase-images/u1/c1/notes.txt", "not_ours"),
        ("showcase-images/u1/c1/deeper/photo-1-thumb.webp", "not_ours"),
        ("thumbs/u1/photo-1-thumb.webp", "unknown_document"),  # its folder does not name its document
    ],
)
def test_kept(store, name, action):
    objects, documents = store
    summary, reports = prune(objects, documents, delete=True)
    assert reports[name].action == action
    assert name in objects.names("")
    assert summary["kept"][action] >= 1


def test_route_narrows_the_listing_and_the_deletions(store):
    objects, documents = store
    add_orphans(objects)
    _, reports = prune(objects, documents, routes=(GALLERY,), delete=True)
    assert {name for name, report in reports.items() if report.deleted} == {
        name for name in ORPHANS if name.startswith("product-images/")
    }
    assert all(name.startswith("product-images/") for name in reports)


def test_delete_takes_the_listed_generation_only(store):
    objects, documents = store
    name = "showcase-images/u1/c1/photo-1-thumb.webp"
    objects.add(name)
    run = Prune(BUCKET, ROUTES, ROUTES, objects, documents, lambda: NOW, 3600, True, attempts=1)
    listed = next(resource for resource in objects.list_objects(BUCKET, name))
    newer = objects.add(name)  # recreated after the listing
    assert run.examine(listed).deleted
    assert objects.objects[(BUCKET, name)].generation == newer


def test_errors_are_counted_and_nothing_is_deleted(store):
    objects, documents = store
    add_orphans(objects)

    def broken(path):
        raise RuntimeError("boom")

    documents.get = broken
    summary, _ = prune(objects, documents, delete=True)
    assert summary["deleted"] == 0 and summary["errors"] > 0
    assert set(objects.names("")) >= ORPHANS


@pytest.mark.parametrize(
    ("manifest_value", "paths"),
    [
        (manifest("a", "b", formats=("c",)), {"a", "b", "c"}),
        ({"variants": {"large": {"path": "l"}, "medium": {"path": "l", "sameAs": "large"}}}, {"l"}),
        ({"status": "failed", "variants": None}, set()),
        ({"variants": {"x": "not a map", "y": {"formats": {"webp": {"url": "u"}}}}}, set()),
        (None, set()),
    ],
)
def test_a_manifest_references_every_variant_and_format_path(manifest_value, paths):
    document = {"visuals": {"showcase": manifest_value}}
    assert read_manifest(document, SHOWCASE).paths == paths


@pytest.mark.parametrize(
    ("resource", "orphan"),
    [
        ({"name": "o", "generation": "1", "timeCreated": "2030-01-01T10:59:59Z"}, True),
        ({"name": "o", "generation": "1", "timeCreated": "2030-01-01T11:00:01Z"}, False),  # younger than 1 h
        ({"name": "r", "generation": "1", "timeCreated": "2020-01-01T00:00:00Z"}, False),  # referenced
        ({"name": "o", "generation": "1"}, False),  # unknown age
        ({"name": "o", "generation": "1", "timeCreated": "yesterday"}, False),
    ],
)
def test_orphan_of(resource, orphan):
    assert (orphan_of(resource, {"r"}, NOW, 3600) is not None) is orphan


def test_yes_alone_is_a_usage_error(capsys):
    assert main(["backfill", "--bucket", BUCKET, "--yes"]) == 2
    assert "--yes only confirms --prune" in capsys.readouterr().err


PICTURES = Route(
    "pictures",
    Pattern.parse("pictures/{uid}/{file}"),
    Template("users/{uid}/pictures/{stem}"),
    "image",
    Template("pics/{uid}/"),
    ImagingOptions(),
    missing=MissingDocument.CREATE,
    names=Names.parse("{stem}_{box}.{ext}"),
)


@pytest.mark.parametrize(
    ("name", "action"),
    [
        ("pics/u1/a_256x256.webp", "referenced"),
        ("pics/u1/a_1_64x64.webp", "referenced"),  # the stem `a_1` holds what could follow a stem `a`
        ("pics/u1/a_1024x1024.webp", "orphan"),  # a variant the manifest no longer names
        ("pics/u1/gone_256x256.webp", "orphan"),  # its document is gone
        ("pics/u1/a-1-thumb.webp", "not_ours"),  # not a name this route's names make
        ("pics/u1/notes.txt", "not_ours"),
    ],
)
def test_custom_names_are_read_back_to_their_documents(name: str, action: str) -> None:
    objects, documents = DatedObjects(), MemoryDocuments()
    documents.documents["users/u1/pictures/a"] = {"image": manifest("pics/u1/a_256x256.webp")}
    documents.documents["users/u1/pictures/a_1"] = {"image": manifest("pics/u1/a_1_64x64.webp")}
    objects.add(name)

    reports: list[Any] = []
    Prune(BUCKET, (PICTURES,), (PICTURES,), objects, documents, lambda: NOW, 3600, True, attempts=1).run(reports.append)

    assert [report.action for report in reports] == [action]
    assert (name in objects.names("")) is (action != "orphan")


# --- On the emulators, through the CLI ------------------------------------------------------------------------


def test_cli_prune_on_emulators_lists_then_deletes_older_generations(backend, monkeypatch, capsys):
    from tests.backend import BUCKET as EMULATOR_BUCKET
    from tests.backend import photo

    monkeypatch.setenv("BUCKET", EMULATOR_BUCKET)
    for variable in ("CLOUD_RUN_TASK_INDEX", "CLOUD_RUN_TASK_COUNT", "LOG_LEVEL"):
        monkeypatch.delenv(variable, raising=False)
    for character, owner in (("char-1", "user-1"), ("char-2", "user-1")):
        backend.seed_character(character, owner)
        backend.upload(f"raw-uploads/{owner}/{character}/portrait.jpg", photo(320, 240))
    assert main(["backfill"]) == 0
    first = set(backend.objects("showcase-images/"))
    backend.upload("raw-uploads/user-1/char-1/portrait.jpg", photo(300, 200))  # a newer generation
    backend.bucket.blob("raw-uploads/user-1/char-2/portrait.jpg").delete()  # a deleted source
    assert main(["backfill"]) == 0
    capsys.readouterr()
    older = {name for name in first if name.startswith("showcase-images/user-1/char-1/")}
    assert len(older) == 3

    def prune_cli(*args: str) -> tuple[int, dict[str, Any], set[str]]:
        code = main(["backfill", "--prune", "--prune-min-age-s", "0", *args])
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        return code, lines[-1], {line["orphan"] for line in lines[:-1]}

    code, summary, listed = prune_cli()
    assert (code, listed, summary["deleted"]) == (0, older, 0)
    assert set(backend.objects("showcase-images/")) >= older

    code, summary, deleted = prune_cli("--yes")
    assert (code, deleted, summary["deleted"]) == (0, older, 3)
    remaining = set(backend.objects("showcase-images/"))
    assert not remaining & older and first - older <= remaining  # char-2's outputs (source deleted) stay
    for character in ("char-1", "char-2"):  # both manifests still point at live objects
        for variant in backend.document(character)["visuals"]["showcase"]["variants"].values():
            assert variant["path"] in remaining
