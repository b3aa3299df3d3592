"""Composition: the one place that wires the clients, the imaging core and the cutout step for every entry point.

The function, `process`, `demo`, `dev`, the page and `backfill` all build what they run on here; the routes come with
the settings (Settings.from_env). Heavy imports (the Google clients, Pillow, onnxruntime) happen on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from image_pipeline.cpus import available_cpus
from image_pipeline.model_files import LoadedCutout, ModelCache, read_model
from image_pipeline.options import CutoutSpec, ImagingOptions
from image_pipeline.ports import EventPublisher, ObjectStore
from image_pipeline.results import ProcessedImage
from image_pipeline.settings import SOURCE_ROOT, Settings
from image_pipeline.usecase import Cutouts, Dependencies


def connect(settings: Settings) -> Dependencies:
    """Cloud Storage and Firestore clients (the emulators' when their variables are set), the imaging core and the
    cutout step: created once per instance or command."""
    from image_pipeline.gateway import firestore, storage

    objects = storage.connect(settings.client_timeout_s, settings.client_retry_s)
    return Dependencies(
        objects=objects,
        documents=firestore.connect(settings.client_timeout_s, settings.client_retry_s),
        make_variants=make_variants,
        now=lambda: datetime.now(UTC),
        cutouts=cutouts(objects),
        events=event_publisher(settings),
    )


def event_publisher(settings: Settings) -> EventPublisher | None:
    """The Eventarc publisher, only where some extension route publishes: no other deployment imports it."""
    if not any(route.publishing for route in settings.extension_routes):
        return None
    from image_pipeline.gateway import eventarc

    return eventarc.connect(settings.client_timeout_s)


def cutouts(objects: ObjectStore | None) -> Cutouts:
    """Background removal with this instance's model cache; without `objects`, local model files only."""
    models = ModelCache(
        lambda spec, bucket: read_model(spec, bucket, objects, SOURCE_ROOT), load_matting, available_cpus()
    )
    return Cutouts(models.get, make_cutout_variants)


def make_variants(data: bytes, options: ImagingOptions) -> ProcessedImage:
    """Run the imaging core, imported on first use so that skipped events never load Pillow."""
    from image_pipeline.imaging import make_variants as core

    return core(data, options)


def make_cutout_variants(
    data: bytes, options: ImagingOptions, cutout: LoadedCutout, on_content_done: Callable[[], None]
) -> ProcessedImage:
    """Run the imaging core with the route's cutout step."""
    from image_pipeline.imaging import make_variants as core
    from image_pipeline.imaging.cutout import cutout_step

    steps = (cutout_step(cutout.matting, cutout.spec.trim),)
    return core(data, options, content_steps=steps, on_content_done=on_content_done)


def load_matting(model: bytes, spec: CutoutSpec, threads: int) -> Any:
    """Verify and load a model; numpy and onnxruntime are imported here, by the first event of a cutout route."""
    from image_pipeline.imaging.cutout import load_matting as load

    return load(model, spec, threads)
