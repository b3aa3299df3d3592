"""Cutout model files (ONNX): where a route's model is, how it is read, the per-instance cache. Standard library only.

A model is the operator's configuration, not the user's image: a missing, unreadable or wrong-checksum model raises
ModelUnusable before anything is claimed, so the event is retried (and, past the retry window, recorded as
`retries_exhausted`) and no document ever shows a result the model could not make.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from image_pipeline.errors import ConfigurationError, ModelUnusable, TransientError
from image_pipeline.options import CutoutSpec
from image_pipeline.ports import ObjectStore

GS = "gs://"
EVENT_BUCKET = "{bucket}"
# A Cloud Storage bucket name (the dotted form included).
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")


@dataclass(frozen=True)
class ModelObject:
    """A model in Cloud Storage: `bucket` is a bucket name, or `{bucket}` for the bucket of the event."""

    bucket: str
    name: str

    def resolve(self, event_bucket: str) -> ModelObject:
        """The object for an event in `event_bucket`."""
        return ModelObject(event_bucket if self.bucket == EVENT_BUCKET else self.bucket, self.name)

    def __str__(self) -> str:
        return f"{GS}{self.bucket}/{self.name}"


def model_location(uri: str) -> ModelObject | Path:
    """Where a cutout model's file is: an object (`gs://bucket/name`) or a local path; ValueError says what is wrong."""
    if uri.startswith(GS):
        bucket, _, name = uri[len(GS) :].partition("/")
        if bucket != EVENT_BUCKET and not BUCKET_NAME.fullmatch(bucket):
            raise ValueError(f'must be "gs://{{bucket}}/folder/model.onnx" or name a bucket, got {uri!r}')
        if not name or name.endswith("/") or "{" in name or "}" in name or "//" in name:
            raise ValueError(f"must name the model's object after the bucket (no placeholder there), got {uri!r}")
        return ModelObject(bucket, name)
    if "://" in uri:
        raise ValueError(f"must be a gs:// URI or a local file path (nothing is fetched from elsewhere), got {uri!r}")
    if "{" in uri or "}" in uri or uri.endswith("/"):
        raise ValueError(f"a local model path names one file and takes no placeholder, got {uri!r}")
    return Path(uri)


def read_model(spec: CutoutSpec, event_bucket: str, objects: ObjectStore | None, root: Path) -> bytes:
    """The model file's bytes, from the object's current generation or from disk (relative: from `root`).

    Without `objects` (a local run) a model in Cloud Storage is a configuration error.
    """
    location = model_location(spec.uri)
    if isinstance(location, ModelObject):
        if objects is None:
            raise ConfigurationError(
                f"the cutout model is {location}; local runs read model files only (download it and point the "
                "route's cutout.uri, or CUTOUT_MODEL_URI, at the file)"
            )
        found = location.resolve(event_bucket)
        try:
            data = objects.read(found.bucket, found.name)
        except TransientError:
            raise
        except Exception as error:  # e.g. no permission on another bucket: the operator's to fix, like a missing file
            raise ModelUnusable(f"cutout model {found} ({spec.label}): cannot read it: {error}") from error
        if data is None:
            raise ModelUnusable(f"cutout model {found} ({spec.label}): no such object")
        return data
    path = location if location.is_absolute() else root / location
    try:
        return path.read_bytes()
    except OSError as error:
        raise ModelUnusable(f"cutout model {spec.uri} ({spec.label}): cannot read it: {error.strerror}") from None


@dataclass(frozen=True)
class LoadedCutout:
    """A route's cutout with its model loaded: what the imaging core's cutout step runs."""

    spec: CutoutSpec
    matting: Any  # the core's loaded model (imaging.cutout.Matting); opaque here


# (model bytes, spec, threads) -> the loaded model; verifies the sha256 first and raises ModelUnusable.
LoadMatting = Callable[[bytes, CutoutSpec, int], Any]
# (spec, event bucket) -> the model file's bytes; raises ModelUnusable (or TransientError for an outage).
ReadModel = Callable[[CutoutSpec, str], bytes]


class ModelCache:
    """The models of one instance: each loaded once, by the first event that needs it; failures are not kept.

    A failure is retried by the next event (the operator may fix the object meanwhile without a redeploy).
    """

    def __init__(self, read: ReadModel, load: LoadMatting, threads: int) -> None:
        self._read = read
        self._load = load
        self._threads = threads
        self._mattings: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def get(self, spec: CutoutSpec, event_bucket: str) -> LoadedCutout:
        """The loaded model for an event in `event_bucket`; raises ModelUnusable, or TransientError for an outage."""
        location = model_location(spec.uri)
        where = str(location.resolve(event_bucket)) if isinstance(location, ModelObject) else str(location)
        key = (where, spec.sha256)
        matting = self._mattings.get(key)
        if matting is None:
            # One load at a time: two concurrent first events must not hold two copies of a 176 MB model.
            with self._lock:
                matting = self._mattings.get(key)
                if matting is None:
                    matting = self._mattings[key] = self._loaded(spec, event_bucket, where)
        # Routes sharing a model share its session; each keeps its own spec (trim).
        return LoadedCutout(spec, matting)

    def _loaded(self, spec: CutoutSpec, event_bucket: str, where: str) -> Any:
        data = self._read(spec, event_bucket)
        try:
            return self._load(data, spec, self._threads)
        except ModelUnusable as error:
            raise ModelUnusable(f"{error} (read from {where})") from None
