"""One frozen, typed settings object, read from the environment once and validated with clear messages."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from image_pipeline.errors import ConfigurationError
from image_pipeline.models import model_location
from image_pipeline.options import (
    PIXEL_CEILING,
    CutoutFamily,
    CutoutSpec,
    Encoding,
    ImagingOptions,
    OutputFormat,
    Variant,
)
from image_pipeline.routes import (
    DEFAULT_CACHE_CONTROL,
    DeleteOriginal,
    Mirror,
    MissingDocument,
    Pattern,
    Route,
    Template,
    check_model_location,
)


class LogLevel(str, Enum):
    """The lowest severity written to the log."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class UrlMode(str, Enum):
    """How the URL of an output is made."""

    TOKEN = "token"
    PUBLIC = "public"


# Where main.py is: relative ROUTES_FILE paths start here, in the deployed source as in a checkout.
SOURCE_ROOT = Path(__file__).resolve().parent.parent
FIREBASE_DOWNLOAD_BASE = "https://firebasestorage.googleapis.com/v0"
PUBLIC_STORAGE_BASE = "https://storage.googleapis.com"


@dataclass(frozen=True)
class Settings:
    """All settings of the function, the CLI and the backfill."""

    imaging: ImagingOptions = field(default_factory=ImagingOptions)
    source_prefix: str = "raw-uploads/"
    output_prefix: str = "showcase-images/"
    collection: str = "characters"
    url_mode: UrlMode = UrlMode.TOKEN
    delete_original: DeleteOriginal = DeleteOriginal.NEVER
    max_event_age_s: int = 600
    retry_window_s: int = 3600
    client_timeout_s: float = 10.0
    client_retry_s: float = 5.0
    cache_control: str = DEFAULT_CACHE_CONTROL
    download_url_base: str = FIREBASE_DOWNLOAD_BASE
    public_url_base: str = PUBLIC_STORAGE_BASE
    log_level: LogLevel = LogLevel.INFO
    # Whether each serving process loads the imaging core and connects the clients as it starts (main.py).
    warm_up: bool = True
    # The built-in route's background removal (CUTOUT_*); None: off.
    cutout: CutoutSpec | None = None
    # The routes of ROUTES_FILE; empty: the one built-in route made from the variables above.
    route_table: tuple[Route, ...] = ()

    @cached_property
    def routes(self) -> tuple[Route, ...]:
        """The routes in the order they are tried."""
        return self.route_table or (self.builtin_route(),)

    def builtin_route(self) -> Route:
        """CharaForge's layout, as before routes: `{SOURCE_PREFIX}{uid}/{characterId}/{file}` -> `characters/{id}`."""
        return Route(
            name="showcase",
            match=Pattern.parse(f"{self.source_prefix}{{uid}}/{{characterId}}/{{file}}"),
            document=Template(f"{self.collection}/{{characterId}}"),
            field="visuals.showcase",
            output=Template(f"{self.output_prefix}{{uid}}/{{characterId}}/"),
            imaging=self.imaging,
            require=MappingProxyType({"meta.userId": Template("{uid}")}),
            missing=MissingDocument.WAIT,
            owner="uid",
            mirror=Mirror(
                status="visuals.showcaseProcessingStatus",
                url="visuals.showcaseImageUrl",
                ready="visuals.isShowcaseProcessed",
            ),
            cache_control=self.cache_control,
            delete_original=self.delete_original,
            cutout=self.cutout,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build and validate the settings from environment variables; unset ones keep their defaults."""
        return cls._read(_Env(os.environ if environ is None else environ))

    @classmethod
    def variables(cls) -> tuple[Variable, ...]:
        """Every variable `from_env` reads, in reading order, with its default: what deploy.sh and the README list."""
        env = _Env({})
        cls._read(env)
        return env.variables

    @classmethod
    def _read(cls, env: _Env) -> Settings:
        """The one place that names the variables: each read states its default, range and meaning."""
        defaults_imaging = ImagingOptions()
        defaults = cls()
        imaging = ImagingOptions(
            variants=env.variants(
                "VARIANTS",
                defaults_imaging.variants,
                route=True,
                help="the sizes made; the largest is `showcaseImageUrl`",
            ),
            encodings=(
                Encoding(
                    env.choice(
                        "OUTPUT_FORMAT",
                        OutputFormat,
                        defaults_imaging.primary.format,
                        route=True,
                        help="the variants' format",
                    ),
                    env.integer(
                        "QUALITY",
                        defaults_imaging.primary.quality,
                        low=1,
                        high=100,
                        route=True,
                        help="the encoder's quality",
                    ),
                ),
            ),
            max_input_bytes=env.integer(
                "MAX_INPUT_BYTES",
                defaults_imaging.max_input_bytes,
                low=1,
                help="larger uploads fail `too_large` (checked from the event, before download); default 50 MiB",
            ),
            max_pixels=env.integer(
                "MAX_PIXELS",
                defaults_imaging.max_pixels,
                low=1,
                high=PIXEL_CEILING,
                help="for the canvas, any frame and any page",
            ),
            max_frames=env.integer("MAX_FRAMES", defaults_imaging.max_frames, low=1, help="frames or pages"),
            max_decode_mib=env.integer(
                "MAX_DECODE_MIB",
                defaults_imaging.max_decode_mib,
                low=16,
                help="refuse (`too_large`) images whose estimated decode memory is larger (see Sizing)",
            ),
            keep_animation=env.boolean(
                "KEEP_ANIMATION",
                defaults_imaging.keep_animation,
                route=True,
                help="keep animations (GIF/WebP/APNG in; WebP/AVIF/PNG out)",
            ),
            encode_threads=env.integer(
                "ENCODE_THREADS",
                defaults_imaging.encode_threads,
                low=0,
                high=64,
                help="threads that encode variants; 0: one per variant, at most the CPU count",
            ),
        )
        settings = cls(
            imaging=imaging,
            source_prefix=env.prefix(
                "SOURCE_PREFIX", defaults.source_prefix, route=True, help="where uploads are watched"
            ),
            output_prefix=env.prefix(
                "OUTPUT_PREFIX",
                defaults.output_prefix,
                route=True,
                help="where variants go; must not overlap `SOURCE_PREFIX`",
            ),
            collection=env.name(
                "FIRESTORE_COLLECTION", defaults.collection, route=True, help="the documents' collection"
            ),
            url_mode=env.choice(
                "URL_MODE",
                UrlMode,
                defaults.url_mode,
                help="`token`: Firebase download URLs; `public`: the objects' public URLs",
            ),
            delete_original=env.choice(
                "DELETE_ORIGINAL",
                DeleteOriginal,
                defaults.delete_original,
                route=True,
                help="whether the upload is deleted once its variants are recorded",
            ),
            max_event_age_s=env.integer(
                "MAX_EVENT_AGE_S",
                defaults.max_event_age_s,
                low=0,
                help="seconds a missing document is waited for (by retrying)",
            ),
            retry_window_s=env.integer(
                "RETRY_WINDOW_S",
                defaults.retry_window_s,
                low=0,
                help="seconds after which transient failures are recorded as `retries_exhausted`",
            ),
            client_timeout_s=env.number(
                "CLIENT_TIMEOUT_S",
                defaults.client_timeout_s,
                low=0.1,
                high=50,
                help="timeout of one Storage/Firestore request, in seconds",
            ),
            client_retry_s=env.number(
                "CLIENT_RETRY_S",
                defaults.client_retry_s,
                low=0,
                high=30,
                help="seconds the clients may spend retrying one call",
            ),
            download_url_base=env.url(
                "DOWNLOAD_URL_BASE",
                _emulator_base(env, "/storage/v1") or FIREBASE_DOWNLOAD_BASE,
                help="base of token URLs (the emulator's `/storage/v1` when `STORAGE_EMULATOR_HOST` is set)",
            ),
            public_url_base=env.url(
                "PUBLIC_URL_BASE",
                _emulator_base(env, "") or PUBLIC_STORAGE_BASE,
                help="base of public URLs (the emulator's address when `STORAGE_EMULATOR_HOST` is set)",
            ),
            log_level=env.choice("LOG_LEVEL", LogLevel, defaults.log_level, help="the lowest severity logged"),
            warm_up=env.boolean(
                "WARM_UP",
                defaults.warm_up,
                help="create the clients, connect and run the encoders once in the background as each serving process "
                "starts (it stops when an upload arrives): an instance started ahead of its first event serves it "
                "as fast as a warm one; `false` to load on the first upload",
            ),
            cutout=_cutout(env),
        )
        settings.validate()
        routes_file = env.path(
            "ROUTES_FILE", help="a routes file (TOML; relative: from the source root): see docs/routes.md"
        )
        if routes_file is None:
            return settings
        env.refuse_route_settings("ROUTES_FILE is set: the routes file says what these said; unset")
        from image_pipeline.routes_file import load_routes

        return replace(settings, route_table=load_routes(routes_file, settings.imaging))

    def validate(self) -> None:
        """Reject combinations that no single variable can show to be wrong."""
        if self.output_prefix.startswith(self.source_prefix) or self.source_prefix.startswith(self.output_prefix):
            raise ConfigurationError(
                f"SOURCE_PREFIX {self.source_prefix!r} and OUTPUT_PREFIX {self.output_prefix!r} overlap: "
                "outputs would trigger the function again"
            )
        if self.cutout is not None:
            route = self.builtin_route()
            try:
                check_model_location(route, (route,))
            except ConfigurationError as error:
                raise ConfigurationError(f"CUTOUT_MODEL_URI: {str(error).split('cutout.uri: ', 1)[-1]}") from None


_CUTOUT_VARIABLES = ("CUTOUT_FAMILY", "CUTOUT_MODEL_URI", "CUTOUT_MODEL_SHA256")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def _cutout(env: _Env) -> CutoutSpec | None:
    """The built-in route's background removal: all three CUTOUT_ variables, or none of them (off)."""
    family = env.optional_choice(
        "CUTOUT_FAMILY",
        CutoutFamily,
        route=True,
        help="background removal before the variants are made (docs/cutout.md); unset: off",
    )
    uri = env.text(
        "CUTOUT_MODEL_URI",
        "`gs://{bucket}/models/NAME.onnx` (`{bucket}`: the event's) or a file path (relative: the source root)",
        route=True,
        help="the model file; never downloaded from elsewhere",
    )
    sha256 = env.text(
        "CUTOUT_MODEL_SHA256", "64 hex digits", route=True, help="the model file's SHA-256, checked before its use"
    )
    given = {name: value for name, value in zip(_CUTOUT_VARIABLES, (family, uri, sha256), strict=True) if value}
    if not given:
        return None
    if len(given) < len(_CUTOUT_VARIABLES) and env.unlisted("ROUTES_FILE") is None:
        missing = [name for name in _CUTOUT_VARIABLES if name not in given]
        raise ConfigurationError(
            f"{', '.join(given)} set without {' and '.join(missing)}: background removal needs all three "
            f"({', '.join(_CUTOUT_VARIABLES)}) or none"
        )
    if family is None or uri is None or sha256 is None:
        return None  # beside ROUTES_FILE, which refuses each of them by name
    try:
        model_location(uri)
    except ValueError as error:
        raise ConfigurationError(f"CUTOUT_MODEL_URI {error}") from None
    if not _SHA256.match(sha256):
        raise ConfigurationError(f"CUTOUT_MODEL_SHA256 must be the model's SHA-256 (64 hex digits), got {sha256!r}")
    return CutoutSpec(family, uri, sha256.lower())


_VARIANT = re.compile(r"^([a-z][a-z0-9_-]{0,31}):([1-9][0-9]{0,4})$")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_PREFIX = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*/$")
_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

_Choice = TypeVar("_Choice", bound=Enum)
_Number = TypeVar("_Number", int, float)


@dataclass(frozen=True)
class Variable:
    """One environment variable the settings read, as `settings --names` and `settings --markdown` show it."""

    name: str
    default: str  # as it would be written in the environment; "" when unset by default
    accepts: str  # the values it takes (Markdown)
    help: str  # what it does, in one line (Markdown)
    route: bool = False  # a setting of the built-in route: refused beside ROUTES_FILE, where routes say it


class _Env:
    """Typed readers over an environment mapping; each error names the variable and what it accepts.

    Every read is recorded with its default, accepted values and meaning, so the list of variables is derived
    from the reads themselves (`Settings.variables`) and cannot drift from them.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self._seen: list[Variable] = []

    @property
    def variables(self) -> tuple[Variable, ...]:
        """The variables read so far, in order."""
        return tuple(self._seen)

    def _get(self, variable: Variable) -> str | None:
        self._seen.append(variable)
        return self.unlisted(variable.name)

    def unlisted(self, key: str) -> str | None:
        """A variable another tool defines (e.g. STORAGE_EMULATOR_HOST): read, but not one of our settings."""
        value = self._environ.get(key)
        return None if value is None or value.strip() == "" else value.strip()

    def integer(
        self, key: str, default: int, *, help: str, route: bool = False, low: int | None = None, high: int | None = None
    ) -> int:
        raw = self._get(Variable(key, str(default), _range_text("whole number", low, high), help, route))
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigurationError(f"{key} must be a whole number, got {raw!r}") from None
        return _in_range(key, value, low, high)

    def number(
        self, key: str, default: float, *, help: str, low: float | None = None, high: float | None = None
    ) -> float:
        raw = self._get(Variable(key, f"{default:g}", _range_text("number", low, high), help))
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigurationError(f"{key} must be a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise ConfigurationError(f"{key} must be a finite number, got {raw!r}")
        return _in_range(key, value, low, high)

    def boolean(self, key: str, default: bool, *, help: str, route: bool = False) -> bool:
        accepts = "`true` or `false` (also `1`/`0`, `yes`/`no`, `on`/`off`)"
        raw = self._get(Variable(key, "true" if default else "false", accepts, help, route))
        if raw is None:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ConfigurationError(f"{key} must be one of true/false/1/0/yes/no/on/off, got {raw!r}")

    def choice(self, key: str, kind: type[_Choice], default: _Choice, *, help: str, route: bool = False) -> _Choice:
        values = [f"`{member.value}`" for member in kind]
        accepts = f"{', '.join(values[:-1])} or {values[-1]}" if len(values) > 1 else values[0]
        raw = self._get(Variable(key, default.value, accepts, help, route))
        if raw is None:
            return default
        try:
            return kind(raw.lower())
        except ValueError:
            allowed = ", ".join(member.value for member in kind)
            raise ConfigurationError(f"{key} must be one of {allowed}, got {raw!r}") from None

    def name(self, key: str, default: str, *, help: str, route: bool = False) -> str:
        raw = self._get(Variable(key, default, "1-128 of `A-Z a-z 0-9 _ -`", help, route))
        if raw is None:
            return default
        if not _NAME.match(raw):
            raise ConfigurationError(f"{key} must be 1-128 characters of A-Z a-z 0-9 _ -, got {raw!r}")
        return raw

    def prefix(self, key: str, default: str, *, help: str, route: bool = False) -> str:
        raw = self._get(Variable(key, default, "a folder path ending in `/`, like `a/b/`", help, route))
        if raw is None:
            return default
        if not _PREFIX.match(raw) or ".." in raw.split("/"):
            raise ConfigurationError(f"{key} must look like 'folder/' or 'a/b/' (ending in '/'), got {raw!r}")
        return raw

    def text(self, key: str, accepts: str, *, help: str, route: bool = False) -> str | None:
        return self._get(Variable(key, "", accepts, help, route))

    def optional_choice(self, key: str, kind: type[_Choice], *, help: str, route: bool = False) -> _Choice | None:
        """A choice that is unset by default."""
        values = [f"`{member.value}`" for member in kind]
        raw = self._get(Variable(key, "", " or ".join(values), help, route))
        if raw is None:
            return None
        try:
            return kind(raw.lower())
        except ValueError:
            allowed = ", ".join(member.value for member in kind)
            raise ConfigurationError(f"{key} must be one of {allowed}, got {raw!r}") from None

    def path(self, key: str, *, help: str) -> Path | None:
        raw = self._get(Variable(key, "", "a file path", help))
        if raw is None:
            return None
        path = Path(raw)
        return path if path.is_absolute() else SOURCE_ROOT / path

    def refuse_route_settings(self, reason: str) -> None:
        """Refuse every route-level variable that is set, naming them all."""
        present = [variable.name for variable in self._seen if variable.route and self.unlisted(variable.name)]
        if present:
            raise ConfigurationError(f"{reason} {', '.join(present)}")

    def url(self, key: str, default: str, *, help: str) -> str:
        raw = self._get(Variable(key, default, "an `http(s)://host/path` URL without query", help))
        if raw is None:
            return default
        if not _URL.match(raw):
            raise ConfigurationError(f"{key} must be an http(s) URL without query, like https://host/path; got {raw!r}")
        return raw.rstrip("/")

    def variants(
        self, key: str, default: tuple[Variant, ...], *, help: str, route: bool = False
    ) -> tuple[Variant, ...]:
        shown = ",".join(f"{variant.name}:{variant.max_edge}" for variant in default)
        raw = self._get(Variable(key, shown, "comma-separated `name:longest-edge` pairs", help, route))
        if raw is None:
            return default
        variants = []
        for item in raw.split(","):
            match = _VARIANT.match(item.strip())
            if not match:
                raise ConfigurationError(
                    f"{key} must be a comma-separated list of name:pixels (e.g. thumb:256,large:2048); "
                    f"{item.strip()!r} is not"
                )
            variants.append(Variant(match.group(1), int(match.group(2))))
        names = [variant.name for variant in variants]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"{key} names each variant once; got {', '.join(names)}")
        return tuple(variants)


def _emulator_base(env: _Env, path: str) -> str | None:
    """Against fake-gcs-server (STORAGE_EMULATOR_HOST set), URLs point at the emulator so they can be opened locally."""
    host = env.unlisted("STORAGE_EMULATOR_HOST")
    if host is None:
        return None
    origin = host.rstrip("/") if "://" in host else f"http://{host.rstrip('/')}"
    return origin + path


def _range_text(kind: str, low: float | None, high: float | None) -> str:
    """What a numeric variable accepts, e.g. 'whole number 1-100' or 'number >= 0.1'."""
    if low is not None and high is not None:
        return f"{kind} {_number_text(low)}-{_number_text(high)}"
    if low is not None:
        return f"{kind} >= {_number_text(low)}"
    return kind


def _number_text(value: float) -> str:
    # Whole numbers in full (1073741824, not 1.07374e+09); others as short as they go.
    return str(value) if isinstance(value, int) else f"{value:g}"


def _in_range(key: str, value: _Number, low: _Number | None, high: _Number | None) -> _Number:
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise ConfigurationError(f"{key} must be {bounds}, got {value}")
    return value
