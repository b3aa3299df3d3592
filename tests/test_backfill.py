"""Backfill: the function's use case over a listing, on in-memory ports and on the local emulators, and its CLI."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from image_pipeline.__main__ import main
from image_pipeline.batch.kinds import RouteUploads
from image_pipeline.batch.plan import Plan, Shard, shard_of
from image_pipeline.batch.run import Action, Backfill, Report, Tally
from image_pipeline.commands.progress import Progress, progress_status, progress_text
from image_pipeline.errors import TransientError
from image_pipeline.ports import Outcome
from image_pipeline.settings import Settings
from image_pipeline.usecase import Dependencies
from tests.fakes import NOT_AN_IMAGE, MemoryDocuments, MemoryObjects, fake_make_variants

BUCKET = "app.appspot.com"
NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
SETTINGS = Settings()
ROUTES = RouteUploads(SETTINGS.routes, SETTINGS.policy)
REPO = Path(__file__).resolve().parent.parent


def source(index: int) -> str:
    """The upload of character `index`, spread over three users."""
    return f"raw-uploads/user-{index % 3}/char-{index}/portrait.jpg"


class World:
    """In-memory bucket and documents with `count` owned characters, each with one upload."""

    def __init__(self, count: int = 8, non_images: tuple[int, ...] = (), objects: MemoryObjects | None = None) -> None:
        self.objects = objects or MemoryObjects()
        self.documents = MemoryDocuments()
        for index in range(count):
            self.documents.documents[f"characters/char-{index}"] = {"meta": {"userId": f"user-{index % 3}"}}
            self.objects.put(BUCKET, source(index), NOT_AN_IMAGE if index in non_images else b"jpeg %d" % index)
        self.names = [source(index) for index in range(count)]

    def deps(self) -> Dependencies:
        return Dependencies(self.objects, self.documents, fake_make_variants, lambda: NOW)

    def run(self, **plan: Any) -> dict[str, Any]:
        """One backfill run; returns its summary."""
        plan_ = Plan(BUCKET, ("raw-uploads/",), backoff_s=0.001, **plan)
        return Backfill(plan_, ROUTES, self.deps()).run()

    def status(self, index: int) -> str | None:
        return self.documents.documents[f"characters/char-{index}"].get("visuals", {}).get("showcaseProcessingStatus")


@pytest.mark.parametrize("concurrency", [1, 4])
def test_pending_objects_are_processed_and_a_second_run_does_nothing(concurrency: int) -> None:
    world = World(8)
    Backfill(Plan(BUCKET, (source(2),)), ROUTES, world.deps()).run()

    first = world.run(concurrency=concurrency)
    writes, downloads = world.documents.writes, world.objects.downloads
    second = world.run(concurrency=concurrency)

    assert (first["listed"], first["skipped_done"], first["processed"], first["complete"]) == (8, 1, 7, 7)
    assert [world.status(index) for index in range(8)] == ["complete"] * 8
    assert (second["listed"], second["skipped_done"], second["processed"]) == (8, 8, 0)
    assert (world.documents.writes, world.objects.downloads) == (writes, downloads)


def test_force_reprocesses_settled_generations() -> None:
    world = World(4)
    world.run()
    writes = world.documents.writes

    forced = world.run(force=True)

    assert (forced["skipped_done"], forced["processed"], forced["complete"]) == (0, 4, 4)
    assert world.documents.writes == writes + 2 * 4  # a claim and a settle each
    assert [world.status(index) for index in range(4)] == ["complete"] * 4


def test_a_dry_run_writes_nothing_and_names_what_it_would_process() -> None:
    world = World(5)
    Backfill(Plan(BUCKET, (source(0),)), ROUTES, world.deps()).run()
    writes, creates, downloads = world.documents.writes, world.objects.creates, world.objects.downloads
    seen: list[str] = []

    summary = Backfill(Plan(BUCKET, ("raw-uploads/",), dry_run=True), ROUTES, world.deps(),
                       lambda report, tally: seen.append(report.name)).run()  # fmt: skip

    assert (summary["would_process"], summary["skipped_done"], summary["processed"]) == (4, 1, 0)
    assert sorted(seen) == sorted(world.names)
    assert (world.documents.writes, world.objects.creates, world.objects.downloads) == (writes, creates, downloads)


@pytest.mark.parametrize("limit", [1, 3])
def test_limit_caps_the_processed_objects_and_reruns_resume(limit: int) -> None:
    world = World(7)
    runs = []
    while not runs or runs[-1]["processed"]:
        runs.append(world.run(limit=limit, concurrency=2))

    assert [run["processed"] for run in runs[:-1]] == [limit] * (7 // limit) + ([7 % limit] if 7 % limit else [])
    assert sum(run["processed"] for run in runs) == 7
    assert [world.status(index) for index in range(7)] == ["complete"] * 7


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_shards_partition_the_objects_exactly(count: int) -> None:
    world = World(40)
    shares: list[set[str]] = []
    for index in range(count):
        names: set[str] = set()
        Backfill(Plan(BUCKET, ("raw-uploads/",), shard=Shard(index, count)), ROUTES, world.deps(),
                 lambda report, tally, names=names: names.add(report.name)).run()  # fmt: skip
        shares.append(names)

    assert set().union(*shares) == set(world.names)
    assert sum(len(share) for share in shares) == len(world.names)
    assert world.objects.downloads == len(world.names)  # each object processed by exactly one shard


def test_the_shard_hash_is_stable_and_spreads_names() -> None:
    assert shard_of("raw-uploads/user-1/char-1/portrait.jpg", 1_000_000) == 63_174
    buckets = [shard_of(f"raw-uploads/u/c{index}/x.jpg", 4) for index in range(4000)]
    assert all(900 < buckets.count(shard) < 1100 for shard in range(4))


@pytest.mark.parametrize("text", ["4/4", "-1/2", "0/0"])
def test_a_shard_outside_its_count_is_refused(text: str) -> None:
    index, count = map(int, text.split("/"))
    with pytest.raises(ValueError):
        Shard(index, count)


def test_a_non_image_ends_failed_with_its_code() -> None:
    world = World(3, non_images=(1,))

    summary = world.run()

    assert (summary["complete"], summary["failed"]) == (2, {"unsupported_format": 1})
    assert (
        world.documents.documents["characters/char-1"]["visuals"]["showcase"]["error"]["code"] == "unsupported_format"
    )


class FlakyObjects(MemoryObjects):
    """Downloads of one object fail transiently `failures` times."""

    def __init__(self, flaky: str, failures: int) -> None:
        super().__init__()
        self.flaky, self.failures = flaky, failures

    def download(self, bucket: str, name: str, generation: int) -> bytes | None:
        if name == self.flaky and self.failures:
            self.failures -= 1
            raise TransientError("storage blip (injected)")
        return super().download(bucket, name, generation)


@pytest.mark.parametrize(("failures", "errors"), [(2, 0), (10, 1)], ids=["recovers", "gives-up"])
def test_a_transient_fault_on_one_object_does_not_stop_the_run(failures: int, errors: int) -> None:
    world = World(4, objects=FlakyObjects(source(1), failures))

    summary = world.run(attempts=3)

    assert (summary["errors"], summary["complete"]) == (errors, 4 - errors)
    assert world.status(1) == ("finalizing" if errors else "complete")
    world.objects.failures = 0
    assert world.run()["complete"] == errors  # the rerun finishes what was left


@pytest.mark.parametrize(
    ("document", "name", "skip"),
    [
        pytest.param({"meta": {"userId": "someone-else"}}, source(0), "not_owner", id="not-owner"),
        pytest.param(None, source(0), "document_missing", id="no-document"),
        pytest.param(
            {"meta": {"userId": "user-0"}},
            "raw-uploads/user-0/char-0/extra/x.jpg",
            "not_a_source_upload",
            id="not-a-source",
        ),
        pytest.param(
            {"meta": {"userId": "user-0"}, "visuals": {"showcase": {"source": {"generation": "9" * 19}}}},
            source(0),
            "superseded",
            id="superseded",
        ),
    ],
)
def test_objects_the_function_would_not_process_are_skipped_untouched(document, name: str, skip: str) -> None:
    world = World(0)
    if document is not None:
        world.documents.documents["characters/char-0"] = document
    world.objects.put(BUCKET, name, b"jpeg")

    summary = world.run()

    assert (summary["skipped"], summary["processed"], world.documents.writes) == ({skip: 1}, 0, 0)


class InterruptedListing(MemoryObjects):
    """A listing that is interrupted (Ctrl-C) or breaks after `after` objects."""

    def __init__(self, after: int, error: BaseException) -> None:
        super().__init__()
        self.after, self.error = after, error

    def list_objects(self, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
        for number, resource in enumerate(super().list_objects(bucket, prefix)):
            # Only the run's own listing (the counting one has a thread of its own), as Ctrl-C reaches the main thread.
            if number == self.after and threading.current_thread() is threading.main_thread():
                raise self.error
            yield resource


@pytest.mark.parametrize("error", [KeyboardInterrupt(), TransientError("listing: 503")], ids=["ctrl-c", "outage"])
def test_an_interrupted_or_broken_listing_ends_with_a_summary(error: BaseException) -> None:
    world = World(6, objects=InterruptedListing(3, error))

    summary = world.run(concurrency=2)

    assert summary["listed"] == 3 and summary["processed"] + sum(summary["skipped"].values()) == 3
    assert summary["interrupted"] is isinstance(error, KeyboardInterrupt)
    assert (summary["listing_error"] is not None) is isinstance(error, TransientError)
    world.objects.after = -1
    assert world.run()["processed"] == 6 - summary["processed"]  # the rerun resumes


def counts(**overrides: Any) -> dict[str, Any]:
    """A tally snapshot."""
    base = {"examined": 0, "total": None, "processed": 0, "would_process": 0, "skipped_done": 0, "failed": {},
            "errors": 0}  # fmt: skip
    return {**base, **overrides}


@pytest.mark.parametrize(
    ("snapshot", "elapsed", "limit", "eta"),
    [
        pytest.param(counts(examined=50, total=200, processed=50), 10, None, 30, id="from-the-count"),
        pytest.param(counts(examined=50), 10, None, None, id="still-counting"),
        pytest.param(counts(examined=80, total=1000, processed=20), 10, 40, 10, id="limit-first"),
        pytest.param(counts(examined=0, total=10), 0, None, None, id="nothing-yet"),
    ],
)
def test_progress_rate_and_eta(snapshot, elapsed: float, limit, eta) -> None:
    status = progress_status(snapshot, elapsed, limit)
    assert status["eta_s"] == eta
    assert "ETA" in progress_text(status) and f"{status['examined']:,}/" in progress_text(status)


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_on_a_terminal_the_bar_is_redrawn_in_place_under_log_lines() -> None:
    stream, clock, tally = io.StringIO(), Clock(), Tally(total=4)
    progress = Progress(stream, interactive=True, interval_s=0.2, limit=None, clock=clock)
    tally.record(Report("a", "1", Action.SKIPPED, Outcome.DUPLICATE))
    clock.now = 1.0
    progress.update(tally)
    progress.update(tally)  # within the interval: nothing drawn
    progress.write('{"message": "a log line"}\n')
    progress.update(tally, final=True)

    drawn = stream.getvalue()
    assert drawn.count("backfill 1/4 (25.0%)") == 3
    assert '\r\x1b[K{"message": "a log line"}\nbackfill 1/4' in drawn
    assert drawn.endswith("\n")


def test_off_a_terminal_progress_is_a_periodic_json_log_line() -> None:
    from image_pipeline import logs

    stream, clock = io.StringIO(), Clock()
    logs.configure(stream=stream)
    progress = Progress(io.StringIO(), interactive=False, interval_s=10, limit=None, clock=clock)
    for now in (1, 5, 12, 13, 25):
        clock.now = now
        progress.update(Tally())
    logs.configure(stream=io.StringIO())

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 3 and all(line["progress"]["examined"] == 0 for line in lines)


# --- On the emulators, through the CLI ------------------------------------------------------------------------


@pytest.fixture
def seeded(backend, monkeypatch):
    """Five characters with small photo uploads and one with a non-image; BUCKET set for the CLI."""
    from tests.backend import BUCKET as EMULATOR_BUCKET
    from tests.backend import photo

    monkeypatch.setenv("BUCKET", EMULATOR_BUCKET)
    for variable in ("CLOUD_RUN_TASK_INDEX", "CLOUD_RUN_TASK_COUNT", "LOG_LEVEL"):
        monkeypatch.delenv(variable, raising=False)
    image = photo(320, 240)
    for index in range(6):
        backend.seed_character(f"char-{index}", f"user-{index % 3}")
        backend.upload(source(index), b"not pixels at all" if index == 5 else image)
    return backend


def cli(capsys, *args: str) -> tuple[int, dict[str, Any], list[str]]:
    """Run the backfill command in this process; its exit code, summary and other stdout lines."""
    code = main(["backfill", *args])
    lines = capsys.readouterr().out.splitlines()
    return code, json.loads(lines[-1]), lines[:-1]


def statuses(backend) -> list[str | None]:
    return [((backend.document(f"char-{index}") or {}).get("visuals") or {}).get("showcaseProcessingStatus")
            for index in range(6)]  # fmt: skip


def test_cli_on_emulators_processes_like_the_function_then_skips_everything(seeded, capsys) -> None:
    backend = seeded
    assert backend.deliver(dict(backend.bucket.get_blob(source(0))._properties)) == 200
    by_function = backend.document("char-0")

    code, summary, _ = cli(capsys, "--concurrency", "4")

    assert code == 1  # the non-image ended failed
    assert (summary["listed"], summary["skipped_done"], summary["processed"]) == (6, 1, 5)
    assert (summary["complete"], summary["failed"], summary["errors"]) == (4, {"unsupported_format": 1}, 0)
    assert statuses(backend) == ["complete"] * 5 + ["failed"]
    by_backfill = backend.document("char-1")
    assert shape(by_backfill) == shape(by_function)
    assert len(backend.objects("showcase-images/")) == 5 * 3
    for variant in by_backfill["visuals"]["showcase"]["variants"].values():
        assert backend.download_url(variant["url"]).content[:4] == b"RIFF"

    code, summary, _ = cli(capsys)
    assert (code, summary["skipped_done"], summary["processed"]) == (0, 6, 0)


def shape(document: dict[str, Any]) -> Any:
    """The document's structure with values replaced by their types, to compare two results."""
    if isinstance(document, dict):
        return {key: shape(value) for key, value in document.items() if key != "meta"}
    return type(document).__name__


def test_cli_dry_run_on_emulators_lists_and_writes_nothing(seeded, capsys) -> None:
    backend = seeded
    before = [backend.document(f"char-{index}") for index in range(6)]

    code, summary, lines = cli(capsys, "--dry-run", "--prefix", "raw-uploads/user-0/")

    assert (code, summary["listed"], summary["would_process"], summary["processed"]) == (0, 2, 2, 0)
    assert sorted(json.loads(line)["would_process"] for line in lines) == [source(0), source(3)]
    assert [backend.document(f"char-{index}") for index in range(6)] == before
    assert backend.objects("showcase-images/") == {}


def test_cli_force_on_emulators_rerecords_and_reuses_the_variants(seeded, capsys) -> None:
    backend = seeded
    cli(capsys, "--prefix", "raw-uploads/user-1/")
    outputs = {name: blob.generation for name, blob in backend.objects("showcase-images/").items()}
    recorded = backend.document("char-1")["visuals"]["showcase"]["updatedAt"]

    code, summary, _ = cli(capsys, "--prefix", "raw-uploads/user-1/char-1/", "--force", "--limit", "1")

    assert (code, summary["processed"], summary["complete"]) == (0, 1, 1)
    assert {name: blob.generation for name, blob in backend.objects("showcase-images/").items()} == outputs
    assert backend.document("char-1")["visuals"]["showcase"]["updatedAt"] > recorded


def test_a_storage_fault_on_one_object_on_emulators_is_retried(seeded) -> None:
    from image_pipeline.bootstrap import connect

    settings = Settings.from_env()
    real = connect(settings)

    class Flaky:
        """The real adapter, with two injected failures downloading char-2's upload."""

        failures = 2

        def __getattr__(self, name: str) -> Any:
            return getattr(real.objects, name)

        def download(self, bucket: str, name: str, generation: int) -> bytes | None:
            if name == source(2) and Flaky.failures:
                Flaky.failures -= 1
                raise TransientError("injected 503")
            return real.objects.download(bucket, name, generation)

    deps = Dependencies(Flaky(), real.documents, real.make_variants, real.now)
    plan = Plan(os.environ["BUCKET"], ("raw-uploads/",), backoff_s=0.01)

    summary = Backfill(plan, RouteUploads(settings.routes, settings.policy), deps).run()

    assert (summary["complete"], summary["errors"], Flaky.failures) == (5, 0, 0)
    assert statuses(seeded) == ["complete"] * 5 + ["failed"]


def test_cli_shards_from_cloud_run_variables_split_the_work(seeded, stack) -> None:
    env = {**os.environ, **stack.client_env(), "PYTHONPATH": str(REPO), "CLOUD_RUN_TASK_COUNT": "2"}
    summaries = []
    command = [sys.executable, "-m", "image_pipeline", "backfill", "--dry-run"]
    for index in ("0", "1"):
        task_env = {**env, "CLOUD_RUN_TASK_INDEX": index}
        done = subprocess.run(command, cwd=REPO, env=task_env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        *lines, last = done.stdout.splitlines()
        summaries.append((json.loads(last), {json.loads(line)["would_process"] for line in lines}))
        assert all(json.loads(line)["severity"] for line in done.stderr.splitlines())  # JSON logs on stderr

    (first, first_names), (second, second_names) = summaries
    assert (first["shard"], second["shard"]) == ("0/2", "1/2")
    assert first_names | second_names == {source(index) for index in range(6)}
    assert not first_names & second_names


@pytest.mark.parametrize(
    ("args", "env"),
    [
        pytest.param(["--prefix", "showcase-images/"], {"BUCKET": "b"}, id="prefix-outside-the-source"),
        pytest.param([], {}, id="no-bucket"),
        pytest.param([], {"BUCKET": "b", "CLOUD_RUN_TASK_INDEX": "2", "CLOUD_RUN_TASK_COUNT": "2"}, id="task-index"),
        pytest.param(["--shard", "1"], {"BUCKET": "b"}, id="bad-shard-flag"),
        pytest.param(["--concurrency", "0"], {"BUCKET": "b"}, id="no-concurrency"),
        pytest.param([], {"BUCKET": "b", "QUALITY": "1000"}, id="bad-setting"),
    ],
)
def test_usage_errors_exit_2(args: list[str], env: dict[str, str], monkeypatch, capsys) -> None:
    for variable in ("BUCKET", "CLOUD_RUN_TASK_INDEX", "CLOUD_RUN_TASK_COUNT"):
        monkeypatch.delenv(variable, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    try:
        code = main(["backfill", *args])
    except SystemExit as exit_:
        code = exit_.code

    assert code == 2
    assert capsys.readouterr().out == ""
