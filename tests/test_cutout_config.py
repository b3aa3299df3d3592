"""Cutout configuration: the [route.cutout] table, the built-in route's CUTOUT_ variables, where models are read from,
the per-instance model cache and the CPUs its sessions get. Every refusal names the route (or variable) and the key."""

from __future__ import annotations

import copy
import hashlib
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from image_pipeline import cpus
from image_pipeline.cpus import available_cpus
from image_pipeline.errors import ConfigurationError, ModelUnusable, TransientError
from image_pipeline.model_files import ModelCache, ModelObject, model_location, read_model
from image_pipeline.options import CutoutFamily, CutoutSpec, ImagingOptions
from image_pipeline.routes_file import RouteError, parse_routes
from image_pipeline.settings import Settings
from tests.fakes import MemoryObjects

SHA = "0123456789abcdef" * 4
MODEL_URI = "gs://{bucket}/models/isnet-anime.onnx"
CUTOUT = {"family": "isnet", "uri": MODEL_URI, "sha256": SHA}
BASE: dict[str, Any] = {
    "name": "showcase",
    "match": "raw-uploads/{uid}/{characterId}/{file}",
    "document": "characters/{characterId}",
    "field": "visuals.showcase",
    "output": "showcase-images/{uid}/{characterId}/",
    "variants": {"thumb": 256},
    "cutout": CUTOUT,
}
REMOVE = object()


def with_cutout(**changes: Any) -> dict[str, Any]:
    """BASE whose cutout table has keys changed (or removed with REMOVE)."""
    table = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is REMOVE:
            del table["cutout"][key]
        else:
            table["cutout"][key] = value
    return table


def parse(*tables: dict[str, Any]):
    return parse_routes({"route": list(tables)}, ImagingOptions()).routes


@pytest.mark.parametrize(
    ("uri", "trim"),
    [
        (MODEL_URI, False),
        ("gs://{bucket}/models/u2netp.onnx", True),
        ("gs://shared-models-bucket/isnet.onnx", False),
        ("models/isnet-anime.onnx", False),
        ("/opt/models/isnet-anime.onnx", False),
    ],
)
def test_a_cutout_table_becomes_the_routes_cutout_spec(uri: str, trim: bool) -> None:
    [route] = parse(with_cutout(uri=uri, trim=trim, sha256=SHA.upper()))

    assert route.cutout == CutoutSpec(CutoutFamily.ISNET, uri, SHA, trim)
    assert route.cutout.label == f"isnet:{SHA[:12]}"


def test_a_route_without_a_cutout_table_has_none() -> None:
    table = copy.deepcopy(BASE)
    del table["cutout"]

    assert parse(table)[0].cutout is None


CUTOUT_REFUSALS = [
    pytest.param({"cutout": "isnet"}, "cutout:", "must be a table", id="not-a-table"),
    pytest.param({"cutout": {**CUTOUT, "model": "x"}}, "cutout.model:", "unknown key", id="unknown-key"),
    pytest.param({"cutout": {**CUTOUT, "threshold": 0.5}}, "cutout.threshold:", "unknown key", id="unknown-threshold"),
    *(
        pytest.param({"cutout": {k: v for k, v in CUTOUT.items() if k != key}}, f"cutout.{key}:", "missing", id=key)
        for key in CUTOUT
    ),
    pytest.param({"cutout": {**CUTOUT, "family": "rembg"}}, "cutout.family:", '"isnet", "u2net"', id="family-rembg"),
    pytest.param({"cutout": {**CUTOUT, "family": "ISNET"}}, "cutout.family:", '"isnet", "u2net"', id="family-case"),
    pytest.param({"cutout": {**CUTOUT, "family": 1}}, "cutout.family:", '"isnet", "u2net"', id="family-number"),
    pytest.param({"cutout": {**CUTOUT, "uri": ""}}, "cutout.uri:", "non-empty string", id="uri-empty"),
    pytest.param({"cutout": {**CUTOUT, "uri": 5}}, "cutout.uri:", "non-empty string", id="uri-number"),
    pytest.param({"cutout": {**CUTOUT, "uri": "https://x.example/m.onnx"}}, "cutout.uri:", "nothing is fetched",
                 id="uri-https"),
    pytest.param({"cutout": {**CUTOUT, "uri": "gs://{bucket}/"}}, "cutout.uri:", "name the model's object",
                 id="uri-no-object"),
    pytest.param({"cutout": {**CUTOUT, "uri": "gs://{bucket}/models/{uid}.onnx"}}, "cutout.uri:", "no placeholder",
                 id="uri-placeholder-in-name"),
    pytest.param({"cutout": {**CUTOUT, "uri": "gs://{uid}/m.onnx"}}, "cutout.uri:", "name a bucket",
                 id="uri-placeholder-bucket"),
    pytest.param({"cutout": {**CUTOUT, "uri": "gs://Models/m.onnx"}}, "cutout.uri:", "name a bucket",
                 id="uri-bad-bucket"),
    pytest.param({"cutout": {**CUTOUT, "uri": "models/{family}.onnx"}}, "cutout.uri:", "no placeholder",
                 id="uri-local-placeholder"),
    pytest.param({"cutout": {**CUTOUT, "uri": "models/"}}, "cutout.uri:", "one file", id="uri-local-folder"),
    pytest.param({"cutout": {**CUTOUT, "uri": "gs://{bucket}/raw-uploads/u/c/m.onnx"}}, "cutout.uri:",
                 "fits route 'showcase''s match", id="uri-inside-match"),
    pytest.param({"cutout": {**CUTOUT, "uri": "gs://{bucket}/showcase-images/u/c/m.onnx"}}, "cutout.uri:",
                 "output folder", id="uri-inside-output"),
    pytest.param({"cutout": {**CUTOUT, "sha256": SHA[:-1]}}, "cutout.sha256:", "64 hex", id="sha-short"),
    pytest.param({"cutout": {**CUTOUT, "sha256": SHA + "0"}}, "cutout.sha256:", "64 hex", id="sha-long"),
    pytest.param({"cutout": {**CUTOUT, "sha256": "g" * 64}}, "cutout.sha256:", "64 hex", id="sha-not-hex"),
    pytest.param({"cutout": {**CUTOUT, "sha256": f"sha256:{SHA}"}}, "cutout.sha256:", "64 hex", id="sha-prefixed"),
    pytest.param({"cutout": {**CUTOUT, "sha256": 5}}, "cutout.sha256:", "64 hex", id="sha-number"),
    pytest.param({"cutout": {**CUTOUT, "trim": "yes"}}, "cutout.trim:", "true or false", id="trim-text"),
    pytest.param({"cutout": {**CUTOUT, "trim": 1}}, "cutout.trim:", "true or false", id="trim-number"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "key", "problem"), CUTOUT_REFUSALS)
def test_a_bad_cutout_table_is_refused_naming_the_route_and_the_key(changes, key, problem) -> None:
    with pytest.raises(RouteError) as refused:
        parse({**BASE, **changes})

    message = str(refused.value)
    assert "route 'showcase': " in message
    assert key in message
    assert problem in message


def test_a_model_inside_another_routes_match_is_refused() -> None:
    avatar = {**BASE, "name": "avatar", "match": "users/{uid}/avatar/{file}", "document": "users/{uid}",
              "output": "avatars/{uid}/", "cutout": {**CUTOUT, "uri": "gs://{bucket}/models/m.onnx"}}  # fmt: skip
    showcase = with_cutout(uri="gs://{bucket}/users/u-1/avatar/m.onnx")

    with pytest.raises(RouteError, match=r"route 'showcase': cutout\.uri: .* fits route 'avatar''s match"):
        parse(avatar, showcase)


# --- the built-in route's CUTOUT_ variables -----------------------------------------------------------------------
ENVIRONMENT = {"CUTOUT_FAMILY": "u2net", "CUTOUT_MODEL_URI": MODEL_URI, "CUTOUT_MODEL_SHA256": SHA}


def test_the_built_in_route_takes_the_cutout_variables() -> None:
    assert Settings.from_env(ENVIRONMENT).routes[0].cutout == CutoutSpec(CutoutFamily.U2NET, MODEL_URI, SHA)


def test_without_the_cutout_variables_the_built_in_route_has_none() -> None:
    assert Settings.from_env({}).routes[0].cutout is None


@pytest.mark.parametrize(
    "given",
    [
        pytest.param(names, id="+".join(names))
        for names in (
            ("CUTOUT_FAMILY",),
            ("CUTOUT_MODEL_URI",),
            ("CUTOUT_MODEL_SHA256",),
            ("CUTOUT_FAMILY", "CUTOUT_MODEL_URI"),
            ("CUTOUT_MODEL_URI", "CUTOUT_MODEL_SHA256"),
        )
    ],
)
def test_some_cutout_variables_without_the_others_are_refused_naming_the_missing_ones(given) -> None:
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_env({name: ENVIRONMENT[name] for name in given})

    message = str(refused.value)
    assert "all three" in message
    for name in ENVIRONMENT:
        assert name in message


# --- where a model is read from -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("uri", "location"),
    [
        (MODEL_URI, ModelObject("{bucket}", "models/isnet-anime.onnx")),
        ("gs://other-bucket/a/b.onnx", ModelObject("other-bucket", "a/b.onnx")),
        ("models/m.onnx", Path("models/m.onnx")),
    ],
)
def test_model_locations(uri: str, location: object) -> None:
    assert model_location(uri) == location


def spec(uri: str = MODEL_URI, data: bytes = b"model bytes") -> CutoutSpec:
    return CutoutSpec(CutoutFamily.ISNET, uri, hashlib.sha256(data).hexdigest())


def test_an_object_model_is_read_from_the_events_bucket_at_its_current_generation() -> None:
    objects = MemoryObjects()
    objects.put("app-bucket", "models/isnet-anime.onnx", b"old")
    objects.put("app-bucket", "models/isnet-anime.onnx", b"model bytes")

    assert read_model(spec(), "app-bucket", objects, Path("/nowhere")) == b"model bytes"


def test_a_local_model_is_read_relative_to_the_source_root(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.onnx").write_bytes(b"model bytes")

    assert read_model(spec("models/m.onnx"), "app-bucket", MemoryObjects(), tmp_path) == b"model bytes"


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        pytest.param(MODEL_URI, "gs://app-bucket/models/isnet-anime.onnx (isnet:", id="missing-object"),
        pytest.param("gs://other/models/m.onnx", "gs://other/models/m.onnx (isnet:", id="missing-other-bucket"),
        pytest.param("models/missing.onnx", "models/missing.onnx (isnet:", id="missing-file"),
    ],
)
def test_a_missing_model_is_unusable_naming_it(uri: str, problem: str, tmp_path: Path) -> None:
    with pytest.raises(ModelUnusable, match=re.escape(problem)):
        read_model(spec(uri), "app-bucket", MemoryObjects(), tmp_path)


def test_a_storage_outage_while_reading_the_model_stays_transient() -> None:
    with pytest.raises(TransientError):
        read_model(spec(), "app-bucket", MemoryObjects(outage=True), Path("/nowhere"))


def test_a_model_that_cannot_be_read_for_another_reason_is_unusable() -> None:
    class Forbidden(MemoryObjects):
        def read(self, bucket: str, name: str) -> bytes | None:
            raise PermissionError("403 the runtime account may not read gs://other/m.onnx")

    with pytest.raises(ModelUnusable, match="cannot read it: 403"):
        read_model(spec("gs://other/m.onnx"), "app-bucket", Forbidden(), Path("/nowhere"))


# --- the per-instance cache ------------------------------------------------------------------------------------------
class Loads:
    """A stand-in for the core's load function: records each load, refuses bytes that fail the checksum."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, int]] = []

    def __call__(self, data: bytes, cutout: CutoutSpec, threads: int) -> object:
        self.calls.append((data, threads))
        if hashlib.sha256(data).hexdigest() != cutout.sha256:
            raise ModelUnusable(f"cutout model {cutout.uri}: sha256 mismatch")
        return ("session", data)


def test_a_model_is_read_and_loaded_once_per_instance_and_shared_by_routes() -> None:
    reads: list[str] = []
    loads = Loads()
    cache = ModelCache(lambda cutout, bucket: reads.append(bucket) or b"model bytes", loads, threads=3)
    trimmed = CutoutSpec(CutoutFamily.ISNET, MODEL_URI, spec().sha256, trim=True)

    first = cache.get(spec(), "app-bucket")
    again = cache.get(spec(), "app-bucket")
    other = cache.get(trimmed, "app-bucket")

    assert reads == ["app-bucket"] and loads.calls == [(b"model bytes", 3)]
    assert first.matting is again.matting is other.matting
    assert (first.spec.trim, other.spec.trim) == (False, True)


def test_each_bucket_has_its_own_model() -> None:
    loads = Loads()
    cache = ModelCache(lambda cutout, bucket: b"model bytes", loads, threads=1)

    cache.get(spec(), "bucket-a")
    cache.get(spec(), "bucket-b")

    assert len(loads.calls) == 2


def test_a_failed_load_is_not_kept_so_a_fixed_model_is_picked_up() -> None:
    files = [b"wrong", b"model bytes"]
    cache = ModelCache(lambda cutout, bucket: files.pop(0), Loads(), threads=1)

    with pytest.raises(ModelUnusable):
        cache.get(spec(), "app-bucket")
    assert cache.get(spec(), "app-bucket").matting == ("session", b"model bytes")


def test_concurrent_first_events_load_the_model_once() -> None:
    loads = Loads()
    started = threading.Barrier(4)

    def read(cutout: CutoutSpec, bucket: str) -> bytes:
        return b"model bytes"

    cache = ModelCache(read, loads, threads=1)

    def first_event() -> None:
        started.wait()
        cache.get(spec(), "app-bucket")

    threads = [threading.Thread(target=first_event) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(loads.calls) == 1


# --- CPUs -------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("200000 100000\n", 2), ("100000 100000\n", 1), ("50000 100000\n", 1), ("150000 100000\n", 1)],
)
def test_threads_follow_the_cgroup_quota(cpu_max: str, expected: int, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "cpu.max").write_text(cpu_max)
    monkeypatch.setattr(cpus, "_CPU_MAX", tmp_path / "cpu.max")

    assert available_cpus() == expected


@pytest.mark.parametrize("cpu_max", ["max 100000\n", None, "garbage"])
def test_without_a_quota_threads_follow_the_cpus_the_process_may_use(
    cpu_max: str | None, tmp_path: Path, monkeypatch
) -> None:
    if cpu_max is not None:
        (tmp_path / "cpu.max").write_text(cpu_max)
    monkeypatch.setattr(cpus, "_CPU_MAX", tmp_path / "cpu.max")
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {0, 1, 2})

    assert available_cpus() == 3
