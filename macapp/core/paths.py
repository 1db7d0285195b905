"""Where Orchard keeps its data. ``MACAPP_HOME`` overrides everything (tests set it)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_DIR_NAME = "Orchard"


def app_root() -> Path:
    """Where the app's shipped files are (``resources/``, ``models/catalog.toml``): the frozen
    bundle's folder (``sys._MEIPASS``), else the source checkout."""
    frozen = getattr(sys, "_MEIPASS", None)
    return Path(frozen) if frozen else Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """Root of Orchard's data: ``$MACAPP_HOME`` or the platform's user data dir (created)."""
    env = os.environ.get("MACAPP_HOME")
    if env:
        root = Path(env).expanduser()
    else:
        import platformdirs

        root = Path(platformdirs.user_data_dir(APP_DIR_NAME, appauthor=False))
    root.mkdir(parents=True, exist_ok=True)
    return root


def logs_dir() -> Path:
    """Log files: ``$MACAPP_HOME/logs``, else the platform's log dir (``~/Library/Logs/Orchard`` on macOS)."""
    if os.environ.get("MACAPP_HOME"):
        path = data_dir() / "logs"
    else:
        import platformdirs

        path = Path(platformdirs.user_log_dir(APP_DIR_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def settings_file() -> Path:
    return data_dir() / "settings.json"


def mcp_config_file() -> Path:
    """The user's MCP servers, in the ``mcp.json`` format Cursor and LM Studio use."""
    return data_dir() / "mcp.json"


def chats_db() -> Path:
    return data_dir() / "chats.sqlite3"


def index_dir() -> Path:
    return data_dir() / "index"


def adapters_dir() -> Path:
    return data_dir() / "adapters"


def cache_dir() -> Path:
    """Orchard's own caches (GGUF facts keyed by file identity, remote headers)."""
    path = data_dir() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache, resolved the way ``huggingface_hub`` does (without importing it)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def lm_studio_models_dir() -> Path | None:
    """LM Studio's models folder when present (``~/.lmstudio/models`` or the older ``~/.cache/lm-studio``)."""
    for candidate in (Path.home() / ".lmstudio" / "models", Path.home() / ".cache" / "lm-studio" / "models"):
        if candidate.is_dir():
            return candidate
    return None
