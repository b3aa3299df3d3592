"""Cloud Functions entry point: reads the settings once and hands each storage event to the pipeline."""

import functions_framework
from cloudevents.http import CloudEvent

from image_pipeline import logs
from image_pipeline.function import Function
from image_pipeline.settings import Settings

SETTINGS = Settings.from_env()
logs.configure(level=SETTINGS.log_level.value)
FUNCTION = Function(SETTINGS)


@functions_framework.cloud_event
def process_image(cloud_event: CloudEvent) -> None:
    """Handle one `google.cloud.storage.object.v1.finalized` event; an exception makes the platform retry it."""
    FUNCTION.handle(cloud_event["id"], cloud_event.get("time"), cloud_event.data)
