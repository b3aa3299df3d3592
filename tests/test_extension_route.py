"""Extension routes in a routes file: parsing, errors naming the route and key, loop checks, and the output plan."""

from __future__ import annotations

from typing import Any

import pytest

from image_pipeline.errors import RouteError
from image_pipeline.extension.route import ExtensionRoute
from image_pipeline.options import Fit, Gravity, ImagingOptions, OutputFormat
from image_pipeline.routes_file import parse_routes

LIMITS = ImagingOptions()
OURS = {
    "name": "avatars",
    "match": "users/{uid}/avatar/{file}",
    "document": "users/{uid}",
    "field": "avatar",
    "output": "avatars/{uid}/",
    "variants": {"small": 256},
}


def extension(**params: Any) -> dict[str, Any]:
    return {"name": "resize", "extension": "storage-resize-images", **params}


def only_extension(**params: Any) -> ExtensionRoute:
    (route,) = parse_routes({"route": [extension(**params)]}, LIMITS).extensions
    return route


def test_an_extension_route_sits_beside_ours_in_one_file() -> None:
    table = parse_routes({"route": [OURS, extension(INCLUDE_PATH_LIST="/images")]}, LIMITS)

    assert [route.name for route in table.routes] == ["avatars"]
    assert [route.name for route in table.extensions] == ["resize"]


@pytest.mark.parametrize(
    ("table", "key", "says"),
    [
        pytest.param(extension(name="Resize!"), "name", "1-32 of a-z 0-9 -", id="bad instance id"),
        pytest.param({**extension(), "extension": "storage-resize-videos"}, "extension", "storage-resize-images",
                     id="another extension"),
        pytest.param(extension(IMG_SIZES="200"), "IMG_SIZES", "IMG_SIZES", id="bad size"),
        pytest.param(extension(IMG_SIZES=200), "IMG_SIZES", "must be a string", id="not a string"),
        pytest.param(extension(match="a/{file}"), "match", "not a parameter", id="a key of ours"),
        pytest.param(extension(CONTENT_FILTER_LEVEL="BLOCK_ONLY_HIGH"), "CONTENT_FILTER_LEVEL", "no counterpart",
                     id="content filter"),
        pytest.param(extension(SHARP_OPTIONS='{"fit": "fill"}'), "SHARP_OPTIONS", "fit", id="fit fill"),
        pytest.param(extension(FUNCTION_MEMORY="1024"), "FUNCTION_MEMORY", "deploy.sh", id="deployment"),
        pytest.param(extension(EVENTARC_CHANNEL="firebase"), "EVENTARC_CHANNEL", "GOOGLE_CLOUD_PROJECT",
                     id="channel without a project"),
    ],
)  # fmt: skip
def test_errors_name_the_route_and_the_parameter(table: dict[str, Any], key: str, says: str) -> None:
    with pytest.raises(RouteError) as raised:
        parse_routes({"route": [table]}, LIMITS, source="routes.toml")

    assert raised.value.key == key
    assert str(raised.value).startswith("routes.toml: route ")
    assert says in str(raised.value)


def test_names_are_unique_across_both_kinds() -> None:
    with pytest.raises(RouteError, match="used by more than one route"):
        parse_routes({"route": [OURS, extension(name="avatars")]}, LIMITS)


@pytest.mark.parametrize(
    ("params", "loops"),
    [
        pytest.param({}, True, id="outputs beside every upload"),
        pytest.param({"RESIZED_IMAGES_PATH": "thumbs"}, False, id="a folder deeper than the match"),
        pytest.param({"INCLUDE_PATH_LIST": "/images"}, False, id="included elsewhere"),
        pytest.param({"INCLUDE_PATH_LIST": "/users"}, True, id="included where the match is"),
        pytest.param({"INCLUDE_PATH_LIST": "/users/*/photos"}, True, id="a wildcard: assumed to reach"),
        pytest.param({"RESIZED_IMAGES_PATH": "avatar", "INCLUDE_PATH_LIST": "/users"}, True, id="into the folder"),
        pytest.param({"RESIZED_IMAGES_PATH": "../avatar", "INCLUDE_PATH_LIST": "/images"}, True, id="climbing out"),
        pytest.param({"RESIZED_IMAGES_PATH": "thumbs", "FAILED_IMAGES_PATH": "failed"}, False, id="failed deeper"),
    ],
)
def test_outputs_that_a_route_of_ours_could_take_are_refused(params: dict[str, str], loops: bool) -> None:
    document = {"route": [OURS, extension(**params)]}
    if not loops:
        assert parse_routes(document, LIMITS).extensions
        return
    with pytest.raises(RouteError, match="would trigger the function again") as raised:
        parse_routes(document, LIMITS)
    assert raised.value.key in ("RESIZED_IMAGES_PATH", "FAILED_IMAGES_PATH")


def test_failed_copies_a_route_could_take_are_refused() -> None:
    document = {"route": [OURS, extension(RESIZED_IMAGES_PATH="thumbs", FAILED_IMAGES_PATH="avatar",
                                          INCLUDE_PATH_LIST="/users")]}  # fmt: skip
    with pytest.raises(RouteError) as raised:
        parse_routes(document, LIMITS)
    assert raised.value.key == "FAILED_IMAGES_PATH"


def test_the_plan_is_every_type_at_every_size_in_the_extensions_order() -> None:
    route = only_extension(IMG_SIZES="200x200,400x300", IMAGE_TYPE="avif,false,jpeg",
                           SHARP_OPTIONS='{"fit": "cover", "position": "top"}',
                           OUTPUT_OPTIONS='{"jpeg": {"quality": 70}, "avif": {"quality": 40}}')  # fmt: skip

    plan = route.plan("p/a.png", "image/png")

    assert [(output.path, output.content_type) for output in plan.outputs] == [
        ("p/a_200x200.avif", "image/avif"),
        ("p/a_400x300.avif", "image/avif"),
        ("p/a_200x200.png", "image/png"),
        ("p/a_400x300.png", "image/png"),
        ("p/a_200x200.jpeg", "image/jpeg"),
        ("p/a_400x300.jpeg", "image/jpeg"),
    ]
    assert [(encoding.format, encoding.quality, encoding.still) for encoding in plan.imaging.encodings] == [
        (OutputFormat.AVIF, 40, True),
        (OutputFormat.PNG, 100, True),
        (OutputFormat.JPEG, 70, True),
    ]
    assert [(variant.name, variant.box, variant.fit, variant.gravity) for variant in plan.imaging.variants] == [
        ("200x200", (200, 200), Fit.COVER, Gravity.NORTH),
        ("400x300", (400, 300), Fit.COVER, Gravity.NORTH),
    ]
    assert not plan.imaging.placeholder  # nothing would record it


@pytest.mark.parametrize(
    ("name", "content_type", "path", "output_type", "output_format"),
    [
        ("a.gif", "image/gif", "a_200x200.gif", "image/gif", OutputFormat.GIF),
        ("a.tif", "image/tiff", "a_200x200.tif", "image/tiff", OutputFormat.TIFF),
        ("a.jpg", "image/jpg", "a_200x200.jpg", "image/jpg", OutputFormat.JPEG),
        ("a.heic", "image/heic", "a.heic_200x200", "image/jpeg", OutputFormat.JPEG),
    ],
)
def test_keeping_the_original_type(
    name: str, content_type: str, path: str, output_type: str, output_format: OutputFormat
) -> None:
    (output,) = only_extension().plan(name, content_type).outputs

    assert (output.path, output.content_type, output.format) == (path, output_type, output_format)


def test_one_object_named_twice_is_written_once() -> None:
    plan = only_extension(IMAGE_TYPE="false,jpeg").plan("x.jpeg", "image/jpeg")

    assert len(plan.outputs) == 2
    assert [output.path for output in plan.objects] == ["x_200x200.jpeg"]


def test_animation_is_kept_only_in_gif_and_webp() -> None:
    plan = only_extension(IMAGE_TYPE="gif,webp,png").plan("a.gif", "image/gif")

    assert plan.imaging.keep_animation
    assert {encoding.format: encoding.still for encoding in plan.imaging.encodings} == {
        OutputFormat.GIF: False,
        OutputFormat.WEBP: False,
        OutputFormat.PNG: True,
    }
    assert not only_extension(IS_ANIMATED="false").plan("a.gif", "image/gif").imaging.keep_animation


def test_the_channel_takes_the_project_and_the_source_names_the_instance() -> None:
    (route,) = parse_routes(
        {"route": [extension(EVENTARC_CHANNEL="locations/us-west1/channels/firebase",
                             EXT_SELECTED_EVENTS="firebase.extensions.storage-resize-images.v1.onSuccess")]},
        LIMITS,
        project="my-project",
    ).extensions  # fmt: skip

    assert route.publishing is not None
    assert route.publishing.channel == "projects/my-project/locations/us-west1/channels/firebase"
    assert route.publishing.source == "projects/my-project/instances/resize"
    assert route.publishing.allowed == {"firebase.extensions.storage-resize-images.v1.onSuccess"}


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("images/cat.jpg", "takes it (image/jpeg) and writes:"),
        ("images/thumbs/cat_200x200.jpg", "has the shape of this route's outputs"),
        ("images/cat_200x200.jpg", "takes it"),  # beside the upload, not in RESIZED_IMAGES_PATH: an upload's name
    ],
)
def test_explain_tells_an_upload_from_an_output_by_its_shape(name: str, says: str) -> None:
    from image_pipeline.extension.route import explain

    route = only_extension(RESIZED_IMAGES_PATH="thumbs")

    (first, *_) = explain(route, {"name": name, "contentType": "image/jpeg"})

    assert says in first
