"""Orchard: local LLMs on Apple Silicon (package ``macapp``)."""

from importlib import metadata

try:
    __version__ = metadata.version("macapp")
except metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"

APP_NAME = "Orchard"
