"""Decoder warnings as facts about one image, never as lines on stderr and never through process-wide state per call.

Installed once, at import: one `warnings.showwarning` hook, one libtiff error handler and one handler on Pillow's and
pyvips' loggers (Pillow logs some damaged TIFFs as errors, which Python would print bare on stderr). Each hands what
it gets while a core call is running to that call's collector, found through a context variable (the call's encode
threads run in a copy of its context); outside a core call everything goes where it went before. The filters are set
once too, so that the default "once per location" rule does not hide a warning from the second image that raises it.
"""

from __future__ import annotations

import contextvars
import ctypes
import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from PIL import Image

from image_pipeline.errors import ImageRejected, RejectionCode
from image_pipeline.results import DecoderWarnings

# What one image keeps of its warnings besides their count (a hostile TIFF can raise hundreds).
MAX_MESSAGES = 5
MAX_MESSAGE_CHARS = 300
_LIBTIFF_MESSAGE_BYTES = 1024


class WarningCollector:
    """The warnings of one core call, from its own thread and from its encode threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._messages: list[str] = []

    def add(self, message: str) -> None:
        """Count a warning and keep its text if it is one of the first few distinct ones."""
        text = " ".join(message.split())[:MAX_MESSAGE_CHARS]
        with self._lock:
            self._count += 1
            if len(self._messages) < MAX_MESSAGES and text not in self._messages:
                self._messages.append(text)

    def facts(self) -> DecoderWarnings:
        """What was collected so far."""
        with self._lock:
            return DecoderWarnings(self._count, tuple(self._messages))


_current: contextvars.ContextVar[WarningCollector | None] = contextvars.ContextVar(
    "decoder_warning_collector", default=None
)


@contextmanager
def collecting() -> Iterator[WarningCollector]:
    """Collect the warnings raised in this context (and in contexts copied from it) until the block ends."""
    collector = WarningCollector()
    token = _current.set(collector)
    try:
        yield collector
    finally:
        _current.reset(token)


_previous_showwarning = warnings.showwarning


def _showwarning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    collector = _current.get()
    if collector is None:
        _previous_showwarning(message, category, filename, lineno, file, line)
    elif issubclass(category, Image.DecompressionBombWarning):
        # Pillow's own ceiling is a backstop behind our header checks; past it, decoding must not go on.
        raise ImageRejected(RejectionCode.TOO_LARGE, f"decompression bomb refused: {message}")
    else:
        collector.add(str(message))


def _install_showwarning_hook() -> None:
    warnings.showwarning = _showwarning
    warnings.filterwarnings("always", category=UserWarning, module=r"PIL\.|pillow_heif")
    warnings.filterwarnings("always", category=Image.DecompressionBombWarning)


# libtiff reports damaged files through its error handler, which prints to stderr from C unless replaced (Pillow
# silences libtiff's warning handler but not this one). The handler takes C varargs; libc formats them.
_LibtiffHandler = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)


class _LibtiffErrors:
    """The libtiff error handler: into the current call's collector, else to the handler it replaced."""

    def __init__(self, libtiff: ctypes.CDLL, libc: ctypes.CDLL) -> None:
        self._vsnprintf = libc.vsnprintf
        self._vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
        set_handler = libtiff.TIFFSetErrorHandler
        set_handler.argtypes = [_LibtiffHandler]
        set_handler.restype = _LibtiffHandler
        # Kept referenced for the life of the process: libtiff holds a pointer to it.
        self._handler = _LibtiffHandler(self._report)
        self._previous = set_handler(self._handler)

    def _report(self, module: bytes | None, message_format: bytes, arguments: int | None) -> None:
        collector = _current.get()
        if collector is None:
            if self._previous:
                self._previous(module, message_format, arguments)
            return
        buffer = ctypes.create_string_buffer(_LIBTIFF_MESSAGE_BYTES)
        self._vsnprintf(buffer, len(buffer), message_format, arguments)
        source = f"libtiff {module.decode(errors='replace')}" if module else "libtiff"
        collector.add(f"{source}: {buffer.value.decode(errors='replace')}")


def _install_libtiff_handler() -> _LibtiffErrors | None:
    # Pillow's wheels link a private copy of libtiff; it is reached through the library that links it (dlsym searches
    # a library's dependencies), as no public Pillow API sets libtiff's handlers.
    try:
        return _LibtiffErrors(ctypes.CDLL(Image.core.__file__), ctypes.CDLL(None))
    except (OSError, AttributeError, TypeError):
        return None  # Pillow without libtiff, or no C library to format with: libtiff keeps printing


class _LibraryLog(logging.Handler):
    """Warnings and errors logged by the imaging libraries: into the current call's collector, else to the root logger
    (its handlers, or Python's last-resort stderr handler when it has none), where they went before."""

    def emit(self, record: logging.LogRecord) -> None:
        collector = _current.get()
        if collector is None:
            logging.getLogger().handle(record)
        else:
            collector.add(f"{record.name}: {record.getMessage()}")


def _install_library_log_handler() -> None:
    handler = _LibraryLog(logging.WARNING)
    for name in ("PIL", "pyvips"):
        library = logging.getLogger(name)
        library.addHandler(handler)
        library.propagate = False  # the handler passes on what is not a core call's


_install_showwarning_hook()
_libtiff_errors = _install_libtiff_handler()
_install_library_log_handler()
