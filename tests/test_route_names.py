"""Custom output names (`names`): parsing, rendering, the short default Cache-Control without {generation}, the
start-up refusals of names that could give two outputs one name (each error names the route and the key), and the use
case replacing such outputs for a new upload only."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from image_pipeline.options import ImagingOptions, OutputFormat, Variant
from image_pipeline.output_names import DEFAULT_NAMES, Names, common_name
from image_pipeline.ports import Outcome
from image_pipeline.results import ProcessedImage
from image_pipeline.routes import DEFAULT_CACHE_CONTROL, SHORT_CACHE_CONTROL, Route, clean_stem
from image_pipeline.routes_file import RouteError, parse_routes
from image_pipeline.settings import Settings
from image_pipeline.uploads import Upload, classify
from image_pipeline.usecase import Dependencies, Trace, handle_upload, store_variants
from tests.fakes import MemoryDocuments, MemoryObjects, StoredObject, fake_make_variants

LIMITS = ImagingOptions()
AVATAR: dict[str, Any] = {
    "name": "avatar",
    "match": "users/{uid}/avatar/{file}",
    "document": "users/{uid}",
    "field": "avatar",
    "output": "avatars/{uid}/",
    "formats": ["webp", "jpeg"],
    "variants": {"small": {"box": "256x256", "fit": "cover"}, "tiny": 64, "wide": {"box": "1200x400"}},
}
VALUES = {"uid": "u1", "stem": "me"}


def avatar(**changes: Any) -> Route:
    (route,) = parse_routes({"route": [AVATAR | changes]}, LIMITS, source="routes.toml").routes
    return route


def refusal(*tables: dict[str, Any]) -> RouteError:
    with pytest.raises(RouteError) as raised:
        parse_routes({"route": list(tables)}, LIMITS, source="routes.toml")
    assert str(raised.value).startswith("routes.toml: route '"), raised.value
    return raised.value


@pytest.mark.parametrize(
    ("names", "variant", "extension", "expected"),
    [
        pytest.param("{stem}_{box}.{ext}", "small", "webp", "avatars/u1/me_256x256.webp", id="box"),
        pytest.param("{stem}_{box}.{ext}", "tiny", "jpg", "avatars/u1/me_64x64.jpg", id="longest-edge-box-jpeg"),
        pytest.param("{stem}_{box}.{ext}", "wide", "webp", "avatars/u1/me_1200x400.webp", id="wide-box"),
        pytest.param("{variant}.{ext}", "small", "webp", "avatars/u1/small.webp", id="variant-only"),
        pytest.param("p.{stem}.{generation}.{variant}.{ext}", "tiny", "jpg", "avatars/u1/p.me.17.tiny.jpg", id="dots"),
        pytest.param("{box}-{variant}-{stem}.{ext}", "wide", "webp", "avatars/u1/1200x400-wide-me.webp", id="order"),
    ],
)
def test_names_render_each_variant_in_each_format(names: str, variant: str, extension: str, expected: str) -> None:
    route = avatar(names=names)

    assert route.names == Names(names)
    assert route.output_path(VALUES, 17, variant, extension) == expected


def test_without_names_outputs_keep_the_default_names_and_the_long_cache_control() -> None:
    route = avatar()

    assert route.names == DEFAULT_NAMES
    assert route.cache_control == DEFAULT_CACHE_CONTROL
    assert route.output_path(VALUES, 17, "small", "webp") == "avatars/u1/me-17-small.webp"


@pytest.mark.parametrize(
    ("changes", "cache_control"),
    [
        pytest.param({"names": "{stem}_{box}.{ext}"}, SHORT_CACHE_CONTROL, id="no-generation-short"),
        pytest.param({"names": "{stem}_{generation}_{box}.{ext}"}, DEFAULT_CACHE_CONTROL, id="generation-long"),
        pytest.param({"names": "{stem}_{box}.{ext}", "cache_control": "no-cache"}, "no-cache", id="explicit-wins"),
        pytest.param(
            {"names": "{stem}_{box}.{ext}", "cache_control": DEFAULT_CACHE_CONTROL},
            DEFAULT_CACHE_CONTROL,
            id="explicit-long-wins",
        ),
    ],
)
def test_names_without_generation_default_to_a_short_cache_control(changes: dict[str, Any], cache_control) -> None:
    assert avatar(**changes).cache_control == cache_control
    assert SHORT_CACHE_CONTROL == "public, max-age=3600"


@pytest.mark.parametrize(
    ("names", "problem"),
    [
        pytest.param("thumbs/{stem}_{box}.{ext}", "without '/': folders belong in output", id="slash"),
        pytest.param("{stem}/{box}.{ext}", "without '/'", id="slash-between-placeholders"),
        pytest.param("{uid}_{box}.{ext}", "unknown placeholder {uid}", id="capture"),
        pytest.param("{file}_{box}.{ext}", "unknown placeholder {file}", id="file-name"),
        pytest.param("{Box}.{ext}", "unknown placeholder {Box}", id="case"),
        pytest.param("{stem}_{box}_{box}.{ext}", "each placeholder may appear once", id="repeated"),
        pytest.param("{stem} {box}.{ext}", "A-Z a-z 0-9 _ . -", id="space"),
        pytest.param("{stem}_{box}.{ext}}", "A-Z a-z 0-9 _ . -", id="stray-brace"),
        pytest.param("{stem}_{box}", "must end in '.{ext}'", id="no-ext"),
        pytest.param("{stem}_{box}_{ext}", "must end in '.{ext}'", id="ext-not-last"),
        pytest.param("{ext}.{box}.webp", "must end in '.{ext}'", id="ext-first"),
        pytest.param("{stem}-{generation}.{ext}", "must name the variant: {variant}, or {box}", id="no-variant"),
        pytest.param("", "non-empty string", id="empty"),
        pytest.param(["{stem}.{ext}"], "non-empty string", id="not-a-string"),
    ],
)
def test_a_bad_template_is_refused_naming_the_route_and_the_key(names: Any, problem: str) -> None:
    error = refusal(AVATAR | {"names": names})

    assert "route 'avatar': names: " in str(error)
    assert problem in str(error)
    assert error.key == "names"


def test_two_variants_with_one_box_are_refused_when_only_the_box_tells_them_apart() -> None:
    variants = {"thumb": 256, "square": {"box": "256x256", "fit": "cover"}}

    error = refusal(AVATAR | {"names": "{stem}_{box}.{ext}", "variants": variants})

    assert str(error).endswith(
        "route 'avatar': names: variants 'thumb' and 'square' have the same box 256x256, and {box} is all that tells "
        "them apart: add {variant}"
    )
    assert error.key == "names"
    assert avatar(names="{stem}_{variant}_{box}.{ext}", variants=variants).names.text == "{stem}_{variant}_{box}.{ext}"


# Each refusal gives a name both variants could get: rendered below from the stems that collide.
COLLISIONS = [
    pytest.param("{stem}{box}.{ext}", {"a": {"box": "164x64"}, "b": 64},
                 (("a", Variant("a", 164, 64)), ("a1", Variant("b", 64))), "a164x64.webp", id="abutting"),
    pytest.param("{stem}_{variant}.{ext}", {"c": 64, "b_c": 32},
                 (("a_b", Variant("c", 64)), ("a", Variant("b_c", 32))), "a_b_c.webp", id="stem-holds-variant"),
    pytest.param("{variant}{box}.{ext}", {"a": {"box": "11x2"}, "a1": {"box": "1x2"}},
                 (("x", Variant("a", 11, 2)), ("y", Variant("a1", 1, 2))), "a11x2.webp", id="variant-and-box-abutting"),
]  # fmt: skip


@pytest.mark.parametrize(("names", "variants", "renders", "example"), COLLISIONS)
def test_names_that_could_give_two_outputs_one_name_are_refused_with_an_example(names, variants, renders, example):
    error = refusal(AVATAR | {"names": names, "variants": variants, "formats": ["webp"]})

    first, second = variants
    assert f"names: the webp outputs of variants {first!r} and {second!r} could both be named {example!r}" in str(error)
    assert [Names(names).render(stem, 1, variant, "webp") for stem, variant in renders] == [example, example]


@pytest.mark.parametrize(
    ("names", "variants"),
    [
        pytest.param("{stem}_{box}.{ext}", {"a": {"box": "164x64"}, "b": 64}, id="separated-box"),
        pytest.param("{stem}.{variant}.{ext}", {"c": 64, "b_c": 32}, id="dot-separated-variant"),
        pytest.param("{stem}-{generation}-{variant}.{ext}", {"c": 64, "b_c": 32}, id="generation-separates-uploads"),
        pytest.param("{stem}{generation}{variant}.{ext}", {"c": 64, "b_c": 32}, id="generation-abutting"),
    ],
)
def test_names_that_tell_every_output_apart_are_accepted(names: str, variants: dict[str, Any]) -> None:
    route = avatar(names=names, variants=variants)

    assert route.names.text == names


@pytest.mark.parametrize(
    ("changes", "placeholder"),
    [
        pytest.param({"names": "{box}.{ext}", "document": "pictures/{stem}"}, "{stem}", id="stem-document"),
        pytest.param({"names": "{stem}_{box}.{ext}", "output": "avatars/"}, "{uid}", id="folder-without-the-capture"),
        pytest.param({"names": "{stem}_{box}.{ext}", "output": "avatars/{uid}-{stem}/"}, "{uid}", id="two-in-a-folder"),
    ],
)
def test_without_generation_the_output_names_must_name_the_document(changes: dict[str, Any], placeholder: str):
    error = refusal(AVATAR | changes)

    assert f"route 'avatar': names: without {{generation}}, outputs are named by their folder and names only, but " \
           f"{placeholder} of document" in str(error)  # fmt: skip
    assert error.key == "names"
    with_generation = changes | {"names": "{stem}-{generation}-{box}.{ext}"}
    assert avatar(**with_generation).document.text == (AVATAR | changes)["document"]


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"names": "{box}.{ext}"}, id="one-document-per-folder"),
        pytest.param({"names": "{box}.{ext}", "output": "avatars/u-{uid}/"}, id="capture-with-text"),
        pytest.param({"names": "{stem}_{box}.{ext}", "document": "pictures/{stem}"}, id="stem-in-names"),
        pytest.param({"names": "{box}.{ext}", "output": "p/{stem}/{uid}/", "document": "u/{uid}/p/{stem}"},
                     id="stem-folder"),
    ],
)  # fmt: skip
def test_names_without_generation_are_accepted_where_outputs_name_their_document(changes: dict[str, Any]) -> None:
    assert not avatar(**changes).names.has_generation


GALLERY: dict[str, Any] = {
    "name": "gallery",
    "match": "products/{productId}/images/{file}",
    "document": "products/{productId}/images/{stem}",
    "field": "image",
    "output": "thumbs/{productId}/",
    "variants": {"thumb": 320},
}
PICTURES: dict[str, Any] = GALLERY | {
    "name": "pictures",
    "match": "users/{uid}/pictures/{file}",
    "document": "users/{uid}/pictures/{stem}",
    "output": "thumbs/{uid}/",
    "names": "{stem}_{box}.{ext}",
}


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        pytest.param(
            GALLERY | {"names": "{stem}_{box}.{ext}"},
            PICTURES,
            "route 'pictures': names: '{stem}_{box}.{ext}' in 'thumbs/{uid}/' and route 'gallery''s "
            "'{stem}_{box}.{ext}' in 'thumbs/{productId}/' could both write 'thumbs/a/a_320x320.webp'",
            id="both-without-generation",
        ),
        pytest.param(
            GALLERY | {"variants": {"a_320x320": 320}},
            PICTURES,
            "route 'pictures': names: '{stem}_{box}.{ext}' in 'thumbs/{uid}/' and route 'gallery''s "
            "'{stem}-{generation}-{variant}.{ext}' in 'thumbs/{productId}/' could both write "
            "'thumbs/a/a-1-a_320x320.webp'",
            id="default-names-could-spell-it",
        ),
        pytest.param(
            PICTURES,
            GALLERY | {"variants": {"a_320x320": 320}},
            "route 'pictures': names: '{stem}_{box}.{ext}' in 'thumbs/{uid}/' and route 'gallery''s",
            id="the-one-without-generation-is-named",
        ),
    ],
)
def test_a_route_that_overwrites_outputs_another_route_could_write_is_refused(first, second, message) -> None:
    error = refusal(first, second)

    assert message in str(error)
    assert "without {generation} an upload overwrites what is there: give each route an output folder" in str(error)
    assert (error.key, error.other_key) == ("names", "output")


@pytest.mark.parametrize(
    "second",
    [
        pytest.param(PICTURES | {"output": "pictures/{uid}/"}, id="another-folder"),
        pytest.param(PICTURES | {"output": "thumbs/{uid}/p/"}, id="deeper"),
        pytest.param(GALLERY | {"name": "g2", "match": "g2/{productId}/{file}"}, id="both-with-generation"),
        pytest.param(PICTURES | {"variants": {"thumb": 256}}, id="other-boxes"),
    ],
)
def test_routes_whose_outputs_cannot_share_a_name_are_accepted(second: dict[str, Any]) -> None:
    first = GALLERY | {"names": "{stem}_{box}.{ext}"} if second.get("name") == "pictures" else GALLERY

    routes = parse_routes({"route": [first, second]}, LIMITS).routes

    assert [route.name for route in routes] == [first["name"], second["name"]]


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        pytest.param(("a", "b"), ("a", "b"), "ab", id="equal-characters"),
        pytest.param(("a",), ("b",), None, id="different-characters"),
        pytest.param((frozenset("xy"), "z"), ("y", "y", "z"), "yyz", id="run-takes-two"),
        pytest.param((frozenset("xy"),), ("x", frozenset("0")), None, id="disjoint-sets"),
        pytest.param((frozenset("ab"), "."), (frozenset("b"), frozenset("c."), "."), None, id="run-needs-one"),
        pytest.param((), (), "", id="both-empty"),
        pytest.param(("a",), (), None, id="one-empty"),
    ],
)
def test_common_name_finds_a_text_both_shapes_fit(first, second, expected) -> None:
    assert common_name(first, second) == expected


TEMPLATE_PIECES = ("{stem}", "{generation}", "{variant}", "{box}", "_", "-", ".", "x", "1")
VARIANT_SPECS = st.dictionaries(
    st.from_regex(r"[a-c][a-c1_-]{0,3}", fullmatch=True), st.sampled_from([1, 11, 64, 164]), min_size=2, max_size=3
)


def colliding_stems(route: Route) -> list[str]:
    """Stems made to take the place of what follows or precedes a stem: `a` and `1`, bare or joined to a piece of
    a variant name or a box (`a_b`, `a1`, `ab_c`, ...), the stems an output of another variant could be mistaken for."""
    pieces = {""}
    for variant in route.imaging.variants:
        width, height = variant.box
        for value in (variant.name, f"{width}x{height}"):
            pieces |= {value[:end] for end in range(1, len(value) + 1)} | {value[start:] for start in range(len(value))}
    joined = {base + join + piece for base in ("a", "1") for join in ("", "_", "-", "x", "1") for piece in pieces}
    return sorted({clean_stem(stem) for stem in joined})


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.sampled_from(TEMPLATE_PIECES), min_size=1, max_size=6, unique=True), variants=VARIANT_SPECS)
def test_accepted_names_never_give_two_outputs_one_name(pieces: list[str], variants: dict[str, int]) -> None:
    """Outputs of two uploads (each its own generation, as Cloud Storage gives) share a name only when the names have
    no {generation} and both uploads have one stem, so one document: a re-upload that replaces the other's."""
    text = "".join(pieces) + ".{ext}"
    try:
        route = avatar(names=text, variants=variants, document="users/{uid}/pictures/{stem}")
    except RouteError:
        return
    made: dict[str, tuple[Any, ...]] = {}
    for index, stem in enumerate(colliding_stems(route)):
        generation = 1712345678900000 + index
        for variant, output_format in itertools.product(route.imaging.variants, (OutputFormat.WEBP, OutputFormat.JPEG)):
            name = route.output_path({"uid": "u1", "stem": stem}, generation, variant.name, output_format.extension)
            output = (generation if route.names.has_generation else stem, variant.name, output_format)
            assert made.setdefault(name, output) == output, (text, name)


# --- The use case on in-memory ports: names without {generation} are overwritten by a new upload only ---------------

BUCKET = "app.appspot.com"
NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
STABLE = avatar(names="{stem}_{box}.{ext}", formats=["webp"], variants={"small": 256, "tiny": 64}, missing="create")
STABLE_SETTINGS = dataclasses.replace(Settings(), routes=(STABLE,))


class World:
    """The fakes, with the one route above."""

    def __init__(self, make_variants: Any = fake_make_variants) -> None:
        self.objects, self.documents = MemoryObjects(), MemoryDocuments()
        self.deps = Dependencies(self.objects, self.documents, make_variants, lambda: NOW)

    def upload(self, data: bytes, name: str = "users/u1/avatar/me.png") -> Upload:
        generation = self.objects.put(BUCKET, name, data)
        resource = {"bucket": BUCKET, "name": name, "generation": str(generation), "size": str(len(data))}
        upload = classify("event", NOW.isoformat(), resource, STABLE_SETTINGS.routes)
        assert isinstance(upload, Upload)
        return upload

    def run(self, upload: Upload) -> Outcome:
        return handle_upload(upload, STABLE_SETTINGS.policy, self.deps, Trace())

    def outputs(self) -> dict[str, StoredObject]:
        return {name: stored for (_, name), stored in self.objects.objects.items() if name.startswith("avatars/")}


def test_a_new_upload_overwrites_the_outputs_in_place_and_keeps_their_urls() -> None:
    world = World()
    first = world.upload(b"first image")
    assert world.run(first) is Outcome.COMPLETE
    before = world.outputs()
    urls = {
        name: variant["url"] for name, variant in world.documents.documents["users/u1"]["avatar"]["variants"].items()
    }

    second = world.upload(b"second image")
    assert world.run(second) is Outcome.COMPLETE

    after = world.outputs()
    manifest = world.documents.documents["users/u1"]["avatar"]
    assert sorted(after) == sorted(before) == ["avatars/u1/me_256x256.webp", "avatars/u1/me_64x64.webp"]
    assert manifest["source"]["generation"] == str(second.generation)
    assert {name: variant["url"] for name, variant in manifest["variants"].items()} == urls
    for name, stored in after.items():
        assert stored.data != before[name].data and b"second" in stored.data
        assert (stored.token, stored.source_generation) == (before[name].token, second.generation)
        assert stored.cache_control == SHORT_CACHE_CONTROL


def test_a_retry_of_a_generation_rewrites_nothing_and_an_older_one_never_overwrites_a_newer() -> None:
    world = World()
    older, newer = world.upload(b"older image"), world.upload(b"newer image")
    older_variants = fake_make_variants(b"older image", STABLE.imaging).variants
    newer_variants = fake_make_variants(b"newer image", STABLE.imaging).variants

    written = store_variants(newer, newer_variants, world.objects)
    objects = world.outputs()
    retried = store_variants(newer, newer_variants, world.objects)  # an attempt that failed after its uploads
    late = store_variants(older, older_variants, world.objects)  # the older generation's event, delivered late

    assert world.outputs() == objects
    assert retried == late == written
    assert all(b"newer" in stored.data for stored in objects.values())


def test_every_variant_is_stored_under_its_own_name_even_when_a_larger_one_has_fewer_bytes() -> None:
    def thumbnail_heavier(data: bytes, options: ImagingOptions) -> ProcessedImage:
        made = fake_make_variants(data, options)
        sizes = {"small": 100, "tiny": 5000}  # the tiny variant would repeat the small one on other routes
        return dataclasses.replace(made, variants=tuple(
            dataclasses.replace(variant, encodings=tuple(
                dataclasses.replace(encoded, data=b"x" * sizes[variant.name]) for encoded in variant.encodings))
            for variant in made.variants))  # fmt: skip

    world = World(thumbnail_heavier)
    world.run(world.upload(b"image"))

    variants = world.documents.documents["users/u1"]["avatar"]["variants"]
    assert {name: (variant["path"], "sameAs" in variant) for name, variant in variants.items()} == {
        "small": ("avatars/u1/me_256x256.webp", False),
        "tiny": ("avatars/u1/me_64x64.webp", False),
    }
