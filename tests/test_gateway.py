"""The real adapters against fake-gcs-server and the Firestore emulator.

Exact generations, create-only uploads, replaces for a newer source generation only, guarded transactions, bounded
failures.
"""

from __future__ import annotations

import time

import pytest

from image_pipeline.errors import TransientError
from image_pipeline.gateway import firestore as firestore_gateway
from image_pipeline.gateway import storage as storage_gateway
from image_pipeline.ports import SERVER_TIME, TOKEN_METADATA_KEY, Decision, ObjectMetadata, Outcome
from tests.backend import BUCKET, Backend, token_of


@pytest.fixture
def objects(backend: Backend) -> storage_gateway.CloudStorage:
    """The storage adapter, talking to fake-gcs-server directly."""
    return storage_gateway.connect(timeout_s=5, retry_s=1)


@pytest.fixture
def documents(backend: Backend) -> firestore_gateway.FirestoreDocuments:
    """The Firestore adapter on the emulator."""
    return firestore_gateway.connect(timeout_s=5, retry_s=1)


def test_download_returns_exactly_the_events_generation_or_none(backend: Backend, objects) -> None:
    first = int(backend.upload("raw-uploads/u/c/a.jpg", b"first")["generation"])
    second = int(backend.upload("raw-uploads/u/c/a.jpg", b"second")["generation"])

    assert objects.download(BUCKET, "raw-uploads/u/c/a.jpg", second) == b"second"
    assert objects.download(BUCKET, "raw-uploads/u/c/a.jpg", first) is None
    assert objects.download(BUCKET, "raw-uploads/u/c/missing.jpg", second) is None


def test_create_writes_once_and_a_second_create_returns_the_first_token(backend: Backend, objects) -> None:
    first = objects.create(BUCKET, "out/a.webp", b"one", "image/webp", "public, max-age=60")
    second = objects.create(BUCKET, "out/a.webp", b"two", "image/webp", "public, max-age=60")

    blob = backend.bucket.get_blob("out/a.webp")
    assert first == second == token_of(blob)
    # Marked as every output is, so that no extension route takes it for an upload.
    assert blob.metadata["resizedImage"] == "true"
    assert (blob.download_as_bytes(), blob.content_type, blob.cache_control) == (
        b"one",
        "image/webp",
        "public, max-age=60",
    )


def test_create_or_replace_replaces_an_older_generations_object_keeping_its_token(backend: Backend, objects) -> None:
    name, cache = "out/a_256x256.webp", "public, max-age=3600"
    first = objects.create_or_replace(BUCKET, name, b"one", "image/webp", cache, source_generation=10)
    created = backend.bucket.get_blob(name)
    retried = objects.create_or_replace(BUCKET, name, b"one again", "image/webp", cache, source_generation=10)
    assert backend.bucket.get_blob(name).generation == created.generation  # a retry rewrites nothing

    replaced = objects.create_or_replace(BUCKET, name, b"two", "image/webp", cache, source_generation=11)
    late = objects.create_or_replace(BUCKET, name, b"late", "image/webp", cache, source_generation=10)

    blob = backend.bucket.get_blob(name)
    assert first == retried == replaced == late == token_of(blob)
    assert blob.generation != created.generation
    assert (blob.download_as_bytes(), blob.metadata["sourceGeneration"], blob.cache_control) == (b"two", "11", cache)


def test_create_or_replace_never_overwrites_a_newer_generation_that_raced_in(backend: Backend, objects, monkeypatch):
    name = "out/a_256x256.webp"
    objects.create_or_replace(BUCKET, name, b"ten", "image/webp", "c", source_generation=10)
    read = objects._get

    def read_then_lose_the_race(bucket: str, name: str):
        stale = read(bucket, name)
        monkeypatch.setattr(objects, "_get", read)
        # Generation 12's event replaces the object between this read and the upload that relies on it.
        storage_gateway.connect(timeout_s=5, retry_s=1).create_or_replace(
            bucket, name, b"twelve", "image/webp", "c", source_generation=12
        )
        return stale

    monkeypatch.setattr(objects, "_get", read_then_lose_the_race)
    objects.create_or_replace(BUCKET, name, b"eleven", "image/webp", "c", source_generation=11)

    blob = backend.bucket.get_blob(name)
    assert (blob.download_as_bytes(), blob.metadata["sourceGeneration"]) == (b"twelve", "12")


def test_create_or_replace_takes_over_an_object_it_did_not_write_keeping_its_tokens(backend: Backend, objects) -> None:
    backend.upload(
        "out/a_200x200.jpeg", b"the extension's", metadata={TOKEN_METADATA_KEY: "t1,t2", "resizedImage": "true"}
    )

    token = objects.create_or_replace(BUCKET, "out/a_200x200.jpeg", b"ours", "image/jpeg", "c", source_generation=5)

    blob = backend.bucket.get_blob("out/a_200x200.jpeg")
    assert token == "t1"
    assert (blob.download_as_bytes(), blob.metadata) == (
        b"ours",
        {TOKEN_METADATA_KEY: "t1,t2", "sourceGeneration": "5", "resizedImage": "true"},
    )


def test_delete_removes_the_generation_and_tolerates_it_being_gone(backend: Backend, objects) -> None:
    # fake-gcs-server ignores ifGenerationMatch on delete, so sparing a newer generation is Cloud Storage's part.
    generation = int(backend.upload("raw-uploads/u/c/a.jpg", b"data")["generation"])

    objects.delete(BUCKET, "raw-uploads/u/c/a.jpg", generation)
    objects.delete(BUCKET, "raw-uploads/u/c/a.jpg", generation)

    assert backend.bucket.get_blob("raw-uploads/u/c/a.jpg") is None


def test_transact_applies_field_path_writes_with_server_time(backend: Backend, documents) -> None:
    backend.seed_character("c", "u", visuals={"keep": 1})
    seen = []

    def decide(document):
        seen.append(document)
        return Decision(writes={"visuals.showcase": {"updatedAt": SERVER_TIME, "n": 2}, "visuals.status": "x"})

    assert documents.transact("characters/c", decide).ends is None

    document = backend.document("c")
    assert seen == [{"meta": {"userId": "u"}, "visuals": {"keep": 1}}]
    assert document["visuals"]["keep"] == 1 and document["visuals"]["status"] == "x"
    assert document["visuals"]["showcase"]["n"] == 2
    assert document["visuals"]["showcase"]["updatedAt"].year >= 2024


def test_transact_sees_a_missing_document_and_writes_nothing(backend: Backend, documents) -> None:
    ends = {True: Outcome.DOCUMENT_MISSING, False: Outcome.DUPLICATE}
    decision = documents.transact("characters/absent", lambda document: Decision(ends[document is None]))

    assert decision.ends is Outcome.DOCUMENT_MISSING
    assert backend.document("absent") is None


def test_transact_creates_a_missing_document_from_field_paths(backend: Backend, documents) -> None:
    writes = {"avatar": {"status": "finalizing", "updatedAt": SERVER_TIME}, "meta.kind": "avatar", "meta.n": 1}

    documents.transact("users/u-1", lambda document: Decision(writes=writes if document is None else None))

    created = backend.firestore_client.document("users/u-1").get().to_dict()
    assert created["meta"] == {"kind": "avatar", "n": 1}
    assert created["avatar"]["status"] == "finalizing" and created["avatar"]["updatedAt"].year >= 2024


def test_a_storage_outage_becomes_a_transient_error_within_the_retry_bound(
    backend: Backend, storage_proxy, monkeypatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", storage_proxy.url)
    objects = storage_gateway.connect(timeout_s=2, retry_s=1)
    storage_proxy.failing.set()
    started = time.monotonic()

    with pytest.raises(TransientError):
        objects.download(BUCKET, "raw-uploads/u/c/a.jpg", 1)

    assert time.monotonic() - started < 10
    assert storage_proxy.refused >= 2


def test_an_unreachable_firestore_becomes_a_transient_error_within_the_bound(monkeypatch) -> None:
    from image_pipeline.devtools.emulators import free_port

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "nowhere")
    documents = firestore_gateway.connect(timeout_s=1, retry_s=1)
    started = time.monotonic()

    with pytest.raises(TransientError):
        documents.transact("characters/c", lambda document: Decision(Outcome.DUPLICATE))

    assert time.monotonic() - started < 10


def test_write_sets_every_header_and_replaces_only_the_generation_named(backend: Backend, objects) -> None:
    metadata = ObjectMetadata(
        content_type="image/webp",
        content_disposition="inline; filename*=utf-8''a_200x200.webp",
        content_language="fr",
        cache_control="max-age=60",
        custom={"owner": "u1", "resizedImage": "true"},
    )
    assert objects.write(BUCKET, "out/a.webp", b"one", metadata, replacing=0)
    first = objects.stat(BUCKET, "out/a.webp")
    assert first is not None and first.custom == {"owner": "u1", "resizedImage": "true"}

    assert objects.write(BUCKET, "out/a.webp", b"two", metadata, replacing=0) is None
    third = objects.write(BUCKET, "out/a.webp", b"three", ObjectMetadata(content_type="image/png"), first.generation)
    assert third == backend.bucket.get_blob("out/a.webp").generation

    blob = backend.bucket.get_blob("out/a.webp")
    assert (blob.download_as_bytes(), blob.content_type, blob.metadata, blob.cache_control) == (
        b"three",
        "image/png",
        None,
        None,
    )
    assert objects.stat(BUCKET, "out/missing.webp") is None


def test_write_keeps_the_headers_it_was_given(backend: Backend, objects) -> None:
    metadata = ObjectMetadata(
        content_type="image/jpeg",
        content_disposition='attachment; filename="a.jpg"',
        content_language="de",
        cache_control="public, max-age=86400",
    )
    objects.write(BUCKET, "out/h.jpg", b"x", metadata, replacing=0)

    blob = backend.bucket.get_blob("out/h.jpg")
    assert (blob.content_type, blob.content_disposition, blob.content_language, blob.cache_control) == (
        "image/jpeg",
        'attachment; filename="a.jpg"',
        "de",
        "public, max-age=86400",
    )


def test_add_custom_merges_and_tolerates_the_object_being_gone(backend: Backend, objects) -> None:
    # fake-gcs-server ignores ifGenerationMatch on patch, as on delete: sparing a newer generation is Cloud Storage's.
    objects.write(BUCKET, "out/c.webp", b"x", ObjectMetadata("image/webp", custom={"a": "1"}), replacing=0)
    stored = objects.stat(BUCKET, "out/c.webp")
    assert stored is not None

    objects.add_custom(BUCKET, "out/c.webp", stored.generation, {"b": "2"})
    objects.add_custom(BUCKET, "out/gone.webp", 1, {"d": "4"})

    after = objects.stat(BUCKET, "out/c.webp")
    assert after is not None and after.custom == {"a": "1", "b": "2"}


def test_make_public_grants_all_users_read(backend: Backend, objects) -> None:
    objects.write(BUCKET, "out/p.webp", b"x", ObjectMetadata("image/webp"), replacing=0)

    assert objects.make_public(BUCKET, "out/p.webp")
    blob = backend.bucket.blob("out/p.webp")
    blob.acl.reload()
    assert "READER" in blob.acl.all().get_roles()
