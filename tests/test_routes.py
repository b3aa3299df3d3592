"""Routes: patterns, templates and the routes file; every refusal names the route and the key."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from image_pipeline.errors import ConfigurationError
from image_pipeline.options import Encoding, Fit, ImagingOptions, OutputFormat, Variant
from image_pipeline.routes import (
    DEFAULT_CACHE_CONTROL,
    DeleteOriginal,
    Mirror,
    MissingDocument,
    Pattern,
    Route,
    Template,
    check_table,
    clean_stem,
)
from image_pipeline.routes_file import RouteError, load_routes, parse_routes
from image_pipeline.settings import Settings

LIMITS = ImagingOptions()
REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "routes.md"
EXAMPLES = REPO / "examples" / "routes.toml"

# The issue's example, verbatim apart from its comments: the format is a contract.
EXAMPLE = """
[[route]]
name = "showcase"
match = "raw-uploads/{uid}/{characterId}/{file}"
document = "characters/{characterId}"
field = "visuals.showcase"
require = { "meta.userId" = "{uid}" }
missing = "wait"
owner = "{uid}"
output = "showcase-images/{uid}/{characterId}/"
formats = ["webp"]
quality = 80
MIRROR
[route.variants]
thumb = 256
medium = 1024
large = 2048
""".replace(
    "MIRROR",
    'mirror = { status = "visuals.showcaseProcessingStatus", url = "visuals.showcaseImageUrl", '
    'ready = "visuals.isShowcaseProcessed" }',
)

# The smallest valid route; each refusal below changes one thing in it.
BASE: dict[str, Any] = {
    "name": "showcase",
    "match": "raw-uploads/{uid}/{characterId}/{file}",
    "document": "characters/{characterId}",
    "field": "visuals.showcase",
    "output": "showcase-images/{uid}/{characterId}/",
    "variants": {"thumb": 256},
}
REMOVE = object()
USER_ID = "require.meta.userId:"
SQUARE = {"box": "256x256"}


def route_table(**changes: Any) -> dict[str, Any]:
    """BASE with keys changed (or removed with REMOVE)."""
    table = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is REMOVE:
            del table[key]
        else:
            table[key] = value
    return table


def parse_one(**changes: Any) -> Route:
    (route,) = parse_routes({"route": [route_table(**changes)]}, LIMITS, source="routes.toml").routes
    return route


def refusal(document: dict[str, Any]) -> str:
    with pytest.raises(RouteError) as raised:
        parse_routes(document, LIMITS, source="routes.toml")
    message = str(raised.value)
    assert message.startswith("routes.toml: "), message
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------------------------------
# Refusals of one route's keys: (changes, the key the message names, a fragment saying what is wrong)


def R(changes: dict[str, Any], key: str, problem: str, name: str) -> Any:
    return pytest.param(changes, key, problem, id=name)


ROUTE_REFUSALS = [
    # unknown keys
    R({"size": 256}, "'size'", "unknown key", "unknown-key"),
    R({"format": ["webp"]}, "'format'", "unknown key", "unknown-key-near-miss"),
    R({"Name": "x"}, "'Name'", "unknown key", "unknown-key-case"),
    # missing keys
    R({"match": REMOVE}, "'match'", "missing key", "missing-match"),
    R({"document": REMOVE}, "'document'", "missing key", "missing-document"),
    R({"field": REMOVE}, "'field'", "missing key", "missing-field"),
    R({"output": REMOVE}, "'output'", "missing key", "missing-output"),
    R({"variants": REMOVE}, "'variants'", "missing key", "missing-variants"),
    # name
    R({"name": "Showcase"}, "name:", "1-32 of a-z 0-9 -", "name-uppercase"),
    R({"name": "show_case"}, "name:", "1-32 of a-z 0-9 -", "name-underscore"),
    R({"name": "a" * 33}, "name:", "1-32 of a-z 0-9 -", "name-too-long"),
    R({"name": "show case"}, "name:", "1-32 of a-z 0-9 -", "name-space"),
    R({"name": ""}, "name:", "non-empty string", "name-empty"),
    R({"name": 7}, "name:", "non-empty string", "name-not-a-string"),
    # match
    R({"match": "raw-uploads/{uid}/{characterId}/photo.jpg"}, "match:", "last segment", "match-literal-last"),
    R({"match": "raw-uploads/{uid}/{characterId}/"}, "match:", "segment ''", "match-ends-with-slash"),
    R({"match": "raw/{file}/{file}"}, "match:", "once", "match-duplicate-capture"),
    R({"match": "raw/{uid}/{uid}/{file}"}, "match:", "once", "match-duplicate-folder-capture"),
    R({"match": "raw/{stem}/{file}"}, "match:", "{stem} is reserved", "match-stem-folder"),
    R({"match": "raw/{uid}/{stem}"}, "match:", "{stem} is reserved", "match-stem-file"),
    R({"match": "raw/u-{uid}/{file}"}, "match:", "exactly one {capture}", "match-literal-and-capture"),
    R({"match": "raw/{uid}{cid}/{file}"}, "match:", "must be {name}", "match-two-captures"),
    R({"match": "raw/{uid/{file}"}, "match:", "exactly one {capture}", "match-unclosed-brace"),
    R({"match": "raw/{1uid}/{file}"}, "match:", "must be {name}", "match-capture-digit-first"),
    R({"match": "raw/{user-id}/{file}"}, "match:", "must be {name}", "match-capture-dash"),
    R({"match": "raw/{}/{file}"}, "match:", "must be {name}", "match-capture-empty"),
    R({"match": "raw/{" + "a" * 33 + "}/{file}"}, "match:", "must be {name}", "match-capture-too-long"),
    R({"match": "raw//{file}"}, "match:", "segment ''", "match-empty-segment"),
    R({"match": "/raw/{file}"}, "match:", "segment ''", "match-leading-slash"),
    R({"match": "raw/../{file}"}, "match:", "dot segment", "match-dot-dot"),
    R({"match": "raw/./{file}"}, "match:", "dot segment", "match-dot"),
    R({"match": "raw uploads/{file}"}, "match:", "A-Z a-z 0-9 _ . -", "match-space"),
    R({"match": "raw*/{file}"}, "match:", "A-Z a-z 0-9 _ . -", "match-wildcard"),
    R({"match": ""}, "match:", "non-empty string", "match-empty"),
    R({"match": ["raw", "{file}"]}, "match:", "non-empty string", "match-not-a-string"),
    # document
    R({"document": "characters/{nope}"}, "document:", "unknown placeholder {nope}", "document-unknown"),
    R({"document": "characters/{file}"}, "document:", "unknown placeholder {file}", "document-file-name"),
    R({"document": "characters"}, "document:", "even number", "document-one-segment"),
    R({"document": "a/{uid}/b"}, "document:", "even number", "document-three-segments"),
    R({"document": "characters/{characterId}/"}, "document:", "even number", "document-trailing-slash"),
    R({"document": "a//b/{uid}"}, "document:", "even number", "document-empty-segment"),
    R({"document": 3}, "document:", "non-empty string", "document-not-a-string"),
    # field
    R({"field": "visuals..showcase"}, "field:", "dotted field path", "field-empty-part"),
    R({"field": "visuals."}, "field:", "dotted field path", "field-trailing-dot"),
    R({"field": "1visuals"}, "field:", "dotted field path", "field-digit-first"),
    R({"field": "visuals/showcase"}, "field:", "dotted field path", "field-slash"),
    R({"field": "visuals.{uid}"}, "field:", "dotted field path", "field-placeholder"),
    R({"field": ""}, "field:", "dotted field path", "field-empty"),
    # output
    R({"output": "showcase-images/{uid}"}, "output:", "ending in '/'", "output-no-trailing-slash"),
    R({"output": "/showcase-images/"}, "output:", "ending in '/'", "output-leading-slash"),
    R({"output": "showcase//{uid}/"}, "output:", "no empty segment", "output-empty-segment"),
    R({"output": "thumbs/{nope}/"}, "output:", "unknown placeholder {nope}", "output-unknown"),
    R({"output": "thumbs/{file}/"}, "output:", "unknown placeholder {file}", "output-file-name"),
    R({"output": ""}, "output:", "non-empty string", "output-empty"),
    R({"output": "thumbs/a b/"}, "output:", "folder 'a b'", "output-space"),
    R({"output": "thumbs/../{uid}/"}, "output:", "folder '..'", "output-dot-dot"),
    R({"output": "thumbs/#{uid}/"}, "output:", "folder '#{uid}'", "output-hash"),
    # require
    R({"require": {"meta.userId": "{nope}"}}, USER_ID, "unknown placeholder {nope}", "require-unknown"),
    R({"require": {"meta.userId": "{file}"}}, USER_ID, "unknown placeholder {file}", "require-file-name"),
    R({"require": {"meta..userId": "{uid}"}}, "require.meta..userId:", "dotted field path", "require-bad-path"),
    R({"require": {"meta.userId": 5}}, USER_ID, "non-empty string", "require-not-a-string"),
    R({"require": {"meta.userId": ""}}, USER_ID, "non-empty string", "require-empty"),
    R({"require": "{uid}"}, "require:", "must be a table", "require-not-a-table"),
    # missing
    R({"missing": "sometimes"}, "missing:", '"wait", "create"', "missing-unknown"),
    R({"missing": True}, "missing:", '"wait", "create"', "missing-bool"),
    R({"missing": "create", "require": {"meta.userId": "{uid}"}}, "missing:", "first uploader", "create-with-require"),
    # owner
    R({"owner": "uid"}, "owner:", "one capture", "owner-no-braces"),
    R({"owner": "{nope}"}, "owner:", "not a capture", "owner-unknown"),
    R({"owner": "{file}"}, "owner:", "not a capture", "owner-file-name"),
    R({"owner": "{stem}"}, "owner:", "not a capture", "owner-stem"),
    R({"owner": ""}, "owner:", "non-empty string", "owner-empty"),
    # formats
    R({"formats": "webp"}, "formats:", "non-empty list", "formats-not-a-list"),
    R({"formats": []}, "formats:", "non-empty list", "formats-empty"),
    R({"formats": ["bmp"]}, "formats:", "'bmp' is not one of", "formats-unknown"),
    # GIF and TIFF: the core writes them for extension routes; a route names only the web formats.
    R({"formats": ["webp", "gif"]}, "formats:", "'gif' is not one of webp, avif, jpeg, png", "formats-gif"),
    R({"formats": ["tiff"]}, "formats:", "'tiff' is not one of webp, avif, jpeg, png", "formats-tiff"),
    R({"formats": ["WEBP"]}, "formats:", "'WEBP' is not one of", "formats-uppercase"),
    R({"formats": ["jpg"]}, "formats:", "'jpg' is not one of", "formats-extension"),
    R({"formats": ["webp", "avif", "webp"]}, "formats:", "once", "formats-duplicate"),
    # quality
    R({"quality": 0}, "quality:", "1 to 100", "quality-zero"),
    R({"quality": 101}, "quality:", "1 to 100", "quality-too-high"),
    R({"quality": 80.5}, "quality:", "1-100 or a table", "quality-fraction"),
    R({"quality": "high"}, "quality:", "1-100 or a table", "quality-word"),
    R({"quality": True}, "quality:", "1-100 or a table", "quality-bool"),
    R({"formats": ["avif", "webp"], "quality": {"avif": 0}}, "quality.avif:", "1 to 100", "quality-table-zero"),
    R({"formats": ["avif", "webp"], "quality": {"webp": 101}}, "quality.webp:", "1 to 100", "quality-table-high"),
    R({"quality": {"webp": "80"}}, "quality.webp:", "1 to 100", "quality-table-text"),
    R({"formats": ["webp", "png"], "quality": {"png": 90}}, "quality.png:", "lossless", "quality-png"),
    R({"formats": ["webp"], "quality": {"avif": 50}}, "quality.avif:", "not in formats", "quality-format-not-listed"),
    R({"quality": {"gif": 50}}, "quality.gif:", "not in formats", "quality-unknown-format"),
    # variants
    R({"variants": {}}, "variants:", "must be a table", "variants-empty"),
    R({"variants": [256]}, "variants:", "must be a table", "variants-not-a-table"),
    R({"variants": {"Thumb": 256}}, "variants.Thumb:", "variant name", "variant-name-uppercase"),
    R({"variants": {"1x": 256}}, "variants.1x:", "variant name", "variant-name-digit-first"),
    R({"variants": {"a.b": 256}}, "variants.a.b:", "variant name", "variant-name-dot"),
    R({"variants": {"a" * 33: 256}}, "variants." + "a" * 33 + ":", "variant name", "variant-name-too-long"),
    R({"variants": {"thumb": 0}}, "variants.thumb:", "1 to 16384", "variant-zero-pixels"),
    R({"variants": {"thumb": -5}}, "variants.thumb:", "1 to 16384", "variant-negative-pixels"),
    R({"variants": {"thumb": 16385}}, "variants.thumb:", "1 to 16384", "variant-too-large"),
    R({"variants": {"thumb": True}}, "variants.thumb:", "must be pixels", "variant-bool"),
    R({"variants": {"thumb": 256.5}}, "variants.thumb:", "must be pixels", "variant-fraction"),
    R({"variants": {"thumb": "256"}}, "variants.thumb:", "must be pixels", "variant-text"),
    R({"variants": {"thumb": {"fit": "cover"}}}, "variants.thumb:", "must be pixels", "variant-no-box"),
    R({"variants": {"thumb": {**SQUARE, "crop": "mid"}}}, "variants.thumb:", "must be pixels", "variant-unknown-key"),
    R({"variants": {"thumb": {"box": "256"}}}, "variants.thumb.box:", "WIDTHxHEIGHT", "box-one-number"),
    R({"variants": {"thumb": {"box": "256X256"}}}, "variants.thumb.box:", "WIDTHxHEIGHT", "box-capital-x"),
    R({"variants": {"thumb": {"box": "0x256"}}}, "variants.thumb.box:", "WIDTHxHEIGHT", "box-zero"),
    R({"variants": {"thumb": {"box": "256x16385"}}}, "variants.thumb.box:", "WIDTHxHEIGHT", "box-too-large"),
    R({"variants": {"thumb": {"box": " 256x256"}}}, "variants.thumb.box:", "WIDTHxHEIGHT", "box-space"),
    R({"variants": {"thumb": {"box": 256}}}, "variants.thumb.box:", "WIDTHxHEIGHT", "box-number"),
    R({"variants": {"thumb": {**SQUARE, "fit": "fill"}}}, "variants.thumb.fit:", '"inside" or "cover"', "fit-fill"),
    R({"variants": {"thumb": {**SQUARE, "fit": "Cover"}}}, "variants.thumb.fit:", '"inside" or "cover"', "fit-case"),
    # background, keep_animation, delete_original, cache_control
    R({"background": "white"}, "background:", "#ffffff", "background-word"),
    R({"background": "#fff"}, "background:", "#ffffff", "background-short"),
    R({"background": "#gggggg"}, "background:", "#ffffff", "background-not-hex"),
    R({"background": "ffffff"}, "background:", "#ffffff", "background-no-hash"),
    R({"background": 0xFFFFFF}, "background:", "#ffffff", "background-number"),
    R({"keep_animation": "yes"}, "keep_animation:", "true or false", "keep-animation-text"),
    R({"keep_animation": 1}, "keep_animation:", "true or false", "keep-animation-number"),
    R({"delete_original": "always"}, "delete_original:", '"never", "on_success"', "delete-original-word"),
    R({"delete_original": True}, "delete_original:", '"never", "on_success"', "delete-original-bool"),
    R({"cache_control": ""}, "cache_control:", "non-empty string", "cache-control-empty"),
    R({"cache_control": 3600}, "cache_control:", "non-empty string", "cache-control-number"),
    # mirror
    R({"mirror": "visuals.url"}, "mirror:", "must be a table", "mirror-not-a-table"),
    R({"mirror": {"done": "visuals.done"}}, "mirror.done:", "unknown key", "mirror-unknown-key"),
    R({"mirror": {"status": "visuals..status"}}, "mirror.status:", "dotted field path", "mirror-bad-path"),
    R({"mirror": {"url": 5}}, "mirror.url:", "dotted field path", "mirror-not-a-string"),
    R({"mirror": {"ready": ""}}, "mirror.ready:", "dotted field path", "mirror-empty"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "key", "problem"), ROUTE_REFUSALS)
def test_a_bad_route_is_refused_with_a_message_naming_the_route_and_the_key(changes, key, problem) -> None:
    table = route_table(**changes)

    message = refusal({"route": [table]})

    assert f"route {table['name']!r}: " in message
    assert key in message
    assert problem in message


def test_a_route_without_a_name_is_named_by_its_position() -> None:
    message = refusal({"route": [BASE, route_table(name=REMOVE, match="other/{file}", output="o/")]})

    assert "route '#2'" in message
    assert "missing key 'name'" in message


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        pytest.param({"route": [BASE], "version": 2}, "unknown top-level key 'version'", id="unknown-top-level-key"),
        pytest.param({"routes": [BASE]}, "unknown top-level key 'routes'", id="routes-plural"),
        pytest.param({"route": BASE}, "array of tables", id="single-table"),
        pytest.param({"route": "showcase"}, "array of tables", id="route-is-text"),
        pytest.param({"route": [BASE, 5]}, "array of tables", id="route-item-not-a-table"),
        pytest.param({}, "no routes", id="empty-file"),
        pytest.param({"route": []}, "no routes", id="empty-array"),
    ],
)
def test_a_bad_file_shape_is_refused(document, problem) -> None:
    assert problem in refusal(document)


def test_two_routes_with_one_name_are_refused() -> None:
    other = route_table(match="avatars/{uid}/{file}", document="users/{uid}", output="avatar-images/{uid}/")

    message = refusal({"route": [BASE, other]})

    assert "route 'showcase': name: used by more than one route" in message


LOOPS = [
    pytest.param([route_table(output="raw-uploads/{uid}/{characterId}/")], id="output-is-the-source-folder"),
    pytest.param([route_table(output="raw-uploads/thumbs/{uid}/")], id="output-fits-the-captures"),
    pytest.param([route_table(output="raw-uploads/{characterId}/{uid}/")], id="captures-swapped"),
    pytest.param([route_table(output="raw-uploads/{uid}/t/")], id="literal-where-a-capture-is"),
    pytest.param([route_table(output="raw-uploads/{uid}/{stem}/")], id="stem-as-a-folder"),
    pytest.param([route_table(output="raw-uploads/u-{uid}/x_{characterId}/")], id="literal-plus-placeholder"),
    pytest.param([route_table(output="{uid}/{characterId}/{stem}/")], id="placeholder-where-a-literal-is"),
    pytest.param(
        [route_table(match="{uid}/{file}", document="users/{uid}", output="thumbs/")],
        id="source-starting-with-a-capture",
    ),
    pytest.param(
        [
            route_table(name="a", match="a/{x}/{file}", document="d/{x}", output="b/{x}/"),
            route_table(name="b", match="b/{y}/{file}", document="e/{y}", output="c/{y}/"),
        ],
        id="into-another-route",
    ),
    pytest.param(
        [
            route_table(name="a", match="a/{x}/{file}", document="d/{x}", output="o/{x}/"),
            route_table(name="b", match="{p}/{q}/{file}", document="e/{q}", output="p/{q}/x/"),
        ],
        id="into-a-later-all-capture-route",
    ),
]


@pytest.mark.parametrize("tables", LOOPS)
def test_a_table_whose_outputs_could_be_sources_is_refused(tables) -> None:
    message = refusal({"route": tables})

    assert "output" in message
    assert "would trigger the function again" in message
    assert re.search(r"route '[a-z-]+': output '[^']+' could match route '[a-z-]+''s match", message), message


@pytest.mark.parametrize(
    "outputs",
    [
        pytest.param(["showcase-images/{uid}/{characterId}/"], id="separate-folder"),
        pytest.param(["raw-uploads/{uid}/{characterId}/thumbs/"], id="deeper-inside-the-source-folder"),
        pytest.param(["raw-uploads/{uid}/"], id="shallower-inside-the-source-folder"),
        pytest.param(["raw-uploads/{uid}/thumbs.d/"], id="dot-where-captures-take-none"),
        pytest.param(["raw-uploads.out/{uid}/{characterId}/"], id="literal-differs-by-suffix"),
    ],
)
def test_outputs_that_cannot_be_sources_are_accepted(outputs) -> None:
    (route,) = parse_routes({"route": [route_table(output=outputs[0])]}, LIMITS).routes

    assert route.output.text == outputs[0]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param("[[route]\nname = 'x'\n", "not valid TOML", id="bad-table-header"),
        pytest.param('[[route]]\nname = "x"\nname = "y"\n', "not valid TOML", id="duplicate-key"),
        pytest.param(
            "[[route]]\n[route.variants]\nthumb = 256\nthumb = 512\n", "not valid TOML", id="duplicate-variant"
        ),
        pytest.param(b"\xff\xfe", "not valid TOML", id="not-utf-8"),
    ],
)
def test_a_file_that_is_not_toml_is_refused_naming_the_file(tmp_path: Path, content, problem) -> None:
    path = tmp_path / "routes.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())

    with pytest.raises(RouteError) as raised:
        load_routes(path, LIMITS)

    assert str(raised.value).startswith(f"ROUTES_FILE {str(path)!r}: {problem}")


@pytest.mark.parametrize("name", ["missing.toml", "."], ids=["missing", "a-folder"])
def test_an_unreadable_file_is_refused_naming_the_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name

    with pytest.raises(RouteError) as raised:
        load_routes(path, LIMITS)

    assert str(raised.value).startswith(f"ROUTES_FILE {str(path)!r}: cannot read it: ")


def test_a_route_error_is_a_configuration_error() -> None:
    assert issubclass(RouteError, ConfigurationError)


# ---------------------------------------------------------------------------------------------------------------------
# What a valid file means


def test_the_issues_example_is_read_as_written(tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(EXAMPLE)

    (route,) = load_routes(path, LIMITS).routes

    assert route == Route(
        name="showcase",
        match=Pattern.parse("raw-uploads/{uid}/{characterId}/{file}"),
        document=Template("characters/{characterId}"),
        field="visuals.showcase",
        output=Template("showcase-images/{uid}/{characterId}/"),
        imaging=ImagingOptions(
            variants=(Variant("thumb", 256), Variant("medium", 1024), Variant("large", 2048)),
            encodings=(Encoding(OutputFormat.WEBP, 80),),
        ),
        require=MappingProxyType({"meta.userId": Template("{uid}")}),
        missing=MissingDocument.WAIT,
        owner="uid",
        mirror=Mirror(
            status="visuals.showcaseProcessingStatus",
            url="visuals.showcaseImageUrl",
            ready="visuals.isShowcaseProcessed",
        ),
        cache_control=DEFAULT_CACHE_CONTROL,
        delete_original=DeleteOriginal.NEVER,
    )


def test_the_built_in_route_is_the_examples_showcase_route() -> None:
    (example,) = parse_routes(_toml(EXAMPLE), Settings().limits).routes

    assert Settings().routes == (example,)
    builtin = Settings().routes[0]
    for key in ("name", "match", "document", "field", "require", "mirror", "output", "owner", "missing", "imaging"):
        assert getattr(builtin, key) == getattr(example, key), key


def test_the_built_in_route_follows_the_prefix_and_collection_settings() -> None:
    settings = Settings.from_env(
        {"SOURCE_PREFIX": "in/uploads/", "OUTPUT_PREFIX": "out/", "FIRESTORE_COLLECTION": "things"}
    )

    (route,) = settings.routes

    assert (route.match.text, route.output.text, route.document.text) == (
        "in/uploads/{uid}/{characterId}/{file}",
        "out/{uid}/{characterId}/",
        "things/{characterId}",
    )


@pytest.mark.parametrize(
    ("formats", "quality", "expected"),
    [
        pytest.param(None, None, {"webp": 80}, id="default-webp"),
        pytest.param(["avif", "webp", "jpeg"], None, {"avif": 50, "webp": 80, "jpeg": 80}, id="per-format-defaults"),
        pytest.param(["avif", "webp"], {"avif": 40}, {"avif": 40, "webp": 80}, id="table-overrides-one"),
        pytest.param(["jpeg", "webp"], {"jpeg": 90, "webp": 70}, {"jpeg": 90, "webp": 70}, id="table-overrides-all"),
        pytest.param(["avif", "webp"], 65, {"avif": 65, "webp": 65}, id="one-number-for-all"),
        pytest.param(["png", "webp"], None, {"png": 100, "webp": 80}, id="png-lossless"),
        pytest.param(["webp"], 1, {"webp": 1}, id="lowest"),
        pytest.param(["webp"], 100, {"webp": 100}, id="highest"),
    ],
)
def test_qualities_default_per_format(formats, quality, expected) -> None:
    changes = {key: value for key, value in (("formats", formats), ("quality", quality)) if value is not None}

    route = parse_one(**changes)

    assert {encoding.format.value: encoding.quality for encoding in route.imaging.encodings} == expected
    assert route.imaging.primary.format.value == next(iter(expected))


def test_variants_keep_their_order_box_and_fit() -> None:
    route = parse_one(
        variants={
            "large": 2048,
            "square": {"box": "256x256", "fit": "cover"},
            "banner": {"box": "1200x400"},
            "tall": {"box": "300x16384", "fit": "inside"},
        }
    )

    assert route.imaging.variants == (
        Variant("large", 2048),
        Variant("square", 256, 256, Fit.COVER),
        Variant("banner", 1200, 400, Fit.INSIDE),
        Variant("tall", 300, 16384, Fit.INSIDE),
    )


def test_optional_keys_are_read() -> None:
    route = parse_one(
        cache_control="public, max-age=60",
        delete_original="on_success",
        keep_animation=True,
        background="#1A2b3c",
        missing="create",
        owner="{uid}",
        mirror={"url": "avatarUrl"},
    )

    assert (route.cache_control, route.delete_original, route.missing) == (
        "public, max-age=60",
        DeleteOriginal.ON_SUCCESS,
        MissingDocument.CREATE,
    )
    assert (route.imaging.keep_animation, route.imaging.background) == (True, (0x1A, 0x2B, 0x3C))
    assert (route.owner, route.mirror) == ("uid", Mirror(url="avatarUrl"))


def test_limits_are_shared_and_route_keys_are_defaulted() -> None:
    limits = ImagingOptions(max_pixels=1234, max_frames=7, max_decode_mib=99, encode_threads=3, keep_animation=True)

    (route,) = parse_routes({"route": [BASE]}, limits).routes

    assert route.imaging == ImagingOptions(
        variants=(Variant("thumb", 256),), max_pixels=1234, max_frames=7, max_decode_mib=99, encode_threads=3,
        keep_animation=True,
    )  # fmt: skip
    assert (route.require, route.missing, route.owner, route.mirror) == ({}, MissingDocument.WAIT, None, Mirror())


def test_the_stem_may_name_a_document_per_image() -> None:
    route = parse_one(match="products/{productId}/images/{file}", document="products/{productId}/images/{stem}",
                      output="product-images/{productId}/", missing="create")  # fmt: skip

    captures = route.match.match("products/p1/images/Front View.JPG")

    assert captures is not None
    assert route.document.render(route.values(captures, captures["file"])) == "products/p1/images/Front_View"


def test_routes_are_kept_in_file_order() -> None:
    routes = parse_routes(
        {
            "route": [
                route_table(name=name, match=f"{name}/{{id}}/{{file}}", document="d/{id}", output=f"{name}-out/")
                for name in "cab"
            ]
        },
        LIMITS,
    ).routes

    assert [route.name for route in routes] == ["c", "a", "b"]


def test_every_toml_example_in_the_docs_is_a_valid_routes_file() -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)

    assert blocks
    for block in blocks:
        assert parse_routes(_toml(block), LIMITS)


def _toml(text: str) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(text)


# ---------------------------------------------------------------------------------------------------------------------
# Patterns and templates


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("raw-uploads/u/c/x.jpg", {"uid": "u", "characterId": "c", "file": "x.jpg"}, id="plain"),
        pytest.param(
            "raw-uploads/u/c/My Photo (1).JPG",
            {"uid": "u", "characterId": "c", "file": "My Photo (1).JPG"},
            id="file-name-with-spaces",
        ),
        pytest.param("raw-uploads/u/c/.hidden", {"uid": "u", "characterId": "c", "file": ".hidden"}, id="dot-file"),
        pytest.param(
            f"raw-uploads/{'u' * 128}/c/x", {"uid": "u" * 128, "characterId": "c", "file": "x"}, id="long-capture"
        ),
        pytest.param("raw-uploads/u/c/", None, id="folder-placeholder"),
        pytest.param("raw-uploads/u/c/..", None, id="dot-dot-file"),
        pytest.param("raw-uploads/u/c/.", None, id="dot-file-name"),
        pytest.param("raw-uploads/u/c/x\ty", None, id="control-character"),
        pytest.param("raw-uploads/u/c", None, id="too-few-segments"),
        pytest.param("raw-uploads/u/c/d/x", None, id="too-many-segments"),
        pytest.param("Raw-uploads/u/c/x", None, id="literal-case"),
        pytest.param("raw-uploads/u.v/c/x", None, id="dot-in-capture"),
        pytest.param(f"raw-uploads/{'u' * 129}/c/x", None, id="capture-too-long"),
        pytest.param("raw-uploads/u\n/c/x", None, id="newline-in-capture"),
        pytest.param("raw-uploads//c/x", None, id="empty-capture"),
    ],
)
def test_a_pattern_matches_whole_names_only(name: str, expected) -> None:
    assert Pattern.parse("raw-uploads/{uid}/{characterId}/{file}").match(name) == expected


@pytest.mark.parametrize(
    ("text", "prefix", "file_capture"),
    [
        ("raw-uploads/{uid}/{characterId}/{file}", "raw-uploads/", "file"),
        ("a/b.c/{x}/d/{name}", "a/b.c/", "name"),
        ("{uid}/{file}", "", "file"),
        ("{file}", "", "file"),
    ],
)
def test_a_pattern_knows_its_listing_prefix_and_file_capture(text: str, prefix: str, file_capture: str) -> None:
    pattern = Pattern.parse(text)

    assert (pattern.literal_prefix, pattern.file_capture) == (prefix, file_capture)


def test_a_template_renders_its_placeholders() -> None:
    template = Template("out/u-{uid}/{stem}.d/")

    assert template.placeholders() == ("uid", "stem")
    assert template.render({"uid": "A_1", "stem": "pic"}) == "out/u-A_1/pic.d/"
    assert template.as_pattern().fullmatch("out/u-A_1/pic.d/")
    assert not template.as_pattern().fullmatch("out/u-A.1/pic.d/")
    assert not template.as_pattern().fullmatch("out/u-/pic.d/")


@pytest.mark.parametrize(
    ("file_name", "stem"),
    [
        ("photo.jpg", "photo"),
        ("My Photo (1).JPG", "My_Photo_1"),
        ("archive.tar.gz", "archive_tar"),
        (".hidden", "hidden"),
        ("no-extension", "no-extension"),
        ("???.png", "image"),
        ("é.png", "image"),
        ("a" * 100 + ".png", "a" * 64),
    ],
)
def test_the_stem_is_the_cleaned_file_name(file_name: str, stem: str) -> None:
    assert clean_stem(file_name) == stem


def test_output_file_names_are_stem_generation_variant_extension_by_default() -> None:
    route = parse_one(variants={"thumb": 256})

    assert route.output_path({"uid": "u", "characterId": "c", "stem": "pic"}, 17, "thumb", "webp") == (
        "showcase-images/u/c/pic-17-thumb.webp"
    )


def test_an_empty_table_is_refused_directly() -> None:
    with pytest.raises(ConfigurationError, match="no routes"):
        check_table(())


def test_the_docs_first_example_is_examples_routes_toml() -> None:
    first = re.findall(r"```toml\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)[0]

    assert parse_routes(_toml(first), LIMITS) == load_routes(EXAMPLES, LIMITS)
