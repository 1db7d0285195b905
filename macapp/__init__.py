"""Orchard: local LLMs on Apple Silicon (package ``macapp``)."""

from __future__ import annotations

APP_NAME = "Orchard"


def __getattr__(name: str) -> str:
    """``macapp.__version__``, looked up on first use (package metadata costs ~20 ms at start-up)."""
    if name != "__version__":
        raise AttributeError(name)
    from importlib import metadata

    try:
        version = metadata.version("macapp")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        version = "0.0.0+src"
    globals()["__version__"] = version
    return version
