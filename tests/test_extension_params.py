"""extension/params.py: the table of the Resize Images extension's parameters, and ExtensionParams read from an
extension route's string values: declared defaults, extension.yaml's validation examples (spec 2.1), the content
filter's refusal, and the SHARP_OPTIONS and OUTPUT_OPTIONS tables."""

from __future__ import annotations

import re

import pytest

from image_pipeline.errors import ConfigurationError
from image_pipeline.extension.params import (
    OUTPUT_OPTION_RULES,
    PARAMS,
    PARAMS_BY_NAME,
    SHARP_OPTION_RULES,
    DeleteOriginalFile,
    EventSettings,
    ExtensionParams,
    Gravity,
    ImageType,
    ParamError,
    ParamKind,
    Size,
)
from image_pipeline.options import Fit

ON_SUCCESS = "firebase.extensions.storage-resize-images.v1.onSuccess"
ON_ERROR = "firebase.extensions.storage-resize-images.v1.onError"
CHANNEL = "projects/demo-x/locations/us-west1/channels/firebase"

# extension.yaml 0.3.3's params and their declared defaults ("" where none is declared).
DECLARED_DEFAULTS = {
    "IMG_BUCKET": "${STORAGE_BUCKET}",
    "IMG_SIZES": "200x200",
    "DELETE_ORIGINAL_FILE": "false",
    "MAKE_PUBLIC": "false",
    "RESIZED_IMAGES_PATH": "",
    "INCLUDE_PATH_LIST": "",
    "EXCLUDE_PATH_LIST": "",
    "FAILED_IMAGES_PATH": "",
    "CACHE_CONTROL_HEADER": "",
    "IMAGE_TYPE": "false",
    "OUTPUT_OPTIONS": "",
    "SHARP_OPTIONS": "",
    "IS_ANIMATED": "true",
    "FUNCTION_MEMORY": "1024",
    "REGENERATE_TOKEN": "true",
    "CONTENT_FILTER_LEVEL": "OFF",
    "CUSTOM_FILTER_PROMPT": "",
    "PLACEHOLDER_IMAGE_PATH": "",
}
KINDS = {
    ParamKind.DEPLOYMENT: {
        "FUNCTION_MEMORY",
        "LOCATION",
        "firebaseextensions.v1beta.function/location",
        "DO_BACKFILL",
        "BACKFILL_BATCH_SIZE",
        "IMG_BUCKET",
    },
    ParamKind.EVENTS: {"EVENTARC_CHANNEL", "ALLOWED_EVENT_TYPES", "EXT_SELECTED_EVENTS", "EVENTARC_CLOUD_EVENT_SOURCE"},
    ParamKind.UNSUPPORTED: {"CONTENT_FILTER_LEVEL", "CUSTOM_FILTER_PROMPT", "PLACEHOLDER_IMAGE_PATH"},
}
ROUTE_PARAMS = [param.name for param in PARAMS if param.kind is not ParamKind.DEPLOYMENT]


def refusal(values: dict[str, object]) -> ParamError:
    with pytest.raises(ParamError) as raised:
        ExtensionParams.from_mapping(values)
    assert "\n" not in str(raised.value)
    return raised.value


# ---------------------------------------------------------------------------------------------------------------------
# The table


@pytest.mark.parametrize(("name", "default"), DECLARED_DEFAULTS.items())
def test_every_parameter_of_extension_yaml_is_in_the_table_with_its_declared_default(name: str, default: str) -> None:
    assert PARAMS_BY_NAME[name].default == default


@pytest.mark.parametrize(("kind", "names"), KINDS.items(), ids=[kind.value for kind in KINDS])
def test_parameters_are_classed_as_the_issue_says(kind: ParamKind, names: set[str]) -> None:
    assert names <= {param.name for param in PARAMS if param.kind is kind}


def test_the_other_parameters_of_extension_yaml_are_behaviour() -> None:
    classed = set().union(*KINDS.values())
    assert {name for name in DECLARED_DEFAULTS if name not in classed} == {
        param.name for param in PARAMS if param.kind is ParamKind.BEHAVIOUR
    }


@pytest.mark.parametrize("param", PARAMS, ids=[param.name for param in PARAMS])
def test_each_parameter_says_in_one_line_what_it_takes_and_means(param) -> None:
    assert param.accepts and param.meaning
    assert "\n" not in param.accepts + param.meaning


@pytest.mark.parametrize(
    "param", [param for param in PARAMS if param.default and "$" not in param.default], ids=lambda param: param.name
)
def test_each_declared_default_is_a_value_of_its_parameter(param) -> None:
    param.check(param.default)


@pytest.mark.parametrize(
    "param", [param for param in PARAMS if param.kind is ParamKind.DEPLOYMENT], ids=lambda param: param.name
)
def test_deployment_parameters_are_no_route_keys(param) -> None:
    error = refusal({param.name: "x"})
    assert error.param == param.name
    assert str(error).startswith(f"{param.name} is a deployment setting, not a key of a route")
    assert param.deploy_flag in str(error)


def test_a_deployment_flag_names_deploy_sh_s_own() -> None:
    flags = {param.name: param.deploy_flag for param in PARAMS if param.deploy_flag}
    assert flags["FUNCTION_MEMORY"] == "--memory"
    assert flags["LOCATION"] == flags["firebaseextensions.v1beta.function/location"] == "--region"
    assert flags["IMG_BUCKET"] == "--bucket"


# ---------------------------------------------------------------------------------------------------------------------
# Defaults: unset or empty means extension.yaml's declared default


def test_nothing_set_gives_extension_yaml_s_defaults_not_the_code_s_fallbacks() -> None:
    params = ExtensionParams.from_mapping({})
    assert params == ExtensionParams()
    assert params.sizes == (Size("200x200", 200, 200),)
    assert params.image_types == (ImageType.ORIGINAL,)  # the code's fallback would make no output at all
    assert params.delete_original is DeleteOriginalFile.NEVER  # the code's fallback: on_success
    assert params.animated is True  # the code's fallback: false
    assert params.regenerate_token is True  # the code's fallback: false
    assert params.make_public is False
    assert (params.fit, params.position, dict(params.qualities)) == (Fit.INSIDE, Gravity.CENTRE, {})
    assert params.events == EventSettings(None, None, None)


@pytest.mark.parametrize("name", [name for name in ROUTE_PARAMS if not PARAMS_BY_NAME[name].keeps_empty])
def test_an_empty_value_means_the_default(name: str) -> None:
    assert ExtensionParams.from_mapping({name: ""}) == ExtensionParams()


@pytest.mark.parametrize(
    ("value", "expected"), [("", ()), (ON_SUCCESS, (ON_SUCCESS,)), (f"{ON_SUCCESS},{ON_ERROR}", (ON_SUCCESS, ON_ERROR))]
)
@pytest.mark.parametrize("name", ["ALLOWED_EVENT_TYPES", "EXT_SELECTED_EVENTS"])
def test_an_empty_event_list_selects_no_event_and_an_unset_one_every_event(name, value, expected) -> None:
    events = ExtensionParams.from_mapping({"EVENTARC_CHANNEL": CHANNEL, name: value}).events
    assert events == EventSettings(CHANNEL, expected, None)


def test_the_manifest_s_and_the_runtime_s_event_lists_must_agree() -> None:
    agreeing = {"ALLOWED_EVENT_TYPES": f"{ON_SUCCESS},{ON_ERROR}", "EXT_SELECTED_EVENTS": f"{ON_ERROR},{ON_SUCCESS}"}
    assert ExtensionParams.from_mapping(agreeing).events.types == (ON_SUCCESS, ON_ERROR)
    error = refusal({"ALLOWED_EVENT_TYPES": ON_SUCCESS, "EXT_SELECTED_EVENTS": ON_ERROR})
    assert error.param == "EXT_SELECTED_EVENTS"
    assert "ALLOWED_EVENT_TYPES" in str(error)


# ---------------------------------------------------------------------------------------------------------------------
# Values as extension.yaml validates them (spec 2.1's examples)


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("IMG_SIZES", "200x200", True),
        ("IMG_SIZES", "200x200,400x300", True),
        ("IMG_SIZES", "200X200", False),
        ("IMG_SIZES", "200x200, 400x400", False),
        ("IMG_SIZES", "200", False),
        ("INCLUDE_PATH_LIST", "/users/avatars,/design/pictures", True),
        ("INCLUDE_PATH_LIST", "/users/*/pictures", True),
        ("INCLUDE_PATH_LIST", "/c++", True),
        ("INCLUDE_PATH_LIST", "/", False),
        ("INCLUDE_PATH_LIST", "users/x", False),
        ("INCLUDE_PATH_LIST", "/a,/b,", False),
        ("INCLUDE_PATH_LIST", "/a/", False),
        ("INCLUDE_PATH_LIST", "/a, /b", False),
        ("EXCLUDE_PATH_LIST", "/users/*/pictures", True),
        ("EXCLUDE_PATH_LIST", "/a, /b", False),
        ("FAILED_IMAGES_PATH", "failed", True),
        ("FAILED_IMAGES_PATH", "fail/ed", False),
        ("FAILED_IMAGES_PATH", "../x", False),
        ("FAILED_IMAGES_PATH", "a.b", False),
        ("PLACEHOLDER_IMAGE_PATH", "placeholders/blocked-content.jpg", True),
        ("PLACEHOLDER_IMAGE_PATH", "placeholders/blocked.svg", False),
        ("DELETE_ORIGINAL_FILE", "maybe", False),
        ("MAKE_PUBLIC", "TRUE", False),
        ("IMAGE_TYPE", "webp,jpeg", True),
        ("IMAGE_TYPE", "jpg", True),
        ("IMAGE_TYPE", "heic", False),
        ("IMAGE_TYPE", "webp, jpeg", False),
        ("CONTENT_FILTER_LEVEL", "BLOCK_EVERYTHING", False),
        ("EVENTARC_CHANNEL", "firebase", True),
        ("EVENTARC_CHANNEL", "locations/us-central1/channels/firebase", True),
        ("EVENTARC_CHANNEL", "channels/firebase", False),
        ("EVENTARC_CLOUD_EVENT_SOURCE", "projects/demo-x/instances/storage-resize-images", True),
        ("ALLOWED_EVENT_TYPES", "firebase.extensions.storage-resize-images.v1.complete", True),
        ("ALLOWED_EVENT_TYPES", "firebase.extensions.storage-resize-images.v1.onFinish", False),
        ("CACHE_CONTROL_HEADER", "max-age=86400", True),
        ("CACHE_CONTROL_HEADER", "max-age=1\r\nX-Injected: 1", False),
    ],
)
def test_values_are_validated_as_extension_yaml_does(name: str, value: str, accepted: bool) -> None:
    if accepted:
        ExtensionParams.from_mapping({name: value})
        return
    error = refusal({name: value})
    assert error.param == name
    assert str(error) == f"{name} takes {PARAMS_BY_NAME[name].accepts}; got {value!r}"


def test_a_zero_size_passes_extension_yaml_but_is_refused_here() -> None:
    PARAMS_BY_NAME["IMG_SIZES"].check("0x0")  # the extension installs it, then fails that size on every upload
    assert str(refusal({"IMG_SIZES": "200x200,0x0"})) == "IMG_SIZES: '0x0': each side must be at least 1 pixel"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("400x300", (Size("400x300", 400, 300),)),
        ("200x200,200x200,680x680", (Size("200x200", 200, 200), Size("680x680", 680, 680))),
        ("0200x200", (Size("0200x200", 200, 200),)),  # the spelling stays: it names the outputs
    ],
)
def test_sizes_keep_their_spelling_and_drop_repeats(text: str, expected: tuple[Size, ...]) -> None:
    assert ExtensionParams.from_mapping({"IMG_SIZES": text}).sizes == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("webp", (ImageType.WEBP,)),
        ("false,jpeg", (ImageType.ORIGINAL, ImageType.JPEG)),
        ("avif,webp,avif", (ImageType.AVIF, ImageType.WEBP)),
        ("jpg,tif", (ImageType.JPG, ImageType.TIF)),
    ],
)
def test_image_types(text: str, expected: tuple[ImageType, ...]) -> None:
    assert ExtensionParams.from_mapping({"IMAGE_TYPE": text}).image_types == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("false", DeleteOriginalFile.NEVER),
        ("true", DeleteOriginalFile.ALWAYS),
        ("on_success", DeleteOriginalFile.ON_SUCCESS),
    ],
)
def test_delete_original_file(value: str, expected: DeleteOriginalFile) -> None:
    assert ExtensionParams.from_mapping({"DELETE_ORIGINAL_FILE": value}).delete_original is expected


def test_paths_lists_and_texts() -> None:
    params = ExtensionParams.from_mapping(
        {
            "INCLUDE_PATH_LIST": "/users/avatars,/users/*/pictures",
            "EXCLUDE_PATH_LIST": "/users/avatars/thumbs",
            "RESIZED_IMAGES_PATH": "thumbnails",
            "FAILED_IMAGES_PATH": "failed",
            "CACHE_CONTROL_HEADER": "max-age=86400",
            "MAKE_PUBLIC": "true",
            "REGENERATE_TOKEN": "false",
        }
    )
    assert params.include_paths == ("/users/avatars", "/users/*/pictures")
    assert params.exclude_paths == ("/users/avatars/thumbs",)
    assert (params.resized_images_path, params.failed_images_path) == ("thumbnails", "failed")
    assert (params.cache_control, params.make_public, params.regenerate_token) == ("max-age=86400", True, False)


# ---------------------------------------------------------------------------------------------------------------------
# Unknown names, wrong types, the content filter


def test_an_unknown_parameter_is_refused_by_name() -> None:
    error = refusal({"IMG_SIZES": "200x200", "IMG_SIZE": "200x200"})
    assert (error.param, str(error)) == ("IMG_SIZE", "'IMG_SIZE' is not a parameter of the Resize Images extension")


def test_a_value_that_is_not_a_string_is_refused() -> None:
    error = refusal({"IS_ANIMATED": True})
    assert str(error) == "IS_ANIMATED must be a string, as the .env spells it; got True"


def test_errors_are_configuration_errors() -> None:
    assert issubclass(ParamError, ConfigurationError)


@pytest.mark.parametrize("level", ["BLOCK_ONLY_HIGH", "BLOCK_MEDIUM_AND_ABOVE", "BLOCK_LOW_AND_ABOVE"])
def test_a_content_filter_level_other_than_off_is_refused_saying_why(level: str) -> None:
    error = refusal({"CONTENT_FILTER_LEVEL": level})
    assert error.param == "CONTENT_FILTER_LEVEL"
    assert str(error).startswith(f"CONTENT_FILTER_LEVEL={level!r} has no counterpart here: ")
    assert "Gemini" in str(error) and "only OFF is accepted" in str(error)


def test_a_custom_filter_prompt_is_refused_saying_why() -> None:
    error = refusal({"CUSTOM_FILTER_PROMPT": "Does this image contain a cat?"})
    assert str(error).startswith("CUSTOM_FILTER_PROMPT='Does this image contain a cat?' has no counterpart here: ")
    assert str(error).endswith("leave it empty")


def test_the_content_filter_off_with_a_placeholder_is_accepted() -> None:
    values = {"CONTENT_FILTER_LEVEL": "OFF", "CUSTOM_FILTER_PROMPT": "", "PLACEHOLDER_IMAGE_PATH": "p/blocked.png"}
    assert ExtensionParams.from_mapping(values) == ExtensionParams()


# ---------------------------------------------------------------------------------------------------------------------
# SHARP_OPTIONS


@pytest.mark.parametrize(
    ("text", "fit", "position", "animated"),
    [
        pytest.param('{"fastShrinkOnLoad": false, "position": "centre", "fit": "inside"}', Fit.INSIDE,
                     Gravity.CENTRE, True, id="extension.yaml's example, straight quotes"),
        pytest.param('{"fit":"cover", "position": "top", "animated": false}', Fit.COVER, Gravity.NORTH, True,
                     id="the emulator's .env.local (IS_ANIMATED=true wins over animated false)"),
        pytest.param('{"fit": "cover", "position": "left bottom"}', Fit.COVER, Gravity.SOUTHWEST, True, id="position"),
        pytest.param('{"position": "center"}', Fit.INSIDE, Gravity.CENTRE, True, id="center"),
        pytest.param('{"position": "northeast"}', Fit.INSIDE, Gravity.NORTHEAST, True, id="gravity"),
        pytest.param('{"withoutEnlargement": true, "failOnError": false, "failOn": "none", "limitInputPixels": '
                     '268402689, "sequentialRead": true, "kernel": "lanczos3"}', Fit.INSIDE, Gravity.CENTRE, True,
                     id="options that change nothing"),
        pytest.param("{}", Fit.INSIDE, Gravity.CENTRE, True, id="empty"),
    ],
)  # fmt: skip
def test_sharp_options_taken(text: str, fit: Fit, position: Gravity, animated: bool) -> None:
    params = ExtensionParams.from_mapping({"SHARP_OPTIONS": text})
    assert (params.fit, params.position, params.animated) == (fit, position, animated)


@pytest.mark.parametrize(
    ("sharp_animated", "is_animated", "expected"),
    [("true", "false", True), ("false", "false", False), ("false", "true", True), (None, "false", False)],
)
def test_animation_is_kept_if_sharp_options_or_is_animated_say_so(sharp_animated, is_animated, expected) -> None:
    sharp = "{}" if sharp_animated is None else f'{{"animated": {sharp_animated}}}'
    params = ExtensionParams.from_mapping({"SHARP_OPTIONS": sharp, "IS_ANIMATED": is_animated})
    assert params.animated is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"fit": "contain"}', 'SHARP_OPTIONS: fit "contain" has no counterpart here; it takes inside or cover'),
        ('{"fit": "fill"}', 'SHARP_OPTIONS: fit "fill" has no counterpart here'),
        ('{"fit": "outside"}', 'SHARP_OPTIONS: fit "outside" has no counterpart here'),
        ('{"position": "attention"}', 'SHARP_OPTIONS: position "attention" has no counterpart here'),
        ('{"position": 16}', "SHARP_OPTIONS: position 16 has no counterpart here"),
        ('{"withoutEnlargement": false}', "SHARP_OPTIONS: withoutEnlargement false has no counterpart here"),
        ('{"animated": 1}', "SHARP_OPTIONS: animated 1 has no counterpart here; it takes true or false"),
        ('{"kernel": "nearest"}', 'SHARP_OPTIONS: kernel "nearest" has no counterpart here'),
        ('{"width": 100}', "SHARP_OPTIONS: width has no counterpart here (taken: fit, position, animated,"),
        ('{"background": "#fff"}', "SHARP_OPTIONS: background has no counterpart here"),
        ("[]", "SHARP_OPTIONS must be a JSON object"),
        ('{"fit": "cover",}', "SHARP_OPTIONS must be a JSON object, like "),
    ],
)
def test_sharp_options_without_a_counterpart_are_refused_by_name(text: str, message: str) -> None:
    error = refusal({"SHARP_OPTIONS": text})
    assert error.param == "SHARP_OPTIONS"
    assert str(error).startswith(message)


def test_extension_yaml_s_own_example_with_typographic_quotes_is_refused_with_a_hint() -> None:
    example = '{ "fastShrinkOnLoad": false, "position": “centre”, "fit": "inside" }'
    error = refusal({"SHARP_OPTIONS": example})
    assert str(error).startswith("SHARP_OPTIONS must be a JSON object")
    assert str(error).endswith(
        "(it has typographic quotes “ ”, as extension.yaml's own example does: use straight ones)"
    )


def test_every_sharp_option_rule_says_what_it_takes_and_does() -> None:
    assert {"fit", "position", "animated", "fastShrinkOnLoad", "failOnError", "failOn"} <= set(SHARP_OPTION_RULES)
    assert all(rule.accepts and rule.here for rule in SHARP_OPTION_RULES.values())


# ---------------------------------------------------------------------------------------------------------------------
# OUTPUT_OPTIONS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"jpeg": {"quality": 5, "chromaSubsampling": "4:2:0"}}', {ImageType.JPEG: 5}),
        ('{"webp": {"quality": 82, "effort": 4}, "avif": {"quality": 45.0}}', {ImageType.WEBP: 82, ImageType.AVIF: 45}),
        (
            '{"jpg": {"quality": 90, "progressive": true}, "tiff": {"quality": 70}}',
            {ImageType.JPG: 90, ImageType.TIFF: 70},
        ),
        ('{"png": {"compressionLevel": 9}}', {}),
        ('{"gif": {"pallete": true}}', {}),  # the extension converts to GIF without options: ignored there too
        ("{}", {}),
    ],
)
def test_output_options_map_quality_per_format(text: str, expected: dict[ImageType, int]) -> None:
    assert dict(ExtensionParams.from_mapping({"OUTPUT_OPTIONS": text}).qualities) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"png": {"palette": true}}', "OUTPUT_OPTIONS: png.palette true has no counterpart here; it takes false"),
        ('{"png": {"quality": 50}}', "OUTPUT_OPTIONS: png.quality has no counterpart here (taken for png: "),
        (
            '{"jpeg": {"mozjpeg": true}}',
            "OUTPUT_OPTIONS: jpeg.mozjpeg has no counterpart here (taken for jpeg: quality,",
        ),
        (
            '{"jpeg": {"chromaSubsampling": "4:4:4"}}',
            'OUTPUT_OPTIONS: jpeg.chromaSubsampling "4:4:4" has no counterpart',
        ),
        ('{"webp": {"lossless": true}}', "OUTPUT_OPTIONS: webp.lossless true has no counterpart here; it takes false"),
        ('{"webp": {"quality": 0}}', "OUTPUT_OPTIONS: webp.quality 0 has no counterpart here; it takes a whole number"),
        ('{"avif": {"quality": 101}}', "OUTPUT_OPTIONS: avif.quality 101 has no counterpart here"),
        ('{"avif": {"quality": 50.5}}', "OUTPUT_OPTIONS: avif.quality 50.5 has no counterpart here"),
        ('{"avif": {"quality": true}}', "OUTPUT_OPTIONS: avif.quality true has no counterpart here"),
        ('{"tiff": {"compression": "lzw"}}', "OUTPUT_OPTIONS: tiff.compression has no counterpart here"),
        ('{"heif": {"quality": 50}}', "OUTPUT_OPTIONS: 'heif' is not a format (formats: jpeg, jpg, webp, avif, png,"),
        ('{"webp": 80}', 'OUTPUT_OPTIONS: webp must be an object of options, like {"quality": 80}'),
        ('{"jpeg": {"quality": 5, "chromaSubsampling": "4:4:4 }}', "OUTPUT_OPTIONS must be a JSON object"),
    ],
)
def test_output_options_without_a_faithful_mapping_are_refused_by_name(text: str, message: str) -> None:
    error = refusal({"OUTPUT_OPTIONS": text})
    assert error.param == "OUTPUT_OPTIONS"
    assert str(error).startswith(message)


def test_the_output_option_table_covers_the_extension_s_format_keys() -> None:
    assert set(OUTPUT_OPTION_RULES) == {"jpeg", "jpg", "png", "webp", "avif", "tiff", "tif", "gif"}
    assert all("quality" in rules for key, rules in OUTPUT_OPTION_RULES.items() if rules and key != "png")


def test_an_error_names_the_parameter_first() -> None:
    for values in ({"IMG_SIZES": "1"}, {"OUTPUT_OPTIONS": "{"}, {"SHARP_OPTIONS": '{"fit": "fill"}'}):
        error = refusal(values)
        assert re.match(rf"{error.param}\b", str(error))
