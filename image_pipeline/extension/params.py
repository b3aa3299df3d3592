"""The Resize Images extension's parameters: the table of every one, and the typed `ExtensionParams` a route runs with.

Values are strings exactly as the extension's `.env` spells them. Unset or empty means extension.yaml's declared
default, not the extension code's own fallbacks, which differ (IS_ANIMATED, REGENERATE_TOKEN, DELETE_ORIGINAL_FILE,
IMAGE_TYPE: spec 2.2), and not its quirk of treating "" as a value (spec 2.3). The event-type lists are the exception:
there "" is a value of its own, no event selected, as firebase-tools and firebase-admin read it.

SHARP_OPTIONS and OUTPUT_OPTIONS are JSON objects of sharp options. Each option this project takes is in
SHARP_OPTION_RULES or OUTPUT_OPTION_RULES, with the values that mean the same here as in the extension; anything else
is refused by name rather than silently done differently. Typographic quotes (“centre”, as in extension.yaml's own
SHARP_OPTIONS example) are refused with a hint, not normalised: the extension cannot parse them either (SHARP_OPTIONS
stops it at start-up, OUTPUT_OPTIONS is then ignored), so no working installation has them, and a guess would apply
options the extension never applied.

Standard library only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from image_pipeline.errors import ConfigurationError
from image_pipeline.options import Fit, Gravity

EXTENSION = "storage-resize-images"
# The platform's parameters of the extension's function (firebase-tools' system params), keyed by this prefix.
SYSTEM = "firebaseextensions.v1beta.function/"
EVENT_PREFIX = "firebase.extensions.storage-resize-images.v1."
# What 0.3.1 and later publish; `complete` is what 0.1.28-0.2.0 published instead (spec 7.3).
EVENT_NAMES = ("onStart", "onStartResize", "onSuccess", "onError", "onCompletion")
LEGACY_EVENT_NAMES = ("complete",)


class ParamError(ConfigurationError):
    """A parameter value that cannot be used; the message starts with the parameter's name, `param` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


class ParamKind(str, Enum):
    """What a parameter is to this project."""

    BEHAVIOUR = "behaviour"  # a key of the extension route
    DEPLOYMENT = "deployment"  # how the function is deployed: a deploy.sh flag or a command, never a route key
    EVENTS = "events"  # the Eventarc channel, the event types published on it and their source
    UNSUPPORTED = "unsupported"  # the content filter: accepted only while off, there is no counterpart here


@dataclass(frozen=True)
class Param:
    """One parameter: its name, extension.yaml's declared default, what it accepts and what it means."""

    name: str
    default: str  # "" when extension.yaml declares none
    accepts: str  # what it takes, as error messages say it
    meaning: str  # one line
    kind: ParamKind
    shape: re.Pattern[str]  # the whole value must match
    deploy_flag: str = ""  # DEPLOYMENT: deploy.sh's flag for it, if it has one
    # UNSUPPORTED: the value that keeps the feature off (the only one with a counterpart here), and why others fail.
    off: str | None = None
    refusal: str = ""
    keeps_empty: bool = False  # "" is a value of its own, not "unset"

    def check(self, raw: str) -> None:
        """Refuse a value of the wrong shape, naming the parameter and what it takes."""
        if self.shape.fullmatch(raw) is None:
            raise ParamError(self.name, f"{self.name} takes {self.accepts}; got {raw!r}")

    def refuse_unless_off(self, value: str) -> None:
        """An UNSUPPORTED parameter is accepted only with the value that keeps its feature off."""
        if self.off is not None and value != self.off:
            raise ParamError(self.name, f"{self.name}={value!r} has no counterpart here: {self.refusal}")


def _one_of(*values: str) -> re.Pattern[str]:
    return re.compile("|".join(map(re.escape, values)))


def _list_of(*values: str) -> re.Pattern[str]:
    item = f"(?:{'|'.join(map(re.escape, values))})"
    return re.compile(f"{item}(?:,{item})*")


_TEXT = re.compile(r"[^\x00-\x1f\x7f]*")  # one line: no control characters
_ANY = re.compile(r".*", re.DOTALL)
_BOOLEAN = _one_of("true", "false")
_REGION = re.compile(r"[a-z]+-[a-z]+[0-9]+")
_PATH_LIST = re.compile(r"(/[^\s/,]+)+(,(/[^\s/,]+)+)*")  # extension.yaml's validationRegex
_EVENT_TYPES = re.compile(
    f"(?:{_list_of(*(EVENT_PREFIX + name for name in EVENT_NAMES + LEGACY_EVENT_NAMES)).pattern})?"
)
_CONTENT_FILTER = (
    "the extension has Gemini (Vertex AI) judge every upload and resizes a placeholder in place of a blocked one; "
    "this pipeline has no content filter"
)

BEHAVIOUR, DEPLOYMENT, EVENTS, UNSUPPORTED = ParamKind
# Every parameter of extension.yaml (0.3.3, in its order), those earlier versions had, the platform's, the events'.
PARAMS: tuple[Param, ...] = (
    Param("IMG_BUCKET", "${STORAGE_BUCKET}", "a bucket name of 0-9 a-z _ . -", "the bucket whose uploads are resized",
          DEPLOYMENT, re.compile(r"[0-9a-z_.-]*"), deploy_flag="--bucket"),
    Param("IMG_SIZES", "200x200", "comma-separated WIDTHxHEIGHT boxes without spaces, like 200x200,400x300",
          "the boxes each image is resized into, never enlarged; each is the `_WxH` suffix of its outputs",
          BEHAVIOUR, re.compile(r"[0-9]+x[0-9]+(,[0-9]+x[0-9]+)*")),
    Param("DELETE_ORIGINAL_FILE", "false", "false, true or on_success",
          "delete the upload: false never, true after any attempt, on_success when every output succeeded",
          BEHAVIOUR, _one_of("false", "true", "on_success")),
    Param("MAKE_PUBLIC", "false", "true or false", "make every output publicly readable", BEHAVIOUR, _BOOLEAN),
    Param("RESIZED_IMAGES_PATH", "", "a relative folder, like thumbnails",
          "where outputs go, relative to the upload's folder (empty: beside the upload)", BEHAVIOUR, _TEXT),
    Param("INCLUDE_PATH_LIST", "", "comma-separated absolute folders, like /users/avatars,/users/*/pictures",
          "only uploads in these folders or below are resized (empty: every folder)", BEHAVIOUR, _PATH_LIST),
    Param("EXCLUDE_PATH_LIST", "", "comma-separated absolute folders, like /users/avatars/thumbs",
          "uploads in these folders or below are not resized (empty: none excluded)", BEHAVIOUR, _PATH_LIST),
    Param("FAILED_IMAGES_PATH", "", "a folder name without / or ., like failed",
          "where a copy of an upload that failed goes, relative to its folder (empty: no copy)",
          BEHAVIOUR, re.compile(r"[^/.\x00-\x1f\x7f]*")),
    Param("CACHE_CONTROL_HEADER", "", "a Cache-Control value, like max-age=86400",
          "the outputs' Cache-Control (empty: the upload's is copied)", BEHAVIOUR, _TEXT),
    Param("IMAGE_TYPE", "false", "comma-separated from jpeg, webp, png, tiff, gif, avif and false (legacy: jpg, tif)",
          "the formats every size is written in; false: the upload's own", BEHAVIOUR,
          _list_of("jpeg", "webp", "png", "tiff", "gif", "avif", "false", "jpg", "tif")),
    Param("OUTPUT_OPTIONS", "", 'a JSON object of sharp options per format, like {"jpeg": {"quality": 85}}',
          "encoder options per converted format: see OUTPUT_OPTION_RULES", BEHAVIOUR, _ANY),
    Param("SHARP_OPTIONS", "", 'a JSON object of sharp resize options, like {"fit": "cover", "position": "top"}',
          "how each size fills its box, and animation: see SHARP_OPTION_RULES", BEHAVIOUR, _ANY),
    Param("IS_ANIMATED", "true", "true or false",
          "keep every frame of animated GIF and WebP uploads (false: the first frame)", BEHAVIOUR, _BOOLEAN),
    Param("FUNCTION_MEMORY", "1024", "512, 1024, 2048, 4096 or 8192", "the function's memory, in MB",
          DEPLOYMENT, _one_of("512", "1024", "2048", "4096", "8192"), deploy_flag="--memory"),
    Param("DO_BACKFILL", "", "true or false", "resize the images already in the bucket (0.1.32-0.2.10)",
          DEPLOYMENT, _BOOLEAN),
    Param("BACKFILL_BATCH_SIZE", "3", "a whole number >= 1", "images per backfill batch (0.2.10)",
          DEPLOYMENT, re.compile(r"[1-9][0-9]*")),
    Param("REGENERATE_TOKEN", "true", "true or false",
          "give every output a download token of its own (false: the upload's is copied)", BEHAVIOUR, _BOOLEAN),
    Param("CONTENT_FILTER_LEVEL", "OFF", "OFF, BLOCK_ONLY_HIGH, BLOCK_MEDIUM_AND_ABOVE or BLOCK_LOW_AND_ABOVE",
          "how strictly Gemini filters uploads before they are resized", UNSUPPORTED,
          _one_of("OFF", "BLOCK_ONLY_HIGH", "BLOCK_MEDIUM_AND_ABOVE", "BLOCK_LOW_AND_ABOVE"),
          off="OFF", refusal=f"{_CONTENT_FILTER}, so only OFF is accepted"),
    Param("CUSTOM_FILTER_PROMPT", "", "a yes/no question about an image",
          "a question Gemini answers about every upload; yes blocks it", UNSUPPORTED, _ANY,
          off="", refusal=f"{_CONTENT_FILTER}, so leave it empty"),
    Param("PLACEHOLDER_IMAGE_PATH", "", "an image path in the bucket ending in .png, .jpg, .jpeg, .gif or .webp",
          "what is resized in place of a blocked upload: no effect while the content filter is off, as here",
          UNSUPPORTED, re.compile(r"[a-zA-Z0-9_\-./]+\.(png|jpg|jpeg|gif|webp)")),
    Param("LOCATION", "", "a Cloud Functions region, like us-central1",
          "the function's region (a parameter until 0.1.37, then the platform's location)",
          DEPLOYMENT, _REGION, deploy_flag="--region"),
    Param(f"{SYSTEM}location", "", "a Cloud Functions region, like us-central1", "the function's region",
          DEPLOYMENT, _REGION, deploy_flag="--region"),
    Param(f"{SYSTEM}memory", "", "a whole number of MB", "the function's memory, in MB (over FUNCTION_MEMORY)",
          DEPLOYMENT, re.compile(r"[1-9][0-9]*"), deploy_flag="--memory"),
    Param(f"{SYSTEM}timeoutSeconds", "", "a whole number of seconds >= 1", "the function's timeout",
          DEPLOYMENT, re.compile(r"[1-9][0-9]*"), deploy_flag="--timeout"),
    Param(f"{SYSTEM}minInstances", "", "a whole number >= 0", "instances kept running",
          DEPLOYMENT, re.compile(r"[0-9]+"), deploy_flag="--min-instances"),
    Param(f"{SYSTEM}maxInstances", "", "a whole number >= 1", "the most instances at once",
          DEPLOYMENT, re.compile(r"[1-9][0-9]*"), deploy_flag="--max-instances"),
    Param(f"{SYSTEM}vpcConnector", "", "a VPC connector name", "the function's VPC connector", DEPLOYMENT, _TEXT),
    Param(f"{SYSTEM}vpcConnectorEgressSettings", "",
          "VPC_CONNECTOR_EGRESS_SETTINGS_UNSPECIFIED, PRIVATE_RANGES_ONLY or ALL_TRAFFIC",
          "which outgoing traffic goes through the VPC connector",
          DEPLOYMENT, _one_of("VPC_CONNECTOR_EGRESS_SETTINGS_UNSPECIFIED", "PRIVATE_RANGES_ONLY", "ALL_TRAFFIC")),
    Param(f"{SYSTEM}ingressSettings", "",
          "INGRESS_SETTINGS_UNSPECIFIED, ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB",
          "where the function accepts requests from", DEPLOYMENT,
          _one_of("INGRESS_SETTINGS_UNSPECIFIED", "ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB")),
    Param(f"{SYSTEM}labels", "", "comma-separated key:value labels", "labels of the function's resources",
          DEPLOYMENT, _TEXT),
    Param("EVENTARC_CHANNEL", "", "a channel: projects/P/locations/L/channels/C, locations/L/channels/C or C",
          "the Eventarc channel events are published on (empty: no events)", EVENTS,
          re.compile(r"projects/[^/]+/locations/[^/]+/channels/[^/]+|locations/[^/]+/channels/[^/]+|[^/]*")),
    Param("ALLOWED_EVENT_TYPES", "", f"comma-separated event types, {EVENT_PREFIX}NAME, NAME one of "
          f"{', '.join(EVENT_NAMES)} (or the legacy complete)",
          "the events published, as firebase.json's extensions manifest names them (unset: all; empty: none)",
          EVENTS, _EVENT_TYPES, keeps_empty=True),
    Param("EXT_SELECTED_EVENTS", "", f"comma-separated event types, {EVENT_PREFIX}NAME, NAME one of "
          f"{', '.join(EVENT_NAMES)} (or the legacy complete)",
          "the events published, as the extension's runtime reads them (unset: all; empty: none)",
          EVENTS, _EVENT_TYPES, keeps_empty=True),
    Param("EVENTARC_CLOUD_EVENT_SOURCE", "", "a CloudEvent source, like projects/P/instances/ID",
          "the `source` of every event (the platform sets it)", EVENTS, _TEXT),
)  # fmt: skip
PARAMS_BY_NAME: Mapping[str, Param] = MappingProxyType({param.name: param for param in PARAMS})


class ImageType(str, Enum):
    """An IMAGE_TYPE entry: a format to convert to, or ORIGINAL (keep the upload's). The value is the spelling, which
    is also the extension of converted outputs' names (`jpg` and `tif` are the legacy spellings)."""

    JPEG = "jpeg"
    WEBP = "webp"
    PNG = "png"
    TIFF = "tiff"
    GIF = "gif"
    AVIF = "avif"
    JPG = "jpg"
    TIF = "tif"
    ORIGINAL = "false"


class DeleteOriginalFile(str, Enum):
    """When the upload is deleted (DELETE_ORIGINAL_FILE false, true, on_success)."""

    NEVER = "never"
    ALWAYS = "always"  # after any attempt that downloaded it, whatever happened
    ON_SUCCESS = "on_success"  # only when every output succeeded


_DELETE_ORIGINAL = {
    "false": DeleteOriginalFile.NEVER,
    "true": DeleteOriginalFile.ALWAYS,
    "on_success": DeleteOriginalFile.ON_SUCCESS,
}


# sharp's gravity names and the position names that mean the same; its strategies (entropy, attention) are not here.
_GRAVITIES: Mapping[str, Gravity] = MappingProxyType(
    {
        **{gravity.value: gravity for gravity in Gravity},
        "center": Gravity.CENTRE,
        "top": Gravity.NORTH,
        "right top": Gravity.NORTHEAST,
        "right": Gravity.EAST,
        "right bottom": Gravity.SOUTHEAST,
        "bottom": Gravity.SOUTH,
        "left bottom": Gravity.SOUTHWEST,
        "left": Gravity.WEST,
        "left top": Gravity.NORTHWEST,
    }
)


@dataclass(frozen=True)
class OptionRule:
    """A sharp option this project takes: the values that mean the same here as in the extension."""

    accepts: str  # as error messages say it
    valid: Callable[[Any], bool]
    here: str  # what it does in this pipeline, one line


def _boolean(value: Any) -> bool:
    return isinstance(value, bool)


def _is(expected: object) -> Callable[[Any], bool]:
    # JSON true is not 1 here, as it is not in JavaScript.
    return lambda value: type(value) is type(expected) and value == expected


def _whole(low: int, high: int | None = None) -> Callable[[Any], bool]:
    def valid(value: Any) -> bool:
        number = isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer()
        return number and low <= value and (high is None or value <= high)

    return valid


QUALITY = "quality"
_QUALITY = OptionRule("a whole number 1-100", _whole(1, 100), "the encoder's quality, as the extension's")

# SHARP_OPTIONS (sharp's resize and constructor options, spread into both by the extension): what is taken.
SHARP_OPTION_RULES: Mapping[str, OptionRule] = MappingProxyType(
    {
        "fit": OptionRule(
            "inside or cover (our imaging core neither letterboxes: contain, stretches: fill, nor overflows: outside)",
            lambda value: value in tuple(fit.value for fit in Fit),
            "the variants' fit: inside keeps the whole picture, cover crops to fill the box",
        ),
        "position": OptionRule(
            f"a gravity or position name: {', '.join(_GRAVITIES)} (not the strategies entropy and attention)",
            lambda value: isinstance(value, str) and value in _GRAVITIES,
            "recorded as a Gravity: the part a cover crop keeps",
        ),
        "animated": OptionRule("true or false", _boolean, "true keeps animations whatever IS_ANIMATED says"),
        "withoutEnlargement": OptionRule("true (nothing is enlarged here)", _is(True), "never enlarged: as here"),
        "withoutReduction": OptionRule("false", _is(False), "images are reduced to fit: as here"),
        "fastShrinkOnLoad": OptionRule("true or false", _boolean, "a sharp decoder shortcut: nothing to map"),
        "failOnError": OptionRule("true or false", _boolean, "sharp's decoder strictness: ours is fixed"),
        "failOn": OptionRule(
            "none, truncated, error or warning",
            lambda value: value in ("none", "truncated", "error", "warning"),
            "sharp's decoder strictness: ours is fixed",
        ),
        "limitInputPixels": OptionRule(
            "true, false or a whole number >= 0",
            lambda value: _boolean(value) or _whole(0)(value),
            "sharp's pixel limit: MAX_PIXELS bounds every image here",
        ),
        "sequentialRead": OptionRule("true or false", _boolean, "how sharp reads: nothing to map"),
        "kernel": OptionRule("lanczos3 (ours)", _is("lanczos3"), "the resampling filter: Lanczos-3, as here"),
    }
)

_JPEG_OPTIONS: Mapping[str, OptionRule] = MappingProxyType(
    {
        QUALITY: _QUALITY,
        "progressive": OptionRule("true or false", _boolean, "byte layout only: ours is always progressive"),
        "optimiseCoding": OptionRule("true or false", _boolean, "byte layout only: ours is always optimised"),
        "optimizeCoding": OptionRule("true or false", _boolean, "byte layout only: ours is always optimised"),
        "chromaSubsampling": OptionRule("4:2:0 (ours)", _is("4:2:0"), "4:2:0, as here"),
    }
)
_TIFF_OPTIONS: Mapping[str, OptionRule] = MappingProxyType({QUALITY: _QUALITY})
# OUTPUT_OPTIONS: per format key, the options taken; quality is mapped, the others mean what we do anyway.
# None: the extension converts to GIF without options, so whatever OUTPUT_OPTIONS.gif says has no effect there either.
OUTPUT_OPTION_RULES: Mapping[str, Mapping[str, OptionRule] | None] = MappingProxyType(
    {
        "jpeg": _JPEG_OPTIONS,
        "jpg": _JPEG_OPTIONS,
        "webp": MappingProxyType(
            {
                QUALITY: _QUALITY,
                "effort": OptionRule("4 (ours)", _is(4), "libwebp method 4, as here"),
                "alphaQuality": OptionRule("100 (ours)", _is(100), "alpha at quality 100, as here"),
                "lossless": OptionRule("false", _is(False), "lossy, as here"),
                "nearLossless": OptionRule("false", _is(False), "lossy, as here"),
                "smartSubsample": OptionRule("false", _is(False), "plain 4:2:0, as here"),
            }
        ),
        "avif": MappingProxyType(
            {
                QUALITY: _QUALITY,
                "effort": OptionRule("4 (ours)", _is(4), "sharp's effort 4 (aom speed 5), as here"),
                "chromaSubsampling": OptionRule("4:4:4 (ours)", _is("4:4:4"), "4:4:4, as here"),
                "lossless": OptionRule("false", _is(False), "lossy, as here"),
                "bitdepth": OptionRule("8 (ours)", _is(8), "8 bits, as here"),
            }
        ),
        "png": MappingProxyType(
            {
                "compressionLevel": OptionRule("a whole number 0-9", _whole(0, 9), "bytes only: PNG is lossless"),
                "adaptiveFiltering": OptionRule("true or false", _boolean, "bytes only: PNG is lossless"),
                "progressive": OptionRule("false", _is(False), "not interlaced, as here"),
                "palette": OptionRule("false (a palette quantises)", _is(False), "full colour, as here"),
            }
        ),
        "tiff": _TIFF_OPTIONS,
        "tif": _TIFF_OPTIONS,
        "gif": None,
    }
)


@dataclass(frozen=True)
class Size:
    """One IMG_SIZES entry: a box, and its spelling, which names the outputs (`photo_200x200.webp`)."""

    text: str
    width: int
    height: int


@dataclass(frozen=True)
class SharpOptions:
    """What SHARP_OPTIONS says, once checked against SHARP_OPTION_RULES."""

    fit: Fit = Fit.INSIDE
    position: Gravity = Gravity.CENTRE
    animated: bool = False


@dataclass(frozen=True)
class EventSettings:
    """Where the extension's events go and which are published."""

    channel: str | None = None  # EVENTARC_CHANNEL; None: no event is published
    types: tuple[str, ...] | None = None  # the selected types; None: every type, (): none
    source: str | None = None  # EVENTARC_CLOUD_EVENT_SOURCE


@dataclass(frozen=True)
class ExtensionParams:
    """An extension route's parameters, validated and typed (deployment parameters are not route keys)."""

    sizes: tuple[Size, ...] = (Size("200x200", 200, 200),)
    image_types: tuple[ImageType, ...] = (ImageType.ORIGINAL,)
    delete_original: DeleteOriginalFile = DeleteOriginalFile.NEVER
    make_public: bool = False
    regenerate_token: bool = True
    animated: bool = True  # IS_ANIMATED, or SHARP_OPTIONS' own `animated: true`
    resized_images_path: str = ""  # "": beside the upload
    failed_images_path: str = ""  # "": no failed copy
    cache_control: str = ""  # "": the upload's is copied
    include_paths: tuple[str, ...] = ()  # (): every folder
    exclude_paths: tuple[str, ...] = ()
    fit: Fit = Fit.INSIDE
    position: Gravity = Gravity.CENTRE
    # OUTPUT_OPTIONS' qualities by format; the extension applies them only when converting to that format.
    qualities: Mapping[ImageType, int] = field(default_factory=lambda: MappingProxyType({}))
    events: EventSettings = EventSettings()

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> ExtensionParams:
        """Validate an extension route's parameters; every error is one ParamError naming the parameter."""
        given = _given(values)

        def setting(name: str) -> str:
            return given.get(name, PARAMS_BY_NAME[name].default)

        for param in PARAMS:
            param.refuse_unless_off(setting(param.name))
        sharp = _sharp_options(setting("SHARP_OPTIONS"))
        return cls(
            sizes=_sizes(setting("IMG_SIZES")),
            image_types=tuple(ImageType(entry) for entry in dict.fromkeys(setting("IMAGE_TYPE").split(","))),
            delete_original=_DELETE_ORIGINAL[setting("DELETE_ORIGINAL_FILE")],
            make_public=setting("MAKE_PUBLIC") == "true",
            regenerate_token=setting("REGENERATE_TOKEN") == "true",
            animated=sharp.animated or setting("IS_ANIMATED") == "true",
            resized_images_path=setting("RESIZED_IMAGES_PATH"),
            failed_images_path=setting("FAILED_IMAGES_PATH"),
            cache_control=setting("CACHE_CONTROL_HEADER"),
            include_paths=_split(setting("INCLUDE_PATH_LIST")),
            exclude_paths=_split(setting("EXCLUDE_PATH_LIST")),
            fit=sharp.fit,
            position=sharp.position,
            qualities=_qualities(setting("OUTPUT_OPTIONS")),
            events=EventSettings(
                channel=given.get("EVENTARC_CHANNEL"),
                types=_event_types(given),
                source=given.get("EVENTARC_CLOUD_EVENT_SOURCE"),
            ),
        )


def _given(values: Mapping[str, object]) -> dict[str, str]:
    """The parameters that are set, checked; empty ones are left out (they mean the default) unless "" is a value."""
    unknown = sorted(set(values) - set(PARAMS_BY_NAME))
    if unknown:
        raise ParamError(unknown[0], f"{unknown[0]!r} is not a parameter of the Resize Images extension")
    given = {}
    for param in PARAMS:
        if param.name not in values:
            continue
        raw = values[param.name]
        if param.kind is DEPLOYMENT:
            flag = f": deploy.sh {param.deploy_flag}" if param.deploy_flag else ""
            raise ParamError(param.name, f"{param.name} is a deployment setting, not a key of a route{flag}")
        if not isinstance(raw, str):
            raise ParamError(param.name, f"{param.name} must be a string, as the .env spells it; got {raw!r}")
        if raw == "" and not param.keeps_empty:
            continue
        param.check(raw)
        given[param.name] = raw
    return given


def _sizes(text: str) -> tuple[Size, ...]:
    sizes = []
    for entry in dict.fromkeys(text.split(",")):  # the extension drops repeated entries
        width, height = (int(side) for side in entry.split("x"))
        if width < 1 or height < 1:
            # extension.yaml's pattern lets 0x0 through; the extension then fails that size on every upload.
            raise ParamError("IMG_SIZES", f"IMG_SIZES: {entry!r}: each side must be at least 1 pixel")
        sizes.append(Size(entry, width, height))
    return tuple(sizes)


def _split(text: str) -> tuple[str, ...]:
    return tuple(text.split(",")) if text else ()


def _event_types(given: Mapping[str, str]) -> tuple[str, ...] | None:
    """The selected event types: the manifest's ALLOWED_EVENT_TYPES and the runtime's EXT_SELECTED_EVENTS say the
    same, so both may be set only if they agree."""
    lists = {name: _split(given[name]) for name in ("ALLOWED_EVENT_TYPES", "EXT_SELECTED_EVENTS") if name in given}
    if len({frozenset(types) for types in lists.values()}) > 1:
        raise ParamError(
            "EXT_SELECTED_EVENTS",
            "EXT_SELECTED_EVENTS and ALLOWED_EVENT_TYPES disagree: they are one list (the runtime's name and the "
            "manifest's); set one",
        )
    return next(iter(lists.values()), None)


def _json_object(name: str, text: str, example: str) -> dict[str, Any]:
    if text == "":
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        hint = ""
        if any(quote in text for quote in "“”‘’"):
            hint = " (it has typographic quotes “ ”, as extension.yaml's own example does: use straight ones)"
        raise ParamError(name, f"{name} must be a JSON object, like {example}; {error}{hint}") from None
    if not isinstance(value, dict):
        raise ParamError(name, f"{name} must be a JSON object, like {example}; got {text!r}")
    return value


def _check_option(param: str, option: str, value: Any, rules: Mapping[str, OptionRule], within: str = "") -> None:
    """Refuse an option that is not in `rules`, or a value its rule does not take, naming both."""
    label = f"{within}.{option}" if within else option
    rule = rules.get(option)
    if rule is None:
        taken = f"taken for {within}" if within else "taken"
        raise ParamError(param, f"{param}: {label} has no counterpart here ({taken}: {', '.join(rules)})")
    if not rule.valid(value):
        raise ParamError(
            param, f"{param}: {label} {json.dumps(value)} has no counterpart here; it takes {rule.accepts}"
        )


def _sharp_options(text: str) -> SharpOptions:
    options = _json_object("SHARP_OPTIONS", text, '{"fit": "cover", "position": "centre"}')
    for option, value in options.items():
        _check_option("SHARP_OPTIONS", option, value, SHARP_OPTION_RULES)
    return SharpOptions(
        fit=Fit(options.get("fit", Fit.INSIDE.value)),
        position=_GRAVITIES[options.get("position", Gravity.CENTRE.value)],
        animated=options.get("animated") is True,
    )


def _qualities(text: str) -> Mapping[ImageType, int]:
    options = _json_object("OUTPUT_OPTIONS", text, '{"webp": {"quality": 80}}')
    qualities = {}
    for key, settings in options.items():
        if key not in OUTPUT_OPTION_RULES:
            formats = ", ".join(OUTPUT_OPTION_RULES)
            raise ParamError("OUTPUT_OPTIONS", f"OUTPUT_OPTIONS: {key!r} is not a format (formats: {formats})")
        rules = OUTPUT_OPTION_RULES[key]
        if rules is None:
            continue
        if not isinstance(settings, dict):
            raise ParamError(
                "OUTPUT_OPTIONS", f'OUTPUT_OPTIONS: {key} must be an object of options, like {{"quality": 80}}'
            )
        for option, value in settings.items():
            _check_option("OUTPUT_OPTIONS", option, value, rules, within=key)
        if QUALITY in settings:
            qualities[ImageType(key)] = int(settings[QUALITY])
    return MappingProxyType(qualities)
