"""Which events are uploads to process, and the names and URLs of outputs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from image_pipeline.policy import UrlMode, UrlRules
from image_pipeline.settings import Settings
from image_pipeline.uploads import Skip, Upload, classify

SETTINGS = Settings()


def resource(name: str, **overrides: object) -> dict[str, object]:
    """An object resource as Eventarc delivers it."""
    return {"bucket": "b", "name": name, "generation": "1700000000000001", "size": "1234", "contentType": "image/png",
            **overrides}  # fmt: skip


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(resource("showcase-images/u/c/x-1-large.webp"), id="our-own-output"),
        pytest.param(resource("avatars/u/c/x.jpg"), id="other-prefix"),
        pytest.param(resource("raw-uploads/u/c/../x.jpg"), id="dot-dot-segment"),
        pytest.param(resource("raw-uploads/u/../x.jpg"), id="dot-dot-as-character"),
        pytest.param(resource("raw-uploads/u/c/d/x.jpg"), id="extra-segment"),
        pytest.param(resource("raw-uploads/u/c"), id="missing-segment"),
        pytest.param(resource("raw-uploads/u//x.jpg"), id="empty-segment"),
        pytest.param(resource("raw-uploads/u/c/"), id="folder-placeholder"),
        pytest.param(resource("raw-uploads/u/c/.."), id="dot-dot-file"),
        pytest.param(resource("raw-uploads/u$/c/x.jpg"), id="bad-uid-characters"),
        pytest.param(resource(f"raw-uploads/{'u' * 129}/c/x.jpg"), id="uid-too-long"),
        pytest.param(resource("raw-uploads/u/c/x\n.jpg"), id="control-character"),
        pytest.param(resource("raw-uploads/u/c/x.jpg", size="0"), id="zero-bytes"),
        pytest.param(resource("raw-uploads/u/c/x.jpg", generation="abc"), id="bad-generation"),
        pytest.param(resource("raw-uploads/u/c/x.jpg", generation=None), id="no-generation"),
        pytest.param({"name": "raw-uploads/u/c/x.jpg"}, id="no-bucket"),
        pytest.param(None, id="no-data"),
    ],
)
def test_everything_but_a_well_formed_source_upload_is_skipped(data: object) -> None:
    assert isinstance(classify("e", None, data, SETTINGS.routes), Skip)


def test_a_source_upload_is_parsed_from_the_event() -> None:
    data = resource("raw-uploads/user_1/Char-9/My Photo.JPG", contentEncoding="gzip")

    upload = classify("event-7", "2025-01-01T00:00:05.250Z", data, SETTINGS.routes)

    assert upload == Upload(
        event_id="event-7",
        event_time=datetime(2025, 1, 1, 0, 0, 5, 250000, tzinfo=UTC),
        bucket="b",
        name="raw-uploads/user_1/Char-9/My Photo.JPG",
        generation=1700000000000001,
        size=1234,
        content_type="image/png",
        content_encoding="gzip",
        route=SETTINGS.routes[0],
        values={"uid": "user_1", "characterId": "Char-9", "file": "My Photo.JPG", "stem": "My_Photo"},
    )
    assert (upload.document, upload.file_name) == ("characters/Char-9", "My Photo.JPG")


@pytest.mark.parametrize(
    ("event_time", "data", "expected"),
    [
        pytest.param("2025-01-01T00:00:00Z", {}, datetime(2025, 1, 1, tzinfo=UTC), id="ce-time"),
        pytest.param(
            None, {"timeCreated": "2024-05-05T05:05:05Z"}, datetime(2024, 5, 5, 5, 5, 5, tzinfo=UTC), id="time-created"
        ),
        pytest.param("garbage", {"updated": "2024-01-01T00:00:00Z"}, datetime(2024, 1, 1, tzinfo=UTC), id="updated"),
    ],
)
def test_event_time_comes_from_the_event_then_the_object(event_time, data, expected) -> None:
    upload = classify("e", event_time, {**resource("raw-uploads/u/c/x.png"), **data}, SETTINGS.routes)

    assert upload.event_time == expected


@pytest.mark.parametrize("future", ["2999-01-01T00:00:00Z", "9999-12-31T23:59:59Z"])
def test_an_event_time_in_the_future_counts_as_now(future) -> None:
    before = datetime.now(UTC)
    upload = classify("e", future, resource("raw-uploads/u/c/x.png"), SETTINGS.routes)

    assert before <= upload.event_time <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [
        ("photo.jpg", "showcase-images/u/c/photo-1700000000000001-large.webp"),
        ("My Photo (1).final.JPG", "showcase-images/u/c/My_Photo_1_final-1700000000000001-large.webp"),
        (".hidden", "showcase-images/u/c/hidden-1700000000000001-large.webp"),
        ("ünïcode.png", "showcase-images/u/c/n_code-1700000000000001-large.webp"),
        ("写真.jpg", "showcase-images/u/c/image-1700000000000001-large.webp"),
        ("x" * 300 + ".png", f"showcase-images/u/c/{'x' * 64}-1700000000000001-large.webp"),
    ],
)
def test_output_names_are_deterministic_safe_and_carry_generation_and_variant(file_name: str, expected: str) -> None:
    upload = classify("e", None, resource(f"raw-uploads/u/c/{file_name}"), SETTINGS.routes)

    assert isinstance(upload, Upload)
    assert upload.output_path("large", "webp") == expected


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (
            UrlMode.TOKEN,
            "https://firebasestorage.googleapis.com/v0/b/app.appspot.com/o/showcase-images%2Fu%2Fc%2Fa%20b.webp?alt=media&token=t-1",
        ),
        (UrlMode.PUBLIC, "https://storage.googleapis.com/app.appspot.com/showcase-images/u/c/a%20b.webp"),
    ],
)
def test_urls_follow_the_configured_mode(mode: UrlMode, expected: str) -> None:
    assert UrlRules(mode).url("app.appspot.com", "showcase-images/u/c/a b.webp", "t-1") == expected


@pytest.mark.parametrize(
    ("environ", "download_base", "public_base"),
    [
        ({}, "https://firebasestorage.googleapis.com/v0", "https://storage.googleapis.com"),
        ({"STORAGE_EMULATOR_HOST": "127.0.0.1:9023"}, "http://127.0.0.1:9023/storage/v1", "http://127.0.0.1:9023"),
        (
            {"STORAGE_EMULATOR_HOST": "http://h:1", "DOWNLOAD_URL_BASE": "https://cdn.example/v0/"},
            "https://cdn.example/v0",
            "http://h:1",
        ),
    ],
)
def test_url_bases_follow_the_emulator_unless_set(environ, download_base: str, public_base: str) -> None:
    settings = Settings.from_env(environ)

    assert (settings.policy.urls.download_base, settings.policy.urls.public_base) == (download_base, public_base)
