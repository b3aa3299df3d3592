"""Backfill of an extension route (`backfill --route NAME`) on the in-memory ports, and its command line.

The listing is the route's INCLUDE_PATH_LIST folders; an upload is done when all its outputs exist (whoever made
them); the rest go through the function's own handling (handle_finalize); a route that deletes originals asks first.
"""

from __future__ import annotations

import json
import textwrap
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from image_pipeline.__main__ import main
from image_pipeline.batch.kinds import ExtensionUploads
from image_pipeline.batch.plan import Plan, listing_prefixes
from image_pipeline.batch.run import Action, Backfill
from image_pipeline.extension import filters
from image_pipeline.extension.route import ExtensionRoute
from image_pipeline.options import ImagingOptions
from image_pipeline.policy import Policy
from image_pipeline.ports import RESIZED_IMAGE_MARK, SOURCE_GENERATION_METADATA_KEY, TOKEN_METADATA_KEY, ObjectMetadata
from image_pipeline.routes_file import parse_routes
from image_pipeline.usecase import Dependencies
from tests.fakes import MemoryDocuments, MemoryObjects, MemoryPublisher, fake_make_variants

BUCKET = "app.appspot.com"
NOW = datetime(2030, 1, 1, tzinfo=UTC)
CHANNEL = "projects/p/locations/us-central1/channels/firebase"
ORIGINAL = ObjectMetadata(
    content_type="image/jpeg",
    cache_control="public, max-age=60",
    content_language="fr",
    custom={TOKEN_METADATA_KEY: "T1", "owner": "u1"},
)
# One route of ours and two extension routes, the second deleting what it handles.
ROUTES = textwrap.dedent(
    f"""
    [[route]]
    name = "showcase"
    match = "raw-uploads/{{uid}}/originals/{{file}}"
    document = "users/{{uid}}"
    field = "showcase"
    missing = "create"
    output = "showcase-images/{{uid}}/"
    variants = {{ thumb = 256 }}

    [[route]]
    name = "thumbs"
    extension = "storage-resize-images"
    IMG_SIZES = "200x200,400x400"
    IMAGE_TYPE = "webp"
    RESIZED_IMAGES_PATH = "thumbs"
    INCLUDE_PATH_LIST = "/images,/users/*/photos"
    EVENTARC_CHANNEL = "{CHANNEL}"

    [[route]]
    name = "inbox"
    extension = "storage-resize-images"
    INCLUDE_PATH_LIST = "/inbox"
    RESIZED_IMAGES_PATH = "small"
    DELETE_ORIGINAL_FILE = "DELETES"
    """
)
THUMBS = ("images/thumbs/a_200x200.webp", "images/thumbs/a_400x400.webp")


def extension_routes(deletes: str = "true") -> dict[str, ExtensionRoute]:
    table = parse_routes(tomllib.loads(ROUTES.replace("DELETES", deletes)), ImagingOptions(), project="p")
    return {route.name: route for route in table.extensions}


class World:
    """The fakes: a bucket with uploads inside and outside the route's folders, and the events published."""

    def __init__(self) -> None:
        self.objects = MemoryObjects()
        self.publisher = MemoryPublisher()
        self.documents = MemoryDocuments()
        for name in ("images/a.jpg", "images/b.jpg", "users/u1/photos/c.jpg", "elsewhere/d.jpg", "inbox/e.jpg"):
            self.objects.upload(BUCKET, name, b"jpeg " + name.encode(), ORIGINAL)
        self.objects.upload(BUCKET, "images/notes.txt", b"text", ObjectMetadata(content_type="text/plain"))

    def deps(self) -> Dependencies:
        return Dependencies(self.objects, self.documents, fake_make_variants, lambda: NOW, events=self.publisher)

    def made_by_the_extension(self, *names: str) -> None:
        """Outputs the extension wrote before the move: marked, without this function's generation mark."""
        metadata = ObjectMetadata(content_type="image/webp", custom={RESIZED_IMAGE_MARK: "true"})
        for name in names:
            self.objects.write(BUCKET, name, b"made by the extension", metadata, replacing=0)

    def run(self, route: str = "thumbs", **plan: Any) -> dict[str, Any]:
        extension = extension_routes()[route]
        plan_ = Plan(BUCKET, listing_prefixes(extension.listing_prefixes), (route,), backoff_s=0.001, **plan)
        return Backfill(plan_, ExtensionUploads(extension, Policy()), self.deps()).run()

    def data(self, name: str) -> bytes:
        return self.objects.objects[(BUCKET, name)].data

    def custom(self, name: str) -> dict[str, str]:
        return dict(self.objects.objects[(BUCKET, name)].metadata.custom)


@pytest.fixture
def world() -> World:
    return World()


@pytest.mark.parametrize(
    ("entry", "prefix"),
    [
        ("/images", "images/"),
        (" /images ", "images/"),
        ("/users/*/photos", "users/"),
        ("/users/u*/photos", "users/"),
        ("/img*", ""),
        ("*", ""),
        ("", ""),
    ],
)
def test_an_include_entry_lists_under_its_folders_up_to_the_first_wildcard(entry: str, prefix: str) -> None:
    assert filters.literal_folders(entry) == prefix
    names = ["images/a.jpg", "images/x/a.jpg", "images2/a.jpg", "users/u1/photos/a.jpg", "users/u1/a/photos/b/a.jpg",
             "img/a.jpg", "imgs/a.jpg", "a.jpg", "other/a.jpg"]  # fmt: skip
    matched = [name for name in names if filters.path_list_matches([entry], filters.object_directory(name))]
    assert matched and all(name.startswith(prefix) for name in matched)


@pytest.mark.parametrize(
    ("include", "prefixes"),
    [
        ("", ("",)),
        ("/images", ("images/",)),
        ("/images,/images/avatars,/users/*/photos", ("images/", "users/")),
        ("/images,/img*", ("",)),
    ],
)
def test_a_route_lists_its_include_folders_once_else_the_whole_bucket(include: str, prefixes: tuple[str, ...]) -> None:
    table = {"name": "r", "extension": "storage-resize-images", "INCLUDE_PATH_LIST": include}
    (route,) = parse_routes({"route": [table]}, ImagingOptions()).extensions

    assert listing_prefixes(route.listing_prefixes) == prefixes


def test_pending_uploads_are_handled_as_the_function_does_and_done_ones_skipped(world: World) -> None:
    world.made_by_the_extension(*THUMBS)

    first = world.run()
    second = world.run()

    # Listed: a, b, c, notes.txt and a's two outputs (marked, so not sources); d and e are outside the folders.
    assert (first["listed"], first["processed"], first["complete"], first["skipped_done"]) == (6, 2, 2, 1)
    assert first["skipped"] == {"not_a_source_upload": 3}
    assert [world.data(name) for name in THUMBS] == [b"made by the extension"] * 2
    made = world.objects.objects[(BUCKET, "images/thumbs/b_400x400.webp")]
    assert (made.metadata.content_language, made.metadata.cache_control) == ("fr", "public, max-age=60")
    custom = world.custom("images/thumbs/b_400x400.webp")
    assert (custom["owner"], custom[RESIZED_IMAGE_MARK]) == ("u1", "true")
    assert custom[TOKEN_METADATA_KEY] != "T1" and custom[SOURCE_GENERATION_METADATA_KEY]
    assert "users/u1/photos/thumbs/c_200x200.webp" in world.objects.names("users/")
    assert world.publisher.types() == ["onStart", "onStartResize", "onSuccess", "onCompletion"] * 2
    assert (second["processed"], second["skipped_done"]) == (0, 3)


@pytest.mark.parametrize(("outputs", "done"), [(THUMBS, True), (THUMBS[:1], False), ((), False)])
def test_an_upload_is_done_only_when_every_output_exists(world: World, outputs: tuple[str, ...], done: bool) -> None:
    world.made_by_the_extension(*outputs)

    summary = world.run()

    assert summary["skipped_done"] == int(done)
    assert all(SOURCE_GENERATION_METADATA_KEY in world.custom(name) for name in THUMBS) is not done


def test_force_rewrites_outputs_made_elsewhere_and_keeps_its_own(world: World) -> None:
    world.made_by_the_extension(*THUMBS)
    world.run()
    own = {name: stored.generation for name, stored in world.objects.objects.items() if "/b_" in name[1]}
    published = len(world.publisher.published)

    forced = world.run(force=True)

    assert (forced["processed"], forced["skipped_done"], forced["outcomes"]) == (3, 0, {"complete": 1, "duplicate": 2})
    for name in THUMBS:
        assert world.data(name) != b"made by the extension" and SOURCE_GENERATION_METADATA_KEY in world.custom(name)
    assert {name: stored.generation for name, stored in world.objects.objects.items() if "/b_" in name[1]} == own
    assert world.publisher.types()[published:] == ["onStart", "onStartResize", "onSuccess", "onCompletion"]


def test_a_dry_run_writes_and_publishes_nothing(world: World) -> None:
    before = dict(world.objects.objects)

    summary = world.run(dry_run=True)

    assert (summary["would_process"], summary["processed"]) == (3, 0)
    assert (world.objects.objects, world.objects.downloads, world.publisher.published) == (before, 0, [])


class Recording(dict):
    """An object resource that records which of its fields are read."""

    def __init__(self, resource: dict[str, Any]) -> None:
        super().__init__(resource)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)


def test_the_listing_asks_storage_for_every_field_an_extension_route_reads(world: World) -> None:
    """fake-gcs-server ignores `fields`, so only this shows that a real listing carries what the route needs."""
    from image_pipeline.gateway.storage import LIST_FIELDS

    resource = Recording(next(world.objects.list_objects(BUCKET, "images/b.jpg")))
    route = extension_routes()["thumbs"]

    job = ExtensionUploads(route, Policy()).take(resource, "e", NOW.isoformat(), world.deps())
    assert not isinstance(job, Action)
    job.process(force=False)

    listed = set(LIST_FIELDS.partition("items(")[2].partition(")")[0].split(","))
    assert {"metadata", "cacheControl", "contentLanguage"} <= resource.read
    assert resource.read <= listed


# --- The command line, on the fakes ---------------------------------------------------------------------------


@pytest.fixture
def command(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """`backfill` runs on the world's fakes, with ROUTES as the routes file (its `inbox` route deleting: true)."""
    for variable in ("CLOUD_RUN_TASK_INDEX", "CLOUD_RUN_TASK_COUNT", "LOG_LEVEL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("BUCKET", BUCKET)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")
    monkeypatch.setattr("image_pipeline.bootstrap.connect", lambda settings: world.deps())
    use_routes(tmp_path, monkeypatch, deletes="true")
    return world


def use_routes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deletes: str) -> None:
    routes = tmp_path / "routes.toml"
    routes.write_text(ROUTES.replace("DELETES", deletes))
    monkeypatch.setenv("ROUTES_FILE", str(routes))


def backfill(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    """Run the command in this process: its exit code, stdout lines and stderr."""
    code = main(["backfill", *args])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


@pytest.mark.parametrize(
    ("deletes", "fate"),
    [("true", "delete them"), ("on_success", "delete each one whose outputs are all written")],
)
def test_a_deleting_route_says_what_it_would_delete_and_goes_ahead_only_with_yes(
    command: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, deletes: str, fate: str
) -> None:
    use_routes(tmp_path, monkeypatch, deletes)
    command.objects.upload(BUCKET, "inbox/f.jpg", b"jpeg f", ORIGINAL)

    code, out, err = backfill(capsys, "--route", "inbox")

    assert (code, out) == (2, [])
    assert (
        f"route 'inbox' deletes originals (DELETE_ORIGINAL_FILE={deletes}): this run would process 2 uploads and "
        f"{fate}; run again with --yes to go ahead"
    ) in err
    assert (command.objects.writes, command.objects.downloads) == (0, 0)
    assert command.objects.names("inbox/") == ["inbox/e.jpg", "inbox/f.jpg"]

    code, out, _ = backfill(capsys, "--route", "inbox", "--yes")

    assert (code, json.loads(out[-1])["complete"]) == (0, 2)
    assert command.objects.names("inbox/") == ["inbox/small/e_200x200.jpg", "inbox/small/f_200x200.jpg"]


def test_the_count_before_deleting_follows_the_runs_limit(command: World, capsys) -> None:
    command.objects.upload(BUCKET, "inbox/f.jpg", b"jpeg f", ORIGINAL)

    code, _, err = backfill(capsys, "--route", "inbox", "--limit", "1")

    assert code == 2 and "would process 1 uploads" in err


def test_a_dry_run_of_a_deleting_route_needs_no_yes(command: World, capsys) -> None:
    code, out, _ = backfill(capsys, "--route", "inbox", "--dry-run")

    assert code == 0
    assert [json.loads(line).get("would_process") for line in out[:-1]] == ["inbox/e.jpg"]
    assert command.objects.names("inbox/") == ["inbox/e.jpg"]


def test_a_plain_backfill_leaves_extension_routes_alone(command: World, capsys) -> None:
    command.objects.upload(BUCKET, "raw-uploads/u1/originals/x.jpg", b"jpeg x", ORIGINAL)

    code, out, _ = backfill(capsys)

    assert (code, json.loads(out[-1])["complete"]) == (0, 1)
    assert command.objects.names("showcase-images/") != []
    assert command.objects.names("images/thumbs/") == [] and "inbox/e.jpg" in command.objects.names("inbox/")
    assert command.publisher.published == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        pytest.param(["--route", "thumbs", "--prune"], "extension route", id="prune-an-extension-route"),
        pytest.param(["--yes"], "--yes only confirms", id="yes-without-an-extension-route"),
        pytest.param(["--route", "showcase", "--yes"], "--yes only confirms", id="yes-on-our-route"),
        pytest.param(["--route", "thumbs", "--prefix", "elsewhere/"], "not inside", id="prefix-outside-the-folders"),
        pytest.param(["--route", "nope"], "showcase, thumbs, inbox", id="unknown-route"),
    ],
)
def test_usage_errors_exit_2_and_write_nothing(command: World, capsys, args: list[str], says: str) -> None:
    code, out, err = backfill(capsys, *args)

    assert (code, out) == (2, [])
    assert says in err
    assert command.objects.writes == 0
