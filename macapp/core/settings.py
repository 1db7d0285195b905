"""User settings persisted as a small JSON file in the data dir (atomic writes)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from macapp.core import paths

log = logging.getLogger(__name__)
_UPDATE_LOCK = threading.Lock()

DEFAULT_PORT = 8377  # Orchard's local server (core.server), unless the user picks another


@dataclass
class Settings:
    """Everything the user can set; unknown keys in the file are ignored, missing ones default."""

    model_dirs: list[str] = field(default_factory=list)  # folders scanned for .gguf files
    model_files: list[str] = field(default_factory=list)  # single files added by drag and drop
    include_lm_studio: bool = True
    default_ctx: int = 8192
    kv_type: str = "f16"
    window_geometry: str = ""
    embedder_path: str = ""  # a GGUF embedding model; "" = the bundled all-MiniLM-L6-v2
    remote_endpoints: list[dict] = field(default_factory=list)  # OpenAI-compatible servers: {name, url, api_key}
    welcome_done: bool = False  # the first-run welcome screen was answered (download, browse or skip)
    serve_on_launch: bool = False  # the sidebar's server switch was on at the last quit: serve again at launch
    server_port: int = DEFAULT_PORT  # the port that switch serves on

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        path = path or paths.settings_file()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            # A broken settings file must not stop the app; keep it for the user to inspect.
            log.warning("ignoring unreadable settings %s: %s", path, exc)
            return cls()
        if not isinstance(raw, dict):
            return cls()
        known = {f.name: f for f in fields(cls)}
        values = {}
        for key, value in raw.items():
            if key in known and isinstance(value, type(getattr(cls(), key))):
                values[key] = value
        if "welcome_done" not in raw:  # saved by a version before the welcome: this person has used Orchard
            values["welcome_done"] = True
        return cls(**values)

    def save(self, path: Path | None = None) -> None:
        path = path or paths.settings_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".settings-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(asdict(self), fh, indent=2)
        os.replace(tmp, path)


def update_settings(change: Callable[[Settings], None], path: Path | None = None) -> Settings:
    """Apply ``change`` to the settings on disk and save, as one step no other thread interleaves.

    The window (geometry, folders) and workers (files added by drag and drop) both write
    settings; each reads the file fresh under this lock, so one save never drops another's.
    """
    with _UPDATE_LOCK:
        settings = Settings.load(path)
        change(settings)
        settings.save(path)
        return settings
