"""What the Models page runs in workers: the library scan (with the hardware probe) and adding files.

Core modules are imported inside the functions, on the worker thread, so the window paints
before they load.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from macapp.core.errors import UserError

if TYPE_CHECKING:
    from macapp.core.hardware import Hardware
    from macapp.core.models.library import LibraryEntry

log = logging.getLogger(__name__)


@dataclass
class LibraryScan:
    """What the background scan found: library entries and (first time only) this machine."""

    entries: list[LibraryEntry]
    hardware: Hardware | None


@dataclass(frozen=True)
class Rejected:
    """A file that was not added, and why (yielded by ``add_model_files`` instead of raising)."""

    path: str
    message: str


def scan_library(detect_hardware: bool) -> LibraryScan:
    """Worker function: probe the machine (once) and read the library's model headers."""
    from macapp.core.models.library import list_library

    hardware = None
    if detect_hardware:
        from macapp.core.hardware import detect

        try:
            hardware = detect()
        except Exception:  # the library is still worth showing without a budget
            log.exception("hardware detection failed")
    return LibraryScan(list_library(), hardware)


def add_model_files(paths: list[str]) -> Iterator[LibraryEntry | Rejected]:
    """Worker generator: add each file to the library, yielding its entry or why it was refused."""
    from macapp.core.models.library import add_model_file

    for path in paths:
        try:
            yield add_model_file(path)
        except UserError as exc:
            yield Rejected(path, exc.message)
