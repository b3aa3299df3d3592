"""Settings.from_env: every variable parsed into a typed value or refused with a message naming it; frozen."""

from __future__ import annotations

import dataclasses

import pytest

from image_pipeline.errors import ConfigurationError
from image_pipeline.options import ImagingOptions, OutputFormat, Variant
from image_pipeline.settings import Settings


def _limit(name):
    """A getter for one of the shared imaging limits."""
    return lambda settings: getattr(settings.limits, name)


def _route(name):
    """A getter for one ImagingOptions field of the built-in route."""
    return lambda settings: getattr(settings.routes[0].imaging, name)


def _at(path):
    """A getter for a dotted attribute path of a Settings, enum members compared by value."""

    def get(settings):
        value = settings
        for name in path.split("."):
            value = getattr(value, name)
        return getattr(value, "value", value)

    return get


# The CUTOUT_ variables are set together (all three or none): each is tried beside valid values of the other two.
CUTOUT = {
    "CUTOUT_FAMILY": "isnet",
    "CUTOUT_MODEL_URI": "gs://{bucket}/models/isnet-anime.onnx",
    "CUTOUT_MODEL_SHA256": "ab" * 32,
}


def _cutout(name):
    """A getter for one field of the built-in route's CutoutSpec, enum members compared by value."""

    def get(settings):
        value = getattr(settings.routes[0].cutout, name)
        return getattr(value, "value", value)

    return get


def _environment(key, raw):
    """`key` set to `raw`, beside the other CUTOUT_ variables when it is one of them."""
    return {**(CUTOUT if key in CUTOUT else {}), key: raw}


GETTERS = {
    "VARIANTS": _route("variants"),
    "OUTPUT_FORMAT": lambda settings: settings.routes[0].imaging.primary.format,
    "QUALITY": lambda settings: settings.routes[0].imaging.primary.quality,
    "MAX_INPUT_BYTES": _limit("max_input_bytes"),
    "MAX_PIXELS": _limit("max_pixels"),
    "MAX_FRAMES": _limit("max_frames"),
    "MAX_DECODE_MIB": _limit("max_decode_mib"),
    "KEEP_ANIMATION": _route("keep_animation"),
    "ENCODE_THREADS": _limit("encode_threads"),
    "SOURCE_PREFIX": lambda settings: settings.routes[0].match.literal_prefix,
    "OUTPUT_PREFIX": lambda settings: settings.routes[0].output.text.split("{")[0],
    "FIRESTORE_COLLECTION": lambda settings: settings.routes[0].document.text.split("/")[0],
    "URL_MODE": _at("policy.urls.mode"),
    "DELETE_ORIGINAL": lambda settings: settings.routes[0].delete_original.value,
    "MAX_EVENT_AGE_S": _at("policy.max_event_age_s"),
    "RETRY_WINDOW_S": _at("policy.retry_window_s"),
    "CLIENT_TIMEOUT_S": _at("client_timeout_s"),
    "CLIENT_RETRY_S": _at("client_retry_s"),
    "DOWNLOAD_URL_BASE": _at("policy.urls.download_base"),
    "PUBLIC_URL_BASE": _at("policy.urls.public_base"),
    "LOG_LEVEL": _at("log_level"),
    "WARM_UP": _at("warm_up"),
    "CUTOUT_FAMILY": _cutout("family"),
    "CUTOUT_MODEL_URI": _cutout("uri"),
    "CUTOUT_MODEL_SHA256": _cutout("sha256"),
    "ROUTES_FILE": lambda settings: tuple(route.name for route in settings.routes),
}

VALID = [
    ("VARIANTS", "thumb:256", (Variant("thumb", 256),)),
    ("VARIANTS", "b:100,a:50", (Variant("b", 100), Variant("a", 50))),
    (
        "VARIANTS",
        "thumb:256, medium:1024 ,large:2048",
        (Variant("thumb", 256), Variant("medium", 1024), Variant("large", 2048)),
    ),
    ("OUTPUT_FORMAT", "webp", OutputFormat.WEBP),
    ("OUTPUT_FORMAT", "avif", OutputFormat.AVIF),
    ("OUTPUT_FORMAT", "jpeg", OutputFormat.JPEG),
    ("OUTPUT_FORMAT", "png", OutputFormat.PNG),
    ("QUALITY", "1", 1),
    ("QUALITY", "80", 80),
    ("QUALITY", "100", 100),
    ("MAX_INPUT_BYTES", "1", 1),
    ("MAX_INPUT_BYTES", "1048576", 1048576),
    ("MAX_PIXELS", "1000", 1000),
    ("MAX_PIXELS", "250000000", 250_000_000),
    ("MAX_FRAMES", "1", 1),
    ("MAX_FRAMES", "1000", 1000),
    ("MAX_DECODE_MIB", "16", 16),
    ("MAX_DECODE_MIB", "1024", 1024),
    ("KEEP_ANIMATION", "true", True),
    ("KEEP_ANIMATION", "false", False),
    ("KEEP_ANIMATION", "1", True),
    ("KEEP_ANIMATION", "0", False),
    ("KEEP_ANIMATION", "yes", True),
    ("KEEP_ANIMATION", "no", False),
    ("ENCODE_THREADS", "0", 0),
    ("ENCODE_THREADS", "4", 4),
    ("SOURCE_PREFIX", "incoming/", "incoming/"),
    ("SOURCE_PREFIX", "users/uploads/", "users/uploads/"),
    ("OUTPUT_PREFIX", "public/images/", "public/images/"),
    ("FIRESTORE_COLLECTION", "images", "images"),
    ("FIRESTORE_COLLECTION", "my_images-2", "my_images-2"),
    ("URL_MODE", "token", "token"),
    ("URL_MODE", "public", "public"),
    ("DELETE_ORIGINAL", "never", "never"),
    ("DELETE_ORIGINAL", "on_success", "on_success"),
    ("MAX_EVENT_AGE_S", "0", 0),
    ("MAX_EVENT_AGE_S", "900", 900),
    ("RETRY_WINDOW_S", "0", 0),
    ("RETRY_WINDOW_S", "7200", 7200),
    ("CLIENT_TIMEOUT_S", "10", 10.0),
    ("CLIENT_TIMEOUT_S", "2.5", 2.5),
    ("CLIENT_RETRY_S", "0", 0.0),
    ("CLIENT_RETRY_S", "30", 30.0),
    ("DOWNLOAD_URL_BASE", "https://cdn.example.com/v0/", "https://cdn.example.com/v0"),
    ("DOWNLOAD_URL_BASE", "http://localhost:9199", "http://localhost:9199"),
    ("PUBLIC_URL_BASE", "https://images.example.com", "https://images.example.com"),
    ("LOG_LEVEL", "debug", "debug"),
    ("LOG_LEVEL", "ERROR", "error"),
    ("WARM_UP", "yes", True),
    ("WARM_UP", "off", False),
    ("CUTOUT_FAMILY", "isnet", "isnet"),
    ("CUTOUT_FAMILY", "U2NET", "u2net"),
    ("CUTOUT_MODEL_URI", "gs://{bucket}/models/u2netp.onnx", "gs://{bucket}/models/u2netp.onnx"),
    ("CUTOUT_MODEL_URI", "gs://my-models/isnet.onnx", "gs://my-models/isnet.onnx"),
    ("CUTOUT_MODEL_URI", "models/isnet-anime.onnx", "models/isnet-anime.onnx"),
    ("CUTOUT_MODEL_SHA256", "AB" * 32, "ab" * 32),
    ("ROUTES_FILE", "examples/routes.toml", ("showcase", "avatar", "gallery")),
]

INVALID = [
    ("VARIANTS", "thumb"),
    ("VARIANTS", "thumb:0"),
    ("VARIANTS", "thumb:-5"),
    ("VARIANTS", "thumb:abc"),
    ("VARIANTS", ":256"),
    ("VARIANTS", "thumb:256,thumb:512"),
    ("VARIANTS", "thumb:256,,large:2048"),
    ("VARIANTS", "../evil:256"),
    ("VARIANTS", "thumb:20000"),
    ("OUTPUT_FORMAT", "gif"),
    ("OUTPUT_FORMAT", "bmp"),
    ("OUTPUT_FORMAT", "heic"),
    ("QUALITY", "0"),
    ("QUALITY", "101"),
    ("QUALITY", "-1"),
    ("QUALITY", "abc"),
    ("QUALITY", "80.5"),
    ("MAX_INPUT_BYTES", "0"),
    ("MAX_INPUT_BYTES", "-1"),
    ("MAX_INPUT_BYTES", "50MB"),
    ("MAX_PIXELS", "0"),
    ("MAX_PIXELS", "lots"),
    ("MAX_PIXELS", str(2**30 + 1)),
    ("MAX_FRAMES", "0"),
    ("MAX_FRAMES", "-3"),
    ("MAX_FRAMES", "1.5"),
    ("MAX_DECODE_MIB", "15"),
    ("MAX_DECODE_MIB", "1GiB"),
    ("KEEP_ANIMATION", "maybe"),
    ("KEEP_ANIMATION", "2"),
    ("ENCODE_THREADS", "-1"),
    ("ENCODE_THREADS", "many"),
    ("SOURCE_PREFIX", "uploads"),
    ("SOURCE_PREFIX", "../escape/"),
    ("SOURCE_PREFIX", "/absolute/"),
    ("SOURCE_PREFIX", "a//b/"),
    ("OUTPUT_PREFIX", "out"),
    ("OUTPUT_PREFIX", "../out/"),
    ("FIRESTORE_COLLECTION", "a/b"),
    ("FIRESTORE_COLLECTION", ".."),
    ("FIRESTORE_COLLECTION", "has space"),
    ("URL_MODE", "signed"),
    ("DELETE_ORIGINAL", "always"),
    ("DELETE_ORIGINAL", "yes"),
    ("MAX_EVENT_AGE_S", "-1"),
    ("MAX_EVENT_AGE_S", "ten"),
    ("RETRY_WINDOW_S", "-1"),
    ("RETRY_WINDOW_S", "1h"),
    ("CLIENT_TIMEOUT_S", "0"),
    ("CLIENT_TIMEOUT_S", "-1"),
    ("CLIENT_TIMEOUT_S", "abc"),
    ("CLIENT_TIMEOUT_S", "nan"),
    ("CLIENT_TIMEOUT_S", "inf"),
    ("CLIENT_RETRY_S", "31"),
    ("CLIENT_RETRY_S", "-0.5"),
    ("DOWNLOAD_URL_BASE", "ftp://host/path"),
    ("DOWNLOAD_URL_BASE", "https://host/path?token=x"),
    ("PUBLIC_URL_BASE", "storage.googleapis.com"),
    ("LOG_LEVEL", "verbose"),
    ("WARM_UP", "sometimes"),
    ("ROUTES_FILE", "no-such-routes.toml"),
    ("ROUTES_FILE", "README.md"),
    ("CUTOUT_FAMILY", "rembg"),
    ("CUTOUT_FAMILY", "isnet-anime"),
    ("CUTOUT_MODEL_URI", "https://example.com/isnet.onnx"),
    ("CUTOUT_MODEL_URI", "gs://{bucket}/raw-uploads/u/c/isnet.onnx"),
    ("CUTOUT_MODEL_URI", "gs://{bucket}/showcase-images/u/c/isnet.onnx"),
    ("CUTOUT_MODEL_URI", "gs://{bucket}/models/{uid}.onnx"),
    ("CUTOUT_MODEL_URI", "gs://Bad_Bucket/isnet.onnx"),
    ("CUTOUT_MODEL_SHA256", "ab" * 31),
    ("CUTOUT_MODEL_SHA256", "xy" * 32),
]


@pytest.mark.parametrize(
    ("route_level", "value"),
    [(variable.name, variable.default or CUTOUT[variable.name]) for variable in Settings.variables() if variable.route],
)
def test_route_level_variables_beside_a_routes_file_are_refused_by_name(route_level, value):
    with pytest.raises(ConfigurationError, match=rf"ROUTES_FILE is set.*{route_level}"):
        Settings.from_env({"ROUTES_FILE": "examples/routes.toml", route_level: value})


def test_the_route_level_variables_are_those_of_the_built_in_route():
    route_level = {variable.name for variable in Settings.variables() if variable.route}
    assert route_level == {"SOURCE_PREFIX", "OUTPUT_PREFIX", "FIRESTORE_COLLECTION", "VARIANTS", "OUTPUT_FORMAT",
                           "QUALITY", "KEEP_ANIMATION", "DELETE_ORIGINAL", *CUTOUT}  # fmt: skip


def test_every_variable_has_valid_and_invalid_cases():
    names = {variable.name for variable in Settings.variables()}
    assert {key for key, _, _ in VALID} == set(GETTERS) == {key for key, _ in INVALID} == names


def test_empty_environment_gives_the_documented_defaults():
    settings = Settings.from_env({})
    assert settings.limits == ImagingOptions()
    assert settings.routes[0].imaging == ImagingOptions()
    assert [(variant.name, variant.max_edge) for variant in settings.routes[0].imaging.variants] == [
        ("thumb", 256),
        ("medium", 1024),
        ("large", 2048),
    ]
    assert settings.routes[0].imaging.primary.format is OutputFormat.WEBP
    assert settings.routes[0].imaging.primary.quality == 80
    assert settings.limits.max_input_bytes == 50 * 1024 * 1024
    assert settings.limits.max_pixels == 100_000_000
    assert settings.limits.max_frames == 300
    assert settings.routes[0].imaging.keep_animation is False
    assert settings.warm_up is True


@pytest.mark.parametrize(("key", "raw", "expected"), VALID, ids=[f"{k}={v}" for k, v, _ in VALID])
def test_valid_values_are_parsed(key, raw, expected):
    settings = Settings.from_env(_environment(key, raw))
    value = GETTERS[key](settings)
    assert value == expected
    assert type(value) is type(expected) or isinstance(value, type(expected))


@pytest.mark.parametrize(("key", "raw"), INVALID, ids=[f"{k}={v[:20]}" for k, v in INVALID])
def test_invalid_values_name_the_variable(key, raw):
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env(_environment(key, raw))
    assert key in str(info.value)


@pytest.mark.parametrize(("source", "output"), [("uploads/", "uploads/"), ("media/", "media/")])
def test_outputs_that_would_be_sources_are_refused_naming_both_prefixes(source, output):
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"SOURCE_PREFIX": source, "OUTPUT_PREFIX": output})
    message = str(info.value)
    assert "SOURCE_PREFIX" in message and "OUTPUT_PREFIX" in message and "trigger the function again" in message


@pytest.mark.parametrize(
    ("source", "output"),
    # A folder inside the other is fine when no output can fit the source pattern: outputs are one level deeper.
    [("raw/", "raw-out/"), ("uploads/", "images/"), ("a/b/", "a/c/"), ("uploads/", "uploads/variants/")],
)
def test_prefixes_whose_outputs_cannot_be_sources_are_fine(source, output):
    (route,) = Settings.from_env({"SOURCE_PREFIX": source, "OUTPUT_PREFIX": output}).routes
    assert (route.match.literal_prefix, route.output.text) == (source, f"{output}{{uid}}/{{characterId}}/")


def test_the_built_in_route_is_the_one_a_routes_file_would_spell():
    from image_pipeline.builtin_route import builtin_table
    from image_pipeline.routes_file import parse_routes

    spelled = {variable.name: variable.default for variable in Settings.variables() if variable.route}
    assert Settings().routes == parse_routes({"route": [builtin_table(spelled)]}, ImagingOptions()).routes


def test_unrelated_variables_are_ignored():
    assert Settings.from_env({"HOME": "/root", "PATH": "/bin", "QUALITY_X": "abc"}) == Settings.from_env({})


@pytest.mark.parametrize(
    ("target", "field", "value"),
    [
        ("settings", "warm_up", False),
        ("limits", "max_frames", 1),
        ("policy", "retry_window_s", 1),
        ("route", "name", "x"),
    ],
)
def test_settings_are_frozen(target, field, value):
    settings = Settings.from_env({})
    obj = {"settings": settings, "limits": settings.limits, "policy": settings.policy, "route": settings.routes[0]}
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj[target], field, value)
    assert isinstance(settings.routes, tuple)


def test_from_env_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("QUALITY", "55")
    assert Settings.from_env().routes[0].imaging.primary.quality == 55
