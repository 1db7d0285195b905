"""llama.cpp's log, captured: it holds the real reason a load failed.

llama-cpp-python only says "Failed to load model from file"; llama.cpp logs why ("unknown model
architecture", "tensor data is not within the file bounds", ...). ``install()`` routes the native
log into Python logging (debug level) and into any active ``capture()``; ``load_failure_reason``
turns captured lines into one sentence.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator

log = logging.getLogger("macapp.llama_cpp")
_sinks: list[list[str]] = []
_lock = threading.Lock()
_callback = None  # the C function pointer must outlive every log call


def install() -> None:
    """Route llama.cpp's log to us (once per process). Nothing reaches stderr any more."""
    global _callback
    if _callback is not None:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback
    def on_log(level: int, text: bytes, _user) -> None:
        line = text.decode("utf-8", "replace") if text else ""
        with _lock:
            for sink in _sinks:
                sink.append(line)
        if line.strip():
            log.debug("%s", line.rstrip())

    _callback = on_log
    llama_cpp.llama_log_set(on_log, None)


@contextlib.contextmanager
def capture() -> Iterator[list[str]]:
    """Collect llama.cpp log text written while the block runs (any thread)."""
    install()
    sink: list[str] = []
    with _lock:
        _sinks.append(sink)
    try:
        yield sink
    finally:
        with _lock:
            _sinks.remove(sink)


_REASONS = [
    (
        re.compile(r"unknown model architecture: '([^']+)'"),
        "its architecture '{0}' is not supported by this version of llama.cpp",
    ),
    (
        re.compile(r"tensor '([^']+)' data is not within the file bounds"),
        "the file is truncated (tensor '{0}' ends past the end of the file); download it again",
    ),
    (re.compile(r"missing tensor '([^']+)'"), "it lacks the tensor '{0}'; the file is incomplete or not a model"),
    (re.compile(r"unknown \(magic, version\) combination|invalid magic characters"), "it is not a GGUF file"),
    (re.compile(r"failed to allocate|unable to allocate|out of memory", re.I), "there is not enough memory for it"),
    (re.compile(r"error loading model(?: vocabulary)?: (.+)"), "{0}"),
]


def load_failure_reason(lines: list[str]) -> str | None:
    """The most specific reason found in captured log lines, or None."""
    text = "".join(lines)
    for pattern, template in _REASONS:
        match = pattern.search(text)
        if match:
            return template.format(*(g.strip() for g in match.groups()))
    return None
