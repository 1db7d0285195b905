"""User settings persisted as a small JSON file in the data dir (atomic writes).

Secrets never stay in it: a remote server's API key found in plain text (saved by an older Orchard, or written by
hand) is moved into the platform's keychain (``core.secrets``) the first time the settings are loaded, and the
file keeps ``api_key_ref``, the keychain entry's name. Where no keychain exists the key stays where it is (nothing
is lost) and ``plain_key_warning()`` says why, for the window and the CLI to show.
"""

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
_UPDATE_LOCK = threading.RLock()  # re-entered when a load inside update_settings migrates keys
_plain_key_warning: str | None = None  # why API keys are still in plain text (no keychain), while they are
_failed_keychain: object = None  # the keyring backend that could not take them: not asked again by this process

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
    # OpenAI-compatible servers: {name, url} and api_key_ref (the key's keychain entry) or api_key_env
    remote_endpoints: list[dict] = field(default_factory=list)
    welcome_done: bool = False  # the first-run welcome screen was answered (download, browse or skip)
    serve_on_launch: bool = False  # the sidebar's server switch was on at the last quit: serve again at launch
    server_port: int = DEFAULT_PORT  # the port that switch serves on
    cpu_threads: int = 0  # llama.cpp's threads on the CPU; 0 = automatic (the window leaves a core to itself)

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        path = path or paths.settings_file()
        raw = _read(path)
        if isinstance(raw, dict) and _plain_keys(raw):
            raw = _keys_to_keychain(path) or raw
        else:
            _clear_plain_key_warning()
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
        _write(path or paths.settings_file(), asdict(self))


def _read(path: Path) -> object:
    """The file's JSON, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        # A broken settings file must not stop the app; keep it for the user to inspect.
        log.warning("ignoring unreadable settings %s: %s", path, exc)
        return None


def _write(path: Path, data: dict) -> None:
    """Replace the file in one step: a reader sees the old settings or the new, never half of them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".settings-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _plain_keys(raw: dict) -> list[dict]:
    """The remote servers in ``raw`` whose API key is saved in plain text."""
    endpoints = raw.get("remote_endpoints")
    return [
        e
        for e in (endpoints if isinstance(endpoints, list) else [])
        if isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("api_key"), str) and e["api_key"]
    ]


def _keys_to_keychain(path: Path) -> dict | None:
    """Move the plain-text API keys in the settings file into the keychain and rewrite the file without them.

    The file is read again under the update lock, so no concurrent ``update_settings`` is overwritten; each key
    is in the keychain (and read back) before the file loses it. Without a keychain nothing changes and the
    reason is logged once and kept for ``plain_key_warning()``. Returns the settings as now saved.
    """
    from macapp.core.secrets import KeychainUnavailable, keyring_backend, remote_key_ref, store_secret

    global _plain_key_warning, _failed_keychain
    backend = keyring_backend()
    if _plain_key_warning is not None and backend is _failed_keychain:
        return None  # asked once already: a locked keychain would prompt at every load
    with _UPDATE_LOCK:
        raw = _read(path)
        if not isinstance(raw, dict):
            return None
        plain = _plain_keys(raw)
        moved = 0
        try:
            for endpoint in plain:
                ref = remote_key_ref(endpoint["name"])
                store_secret(ref, endpoint["api_key"])
                del endpoint["api_key"]
                endpoint["api_key_ref"] = ref
                moved += 1
        except KeychainUnavailable as exc:
            left = len(plain) - moved
            warning = (
                f"{left} remote server API key{'s are' if left != 1 else ' is'} still saved in plain text in "
                f"{path}: {exc.message} ({exc.hint}; or remove the server and add it again with "
                "--api-key-env VAR, the key in an environment variable)"
            )
            log.warning("%s", warning)
            _plain_key_warning, _failed_keychain = warning, backend
        else:
            _clear_plain_key_warning()
        if moved:
            try:
                _write(path, raw)
            except OSError as exc:  # the keys are in the keychain and still in the file: the next load tries again
                log.warning("could not rewrite %s without its API keys: %s", path, exc)
            else:
                log.info("moved %d remote server API key(s) from %s into the keychain", moved, path)
        return raw


def _clear_plain_key_warning() -> None:
    global _plain_key_warning, _failed_keychain
    _plain_key_warning = _failed_keychain = None


def plain_key_warning() -> str | None:
    """Why remote servers' API keys are still in plain text in settings.json (no keychain), or None.

    Set by the last load that found such keys and could not move them."""
    return _plain_key_warning


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
