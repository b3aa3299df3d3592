"""Backfill: run the function's use case on uploads already in the bucket, skipping what is done, sharded over tasks.

Each listed object becomes the event the function would have received (its own resource, timed now) and goes
through the same classify, guard and handle_upload on the same adapters. Nothing is kept per object, so a listing
of millions streams through in constant memory, and a rerun skips whatever an earlier run settled.
"""

from __future__ import annotations

import logging

# The backfill's log lines keep the logger name they always had: operators' filters and metrics select on it.
LOGGER = logging.getLogger("image_pipeline.backfill")
