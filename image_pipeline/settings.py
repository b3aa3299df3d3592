"""One frozen, typed settings object, read from the environment once and validated with clear messages.

Settings hold what is process-wide (limits, timeouts, retry windows, URLs, logging, warm-up) and the route table:
ROUTES_FILE's routes, or the built-in route spelled by its own variables (builtin_route.py). Both go through the
routes file's parser, the one place with rules about routes.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import TypeVar

from image_pipeline.builtin_route import (
    BOOLEAN_ACCEPTS,
    FALSE,
    ROUTE_VARIABLES,
    TRUE,
    builtin_routes,
    refuse_beside_routes_file,
)
from image_pipeline.errors import ConfigurationError
from image_pipeline.extension.events import PROJECT_VARIABLES
from image_pipeline.extension.route import ExtensionRoute
from image_pipeline.options import PIXEL_CEILING, ImagingOptions
from image_pipeline.policy import FIREBASE_DOWNLOAD_BASE, PUBLIC_STORAGE_BASE, Policy, UrlMode, UrlRules
from image_pipeline.routes import Route
from image_pipeline.routes_file import RouteTable, load_routes


class LogLevel(str, Enum):
    """The lowest severity written to the log."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


# Where main.py is: relative ROUTES_FILE and model paths start here, in the deployed source as in a checkout.
SOURCE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """All settings of the function, the CLI and the backfill."""

    # The limits every route shares; each route's own ImagingOptions repeat them beside its sizes and formats.
    limits: ImagingOptions = field(default_factory=ImagingOptions)
    policy: Policy = field(default_factory=Policy)
    client_timeout_s: float = 10.0
    client_retry_s: float = 5.0
    log_level: LogLevel = LogLevel.INFO
    # Whether each serving process loads the imaging core and connects the clients as it starts (main.py).
    warm_up: bool = True
    # The routes in the order they are tried: ROUTES_FILE's, else the built-in route.
    routes: tuple[Route, ...] = field(default_factory=lambda: builtin_routes({}, ImagingOptions()))
    # ROUTES_FILE's extension routes: each takes every upload its filters pass.
    extension_routes: tuple[ExtensionRoute, ...] = ()

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
        route_spelling = env.route_variables()
        defaults = ImagingOptions()
        limits = ImagingOptions(
            max_input_bytes=env.integer(
                "MAX_INPUT_BYTES",
                defaults.max_input_bytes,
                low=1,
                help="larger uploads fail `too_large` (checked from the event, before download); default 50 MiB",
            ),
            max_pixels=env.integer(
                "MAX_PIXELS",
                defaults.max_pixels,
                low=1,
                high=PIXEL_CEILING,
                help="for the canvas, any frame and any page",
            ),
            max_frames=env.integer("MAX_FRAMES", defaults.max_frames, low=1, help="frames or pages"),
            max_decode_mib=env.integer(
                "MAX_DECODE_MIB",
                defaults.max_decode_mib,
                low=16,
                help="refuse (`too_large`) images whose estimated decode memory is larger (see Sizing)",
            ),
            encode_threads=env.integer(
                "ENCODE_THREADS",
                defaults.encode_threads,
                low=0,
                high=64,
                help="threads that encode variants; 0: one per variant, at most the CPU count",
            ),
        )
        log_level = env.choice("LOG_LEVEL", LogLevel, cls.log_level, help="the lowest severity logged")
        # What only the deployed function and the backfill use: a local `process` run lists none of these.
        with env.cloud_only():
            policy = Policy(
                urls=UrlRules(
                    mode=env.choice(
                        "URL_MODE",
                        UrlMode,
                        UrlMode.TOKEN,
                        help="`token`: Firebase download URLs; `public`: the objects' public URLs",
                    ),
                    download_base=env.url(
                        "DOWNLOAD_URL_BASE",
                        _emulator_base(env, "/storage/v1") or FIREBASE_DOWNLOAD_BASE,
                        help="base of token URLs (the emulator's `/storage/v1` when `STORAGE_EMULATOR_HOST` is set; "
                        "`/v0` on the Storage port under `dev`)",
                    ),
                    public_base=env.url(
                        "PUBLIC_URL_BASE",
                        _emulator_base(env, "") or PUBLIC_STORAGE_BASE,
                        help="base of public URLs (the emulator's address when `STORAGE_EMULATOR_HOST` is set)",
                    ),
                ),
                max_event_age_s=env.integer(
                    "MAX_EVENT_AGE_S",
                    Policy().max_event_age_s,
                    low=0,
                    help="seconds a missing document is waited for (by retrying)",
                ),
                retry_window_s=env.integer(
                    "RETRY_WINDOW_S",
                    Policy().retry_window_s,
                    low=0,
                    help="seconds after which transient failures are recorded as `retries_exhausted`",
                ),
            )
            client_timeout_s = env.number(
                "CLIENT_TIMEOUT_S",
                cls.client_timeout_s,
                low=0.1,
                high=50,
                help="timeout of one Storage/Firestore request, in seconds",
            )
            client_retry_s = env.number(
                "CLIENT_RETRY_S",
                cls.client_retry_s,
                low=0,
                high=30,
                help="seconds the clients may spend retrying one call",
            )
            warm_up = env.boolean(
                "WARM_UP",
                cls.warm_up,
                help="create the clients, connect and run the encoders once in the background as each serving process "
                "starts (it stops when an upload arrives): an instance started ahead of its first event serves it "
                "as fast as a warm one; `false` to load on the first upload",
            )
        routes_file = env.path(
            "ROUTES_FILE", help="a routes file (TOML; relative: from the source root): see docs/routes.md"
        )
        if routes_file is None:
            table = RouteTable(builtin_routes(route_spelling, limits))
        else:
            refuse_beside_routes_file(route_spelling)
            project = next(filter(None, map(env.unlisted, PROJECT_VARIABLES)), None)
            table = load_routes(routes_file, limits, project)
        return cls(limits, policy, client_timeout_s, client_retry_s, log_level, warm_up, table.routes, table.extensions)


_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
_Choice = TypeVar("_Choice", bound=Enum)
_Number = TypeVar("_Number", int, float)


@dataclass(frozen=True)
class Variable:
    """One environment variable the settings read, as `settings --names` and `settings --markdown` show it."""

    name: str
    default: str  # as it would be written in the environment; "" when unset by default
    accepts: str  # the values it takes (Markdown)
    help: str  # what it does, in one line (Markdown)
    route: bool = False  # spells a key of the built-in route: refused beside ROUTES_FILE, where routes say it
    cloud: bool = False  # about the bucket, the database or the clients: a local `process` run does not use it


class _Env:
    """Typed readers over an environment mapping; each error names the variable and what it accepts.

    Every read is recorded with its default, accepted values and meaning, so the list of variables is derived
    from the reads themselves (`Settings.variables`) and cannot drift from them.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self._seen: list[Variable] = []
        self._cloud = False

    @property
    def variables(self) -> tuple[Variable, ...]:
        """The variables read so far, in order."""
        return tuple(self._seen)

    def _get(self, variable: Variable) -> str | None:
        self._seen.append(replace(variable, cloud=variable.cloud or self._cloud))
        return self.unlisted(variable.name)

    @contextmanager
    def cloud_only(self) -> Iterator[None]:
        """The variables read inside are marked `cloud`."""
        self._cloud = True
        try:
            yield
        finally:
            self._cloud = False

    def unlisted(self, key: str) -> str | None:
        """A variable another tool defines (e.g. STORAGE_EMULATOR_HOST): read, but not one of our settings."""
        value = self._environ.get(key)
        return None if value is None or value.strip() == "" else value.strip()

    def route_variables(self) -> dict[str, str]:
        """The built-in route's variables that are set: their spelling is the route parser's to judge."""
        spelled = {}
        for variable in ROUTE_VARIABLES:
            listed = Variable(variable.name, variable.default, variable.accepts, variable.help, True, variable.cloud)
            raw = self._get(listed)
            if raw is not None:
                spelled[variable.name] = raw
        return spelled

    def integer(self, key: str, default: int, *, help: str, low: int | None = None, high: int | None = None) -> int:
        raw = self._get(Variable(key, str(default), _range_text("whole number", low, high), help))
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

    def boolean(self, key: str, default: bool, *, help: str) -> bool:
        raw = self._get(Variable(key, "true" if default else "false", BOOLEAN_ACCEPTS, help))
        if raw is None:
            return default
        if raw.lower() in TRUE:
            return True
        if raw.lower() in FALSE:
            return False
        raise ConfigurationError(f"{key} must be one of true/false/1/0/yes/no/on/off, got {raw!r}")

    def choice(self, key: str, kind: type[_Choice], default: _Choice, *, help: str) -> _Choice:
        values = [f"`{member.value}`" for member in kind]
        accepts = f"{', '.join(values[:-1])} or {values[-1]}" if len(values) > 1 else values[0]
        raw = self._get(Variable(key, default.value, accepts, help))
        if raw is None:
            return default
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

    def url(self, key: str, default: str, *, help: str) -> str:
        raw = self._get(Variable(key, default, "an `http(s)://host/path` URL without query", help))
        if raw is None:
            return default
        if not _URL.match(raw):
            raise ConfigurationError(f"{key} must be an http(s) URL without query, like https://host/path; got {raw!r}")
        return raw.rstrip("/")


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
