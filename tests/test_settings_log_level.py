"""LOG_LEVEL: read, validated, and applied to the package's logger."""

import io
import json
import logging

import pytest

from image_pipeline import logs
from image_pipeline.errors import ConfigurationError
from image_pipeline.settings import LogLevel, Settings


@pytest.mark.parametrize(
    ("raw", "expected"), [("DEBUG", LogLevel.DEBUG), ("warning", LogLevel.WARNING), ("", LogLevel.INFO)]
)
def test_log_level_is_read(raw, expected):
    assert Settings.from_env({"LOG_LEVEL": raw}).log_level is expected


def test_unknown_log_level_names_the_variable():
    with pytest.raises(ConfigurationError, match="LOG_LEVEL"):
        Settings.from_env({"LOG_LEVEL": "loud"})


@pytest.mark.parametrize(("level", "shown"), [("warning", ["WARNING"]), ("info", ["INFO", "WARNING"])])
def test_configured_level_filters_records(level, shown):
    stream = io.StringIO()
    logs.configure(stream=stream, level=level)
    logger = logging.getLogger("image_pipeline.test")
    logs.log(logger, logging.INFO, "routine", stage="x")
    logs.log(logger, logging.WARNING, "odd", stage="y")
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [record["severity"] for record in records] == shown
    logs.configure(stream=io.StringIO())
