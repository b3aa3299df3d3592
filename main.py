"""Cloud Functions entry point: reads the settings once and hands each storage event to the pipeline."""

import os

import functions_framework
from cloudevents.http import CloudEvent

from image_pipeline import logs
from image_pipeline.function import Function
from image_pipeline.settings import Settings

SETTINGS = Settings.from_env()
logs.configure(level=SETTINGS.log_level.value)
FUNCTION = Function(SETTINGS)
if SETTINGS.warm_up:
    # functions-framework imports this module in gunicorn's arbiter, which listens, then forks the worker that serves
    # events; a thread does not survive a fork, so each worker starts its own warm-up as it begins serving.
    os.register_at_fork(after_in_child=FUNCTION.start_warm_up)


@functions_framework.cloud_event
def process_image(cloud_event: CloudEvent) -> None:
    """Handle one `google.cloud.storage.object.v1.finalized` event; an exception makes the platform retry it."""
    FUNCTION.handle(cloud_event["id"], cloud_event.get("time"), cloud_event.data)
