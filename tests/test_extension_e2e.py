"""Extension routes end to end: the function served by functions-framework on fake-gcs-server and the Firestore
emulator, its events captured through CLOUD_EVENTARC_EMULATOR_HOST by a local Publishing API stand-in.

Two Resize Images instances and one route of ours share the routes file, as an app moving over would have them.
"""

from __future__ import annotations

import io
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from image_pipeline.devtools import emulators
from image_pipeline.ports import SOURCE_GENERATION_METADATA_KEY, TOKEN_METADATA_KEY
from tests.backend import Backend, photo, token_of
from tests.eventarc_stub import EventarcStub

ROUTES = textwrap.dedent(
    """
    [[route]]
    name = "storage-resize-images"
    extension = "storage-resize-images"
    IMG_SIZES = "200x200,640x480"
    IMAGE_TYPE = "webp,false"
    RESIZED_IMAGES_PATH = "thumbs"
    FAILED_IMAGES_PATH = "failed"
    INCLUDE_PATH_LIST = "/images"
    CACHE_CONTROL_HEADER = "max-age=86400"
    EVENTARC_CHANNEL = "projects/demo-image-pipeline/locations/us-central1/channels/firebase"

    [[route]]
    name = "avatars-small"
    extension = "storage-resize-images"
    IMG_SIZES = "64x64"
    IMAGE_TYPE = "png"
    RESIZED_IMAGES_PATH = "small"
    INCLUDE_PATH_LIST = "/images/avatars"
    SHARP_OPTIONS = '{"fit": "cover", "position": "top"}'
    DELETE_ORIGINAL_FILE = "on_success"

    [[route]]
    name = "animations"
    extension = "storage-resize-images"
    IMG_SIZES = "100x100"
    IMAGE_TYPE = "false,webp,png"
    RESIZED_IMAGES_PATH = "../animated-thumbs"
    INCLUDE_PATH_LIST = "/animations"
    DELETE_ORIGINAL_FILE = "true"
    """
)


@pytest.fixture(scope="module")
def events_stub() -> Iterator[EventarcStub]:
    stub = EventarcStub()
    yield stub
    stub.close()


@pytest.fixture(scope="module")
def extension_server(
    stack: emulators.LocalStack, storage_proxy, events_stub: EventarcStub, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[emulators.Service]:
    routes = tmp_path_factory.mktemp("routes") / "routes.toml"
    routes.write_text(ROUTES)
    env = {
        **stack.client_env(),
        "STORAGE_EMULATOR_HOST": storage_proxy.url,
        "CLIENT_RETRY_S": "1",
        "CLIENT_TIMEOUT_S": "5",
        "ROUTES_FILE": str(routes),
        "GOOGLE_CLOUD_PROJECT": stack.project,
        "CLOUD_EVENTARC_EMULATOR_HOST": events_stub.url,
    }
    server = emulators.start_function(env)
    yield server
    server.stop()


@pytest.fixture
def app(stack: emulators.LocalStack, extension_server: emulators.Service, storage_proxy, events_stub) -> Backend:
    from tests.conftest import _clean_backend

    events_stub.forget()
    return _clean_backend(stack, extension_server, storage_proxy)


def types_of(stub: EventarcStub) -> list[str]:
    return [event["type"].rsplit(".", 1)[-1] for event in stub.events]


def test_an_upload_gets_the_extensions_outputs_metadata_and_events(app: Backend, events_stub: EventarcStub) -> None:
    resource = app.upload("images/cat.jpg", photo(1600, 1200), metadata={TOKEN_METADATA_KEY: "T1", "owner": "u1"})

    assert app.deliver(resource, "finalize-1") == 200

    outputs = app.objects("images/thumbs/")
    assert sorted(outputs) == [
        "images/thumbs/cat_200x200.jpg",
        "images/thumbs/cat_200x200.webp",
        "images/thumbs/cat_640x480.jpg",
        "images/thumbs/cat_640x480.webp",
    ]
    large = outputs["images/thumbs/cat_640x480.webp"]
    image = Image.open(io.BytesIO(large.download_as_bytes()))
    assert (image.format, image.size) == ("WEBP", (640, 480))
    assert (large.content_type, large.cache_control) == ("image/webp", "max-age=86400")
    assert large.metadata["resizedImage"] == "true" and large.metadata["owner"] == "u1"
    assert token_of(large) != "T1" and large.metadata[SOURCE_GENERATION_METADATA_KEY] == resource["generation"]
    assert types_of(events_stub) == ["onStart", "onStartResize", "onSuccess", "onCompletion"]
    success = events_stub.events[2]
    assert success["source"] == "projects/demo-image-pipeline/instances/storage-resize-images"
    assert [output["value"]["outputFilePath"] for output in json.loads(success["textData"])["outputs"]] == [
        "images/thumbs/cat_200x200.webp",
        "images/thumbs/cat_640x480.webp",
        "images/thumbs/cat_200x200.jpg",
        "images/thumbs/cat_640x480.jpg",
    ]


def test_a_redelivery_changes_nothing_and_outputs_are_not_retaken(app: Backend, events_stub: EventarcStub) -> None:
    resource = app.upload("images/cat.jpg", photo(800, 600), metadata={TOKEN_METADATA_KEY: "T1"})
    app.deliver(resource, "finalize-2")
    before = {name: (blob.generation, token_of(blob)) for name, blob in app.objects("images/thumbs/").items()}
    published = len(events_stub.events)

    assert app.deliver(resource, "finalize-2") == 200
    for name, blob in app.objects("images/thumbs/").items():
        assert app.deliver(blob._properties, f"output-{name}") == 200

    assert {name: (blob.generation, token_of(blob)) for name, blob in app.objects("images/thumbs/").items()} == before
    # The outputs' own finalize events are announced (onStart, onCompletion) and skipped, as by the extension.
    assert types_of(events_stub)[published:] == ["onStart", "onCompletion"] * len(before)


def test_two_instances_each_take_what_their_filters_pass(app: Backend) -> None:
    resource = app.upload("images/avatars/me.png", photo(300, 600, "PNG"), content_type="image/png")

    assert app.deliver(resource, "finalize-3") == 200

    small = app.objects("images/avatars/small/")["images/avatars/small/me_64x64.png"]
    image = Image.open(io.BytesIO(small.download_as_bytes()))
    assert image.size == (64, 64)
    # The first instance excluded nothing under /images: it made its own outputs too, and kept the upload...
    assert "images/avatars/thumbs/me_200x200.webp" in app.objects("images/avatars/thumbs/")
    # ...which the second deleted once every output of its own was written.
    assert app.objects("images/avatars/me.png") == {}


def test_an_unreadable_image_is_copied_to_the_failed_folder(app: Backend, events_stub: EventarcStub) -> None:
    resource = app.upload("images/broken.jpg", b"not a jpeg at all")

    assert app.deliver(resource, "finalize-4") == 200

    copy = app.objects("images/failed/")["images/failed/broken.jpg"]
    assert (copy.download_as_bytes(), copy.metadata) == (b"not a jpeg at all", {"resizeFailed": "true"})
    assert app.objects("images/thumbs/") == {}
    outputs = json.loads(events_stub.events[2]["textData"])["outputs"]
    assert [output["value"]["success"] for output in outputs] == [False] * 4
    assert app.deliver(copy._properties, "finalize-copy") == 200
    assert "images/failed/failed/broken.jpg" not in app.objects("images/failed/")


def test_process_writes_the_extension_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from image_pipeline.__main__ import main

    routes = tmp_path / "routes.toml"
    routes.write_text("\n".join(line for line in ROUTES.splitlines() if not line.startswith("EVENTARC_CHANNEL")))
    monkeypatch.setenv("ROUTES_FILE", str(routes))
    source = tmp_path / "cat.jpg"
    source.write_bytes(photo(800, 600))

    assert main(["process", str(source), "--out", str(tmp_path / "out"), "--route", "storage-resize-images"]) == 0

    assert sorted(path.name for path in (tmp_path / "out" / "thumbs").iterdir()) == [
        "cat_200x200.jpg",
        "cat_200x200.webp",
        "cat_640x480.jpg",
        "cat_640x480.webp",
    ]


def test_an_animation_stays_animated_in_gif_and_webp_above_its_folder(app: Backend) -> None:
    resource = app.upload("animations/spin.gif", animated_gif(), content_type="image/gif")

    assert app.deliver(resource, "finalize-5") == 200

    outputs = app.objects("animated-thumbs/")
    frames = {}
    for name, blob in outputs.items():
        image = Image.open(io.BytesIO(blob.download_as_bytes()))
        frames[name] = (image.format, getattr(image, "n_frames", 1), blob.content_type)
    assert frames == {
        "animated-thumbs/spin_100x100.gif": ("GIF", 4, "image/gif"),
        "animated-thumbs/spin_100x100.webp": ("WEBP", 4, "image/webp"),
        "animated-thumbs/spin_100x100.png": ("PNG", 1, "image/png"),
    }
    # DELETE_ORIGINAL_FILE=true: gone once its outcome is final.
    assert app.objects("animations/") == {}


@pytest.mark.parametrize(
    ("name", "content_type", "encoding"),
    [
        ("images/report.pdf", "application/pdf", None),
        ("images/cat.svg", "image/svg+xml", None),
        ("images/cat.jpg", "image/jpeg", "gzip"),
        ("elsewhere/cat.jpg", "image/jpeg", None),
    ],
)
def test_what_the_filters_skip_is_announced_and_left_alone(
    app: Backend, events_stub: EventarcStub, name: str, content_type: str, encoding: str | None
) -> None:
    resource = app.upload(name, photo(64, 64), content_type=content_type, content_encoding=encoding)

    assert app.deliver(resource, "finalize-skip") == 200

    assert sorted(app.objects("")) == [name]
    assert types_of(events_stub) == ["onStart", "onCompletion"]


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (160, 120), colour) for colour in ("red", "green", "blue", "white")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    return out.getvalue()


# --- backfill --route on the emulators: the listing carries fake-gcs-server's metadata -------------------------


@pytest.fixture
def backfill_env(
    app: Backend, stack: emulators.LocalStack, events_stub: EventarcStub, tmp_path: Path, monkeypatch
) -> Backend:
    """`backfill` in this process against fake-gcs-server, with ROUTES and the Eventarc stand-in."""
    from tests.backend import BUCKET

    routes = tmp_path / "routes.toml"
    routes.write_text(ROUTES)
    for variable in ("CLOUD_RUN_TASK_INDEX", "CLOUD_RUN_TASK_COUNT", "LOG_LEVEL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("BUCKET", BUCKET)
    monkeypatch.setenv("ROUTES_FILE", str(routes))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", stack.project)
    monkeypatch.setenv("CLOUD_EVENTARC_EMULATOR_HOST", events_stub.url)
    return app


def backfill(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object] | None, str]:
    """Run `backfill ARGS` in this process: its exit code, its JSON summary (None if it printed none) and stderr."""
    from image_pipeline.__main__ import main

    code = main(["backfill", *args])
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    return code, json.loads(lines[-1]) if lines else None, captured.err


def test_backfill_takes_only_uploads_without_all_outputs_and_force_redoes_the_others(
    backfill_env: Backend, events_stub: EventarcStub, capsys
) -> None:
    app = backfill_env
    app.upload("images/a.jpg", photo(800, 600))
    resource = app.upload("images/b.jpg", photo(800, 600), metadata={TOKEN_METADATA_KEY: "T1", "owner": "u1"})
    by_extension = [f"images/thumbs/a_{size}.{ext}" for ext in ("webp", "jpg") for size in ("200x200", "640x480")]
    for name in by_extension:
        app.upload(name, b"made by the extension", content_type="image/webp", metadata={"resizedImage": "true"})

    code, summary, _ = backfill(capsys, "--route", "storage-resize-images")

    assert code == 0 and summary is not None
    # Its outputs' resizedImage mark, read from the listing, keeps them from being taken as uploads.
    assert (summary["listed"], summary["skipped_done"], summary["complete"]) == (6, 1, 1)
    assert summary["skipped"] == {"not_a_source_upload": 4}
    outputs = app.objects("images/thumbs/")
    assert all(outputs[name].download_as_bytes() == b"made by the extension" for name in by_extension)
    made = outputs["images/thumbs/b_640x480.webp"]
    assert Image.open(io.BytesIO(made.download_as_bytes())).size == (640, 480)
    assert made.metadata["owner"] == "u1" and token_of(made) != "T1"
    assert made.metadata[SOURCE_GENERATION_METADATA_KEY] == resource["generation"]
    assert types_of(events_stub) == ["onStart", "onStartResize", "onSuccess", "onCompletion"]
    b_outputs = {name: blob.generation for name, blob in outputs.items() if "/b_" in name}

    code, summary, _ = backfill(capsys, "--route", "storage-resize-images", "--force")

    assert code == 0 and summary is not None
    assert (summary["processed"], summary["outcomes"]) == (2, {"complete": 1, "duplicate": 1})
    outputs = app.objects("images/thumbs/")
    assert Image.open(io.BytesIO(outputs["images/thumbs/a_640x480.webp"].download_as_bytes())).format == "WEBP"
    assert {name: blob.generation for name, blob in outputs.items() if "/b_" in name} == b_outputs


def test_backfill_of_a_deleting_route_asks_for_yes_first(backfill_env: Backend, capsys) -> None:
    app = backfill_env
    for name in ("images/avatars/me.png", "images/avatars/you.png"):
        app.upload(name, photo(300, 600, "PNG"), content_type="image/png")

    code, summary, err = backfill(capsys, "--route", "avatars-small")

    assert (code, summary) == (2, None)
    assert "DELETE_ORIGINAL_FILE=on_success): this run would process 2 uploads" in err
    assert sorted(app.objects("images/")) == ["images/avatars/me.png", "images/avatars/you.png"]

    code, summary, _ = backfill(capsys, "--route", "avatars-small", "--yes")

    assert code == 0 and summary is not None and summary["complete"] == 2
    assert sorted(app.objects("images/")) == ["images/avatars/small/me_64x64.png", "images/avatars/small/you_64x64.png"]
