"""Acceptance for custom output names: a function whose route names its outputs `{stem}_{box}.{ext}` (no
{generation}), fed Eventarc-style deliveries on fake-gcs-server and the Firestore emulator.

A second upload of the same file overwrites the outputs in place: same names, same download tokens (the URLs an app
saved keep working), the new bytes behind them. A redelivery, or a retry of a generation whose outputs were written,
rewrites nothing; a late event of the older generation changes nothing.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from image_pipeline.devtools import emulators
from tests import conftest
from tests.backend import Backend, photo, token_of

ROUTES = """
[[route]]
name = "pictures"
match = "users/{uid}/pictures/{file}"
document = "users/{uid}/pictures/{stem}"
field = "image"
missing = "create"
owner = "{uid}"
output = "users/{uid}/pictures/thumbs/"
names = "{stem}_{box}.{ext}"
formats = ["webp", "jpeg"]

[route.variants]
small = { box = "200x200" }
large = { box = "680x680" }
"""
SOURCE = "users/u1/pictures/beach.jpg"
DOCUMENT = "users/u1/pictures/beach"
OUTPUTS = {
    "users/u1/pictures/thumbs/beach_200x200.webp",
    "users/u1/pictures/thumbs/beach_200x200.jpg",
    "users/u1/pictures/thumbs/beach_680x680.webp",
    "users/u1/pictures/thumbs/beach_680x680.jpg",
}


@pytest.fixture(scope="module")
def names_function_server(
    stack: emulators.LocalStack, storage_proxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[emulators.Service]:
    """A function configured by a routes file whose route has names without {generation}."""
    routes = tmp_path_factory.mktemp("names-routes") / "routes.toml"
    routes.write_text(ROUTES)
    server = emulators.start_function({**conftest._function_env(stack, storage_proxy), "ROUTES_FILE": str(routes)})
    yield server
    server.stop()


@pytest.fixture
def backend(stack: emulators.LocalStack, names_function_server: emulators.Service, storage_proxy) -> Backend:
    return conftest._clean_backend(stack, names_function_server, storage_proxy)


def manifest(backend: Backend) -> dict[str, Any]:
    return backend.firestore_client.document(DOCUMENT).get().to_dict()["image"]


def outputs(backend: Backend) -> dict[str, tuple[int, str, str]]:
    """Every output's object generation (a rewrite changes it), download token and sourceGeneration marker."""
    return {
        name: (blob.generation, token_of(blob), blob.metadata["sourceGeneration"])
        for name, blob in backend.objects("users/u1/pictures/thumbs/").items()
    }


def served_sizes(backend: Backend, record: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """The size of the image each of the manifest's URLs serves, by `variant/format`."""
    sizes = {}
    for name, variant in record["variants"].items():
        for output_format, entry in variant["formats"].items():
            image = Image.open(io.BytesIO(backend.download_url(entry["url"]).content))
            sizes[f"{name}/{output_format}"] = image.size
    return sizes


def urls(record: dict[str, Any]) -> dict[str, str]:
    return {
        f"{name}/{output_format}": entry["url"]
        for name, variant in record["variants"].items()
        for output_format, entry in variant["formats"].items()
    }


def test_a_second_upload_overwrites_the_outputs_and_the_saved_urls_serve_its_bytes(backend: Backend) -> None:
    first = backend.upload(SOURCE, photo(1600, 1200))
    assert backend.deliver(first) == 200
    before, first_record = outputs(backend), manifest(backend)
    assert set(before) == OUTPUTS
    assert {marker for _, _, marker in before.values()} == {first["generation"]}
    assert served_sizes(backend, first_record) == {
        "small/webp": (200, 150), "small/jpeg": (200, 150), "large/webp": (680, 510), "large/jpeg": (680, 510)
    }  # fmt: skip
    blob = backend.bucket.get_blob("users/u1/pictures/thumbs/beach_200x200.webp")
    assert (blob.cache_control, blob.content_type) == ("public, max-age=3600", "image/webp")

    second = backend.upload(SOURCE, photo(1200, 1600))  # portrait now: every output changes shape
    assert backend.deliver(second) == 200

    after, second_record = outputs(backend), manifest(backend)
    assert set(after) == OUTPUTS
    for name, (generation, token, marker) in after.items():
        assert generation != before[name][0], name  # rewritten
        assert (token, marker) == (before[name][1], second["generation"])  # the same URL, the new upload's bytes
    assert second_record["status"] == "complete"
    assert second_record["source"]["generation"] == second["generation"]
    assert urls(second_record) == urls(first_record)
    assert served_sizes(backend, second_record) == {
        "small/webp": (150, 200), "small/jpeg": (150, 200), "large/webp": (510, 680), "large/jpeg": (510, 680)
    }  # fmt: skip


def test_redeliveries_and_retries_rewrite_nothing_and_a_late_older_event_changes_nothing(backend: Backend) -> None:
    older = backend.upload(SOURCE, photo(1600, 1200))
    newer = backend.upload(SOURCE, photo(1200, 1600))
    assert backend.deliver(newer, event_id="event-newer") == 200
    written, record = outputs(backend), manifest(backend)

    assert backend.deliver(newer, event_id="event-newer") == 200  # Eventarc's redelivery: settled, a duplicate
    assert backend.deliver(older, event_id="event-older") == 200  # the older generation, late: superseded
    assert (outputs(backend), manifest(backend)) == (written, record)
    assert [line["outcome"] for line in backend.summary_lines("event-older")] == ["superseded"]

    # An attempt that wrote the outputs but not the result (the instance died): the retry finds them and keeps them.
    backend.firestore_client.document(DOCUMENT).update({"image.status": "finalizing"})
    assert backend.deliver(newer, event_id="event-retry") == 200
    assert outputs(backend) == written
    assert manifest(backend)["status"] == "complete" and urls(manifest(backend)) == urls(record)
