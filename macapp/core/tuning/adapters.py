"""The adapter registry: ``adapters_dir()/<name>/`` holds an mlx-lm adapter and ``orchard.json`` about it.

An adapter folder is what ``mlx_lm.load(base, adapter_path=folder)`` reads (``adapters.safetensors``
and ``adapter_config.json``), plus ``orchard.json``: name, base (path and identity), dataset sha256,
settings, final train/validation losses, size and creation time. A training run that has not
finished (cancelled, crashed) has ``run.json`` and a checkpoint but no ``orchard.json``: it is
listed as ``incomplete`` and can be resumed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from macapp.core import paths
from macapp.core.errors import UserError

MANIFEST = "orchard.json"
RUN_FILE = "run.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class AdapterNotFound(UserError, LookupError):
    """No adapter with that name in the registry."""


@dataclass
class AdapterInfo:
    """One adapter in the registry (``status`` is ``complete`` or ``incomplete`` = resumable)."""

    name: str
    path: Path
    status: str
    base_path: str
    base_identity: dict[str, Any] = field(default_factory=dict)
    dataset_sha256: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    train_loss: float | None = None
    val_loss: float | None = None
    iterations: int = 0
    size_bytes: int = 0
    created: str = ""

    @property
    def adapter_file(self) -> Path:
        return self.path / "adapters.safetensors"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


def validate_name(name: str) -> str:
    """An adapter name is a folder name: letters, digits, ``.``, ``_``, ``-``; no path separators or ``..``."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise UserError(
            f"Invalid adapter name {name!r}",
            hint="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def adapter_path(name: str) -> Path:
    """The folder of adapter ``name`` (it may not exist yet)."""
    root = paths.adapters_dir()
    path = root / validate_name(name)
    if path.resolve().parent != root.resolve():
        raise UserError(f"Invalid adapter name {name!r}")
    return path


def base_identity(base_dir: str | Path) -> dict[str, Any]:
    """What identifies a base model: model type, config hash and weight files (name and size), one fingerprint."""
    base = Path(base_dir)
    config = (base / "config.json").read_bytes()
    files = sorted((f.name, f.stat().st_size) for f in base.glob("*.safetensors"))
    digest = hashlib.sha256(config)
    for fname, size in files:
        digest.update(f"\0{fname}\0{size}".encode())
    try:
        model_type = json.loads(config).get("model_type")
    except (ValueError, AttributeError):
        model_type = None
    return {
        "model_type": model_type,
        "config_sha256": hashlib.sha256(config).hexdigest(),
        "weights_bytes": sum(size for _, size in files),
        "fingerprint": digest.hexdigest(),
    }


def _adapter_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("adapter*") if f.is_file())


def write_manifest(
    name: str,
    *,
    base_path: str,
    base_id: dict[str, Any],
    dataset_sha256: str,
    settings: dict[str, Any],
    train_loss: float | None,
    val_loss: float | None,
    iterations: int,
) -> AdapterInfo:
    """Record a finished adapter (written atomically; the adapter files must already be in place)."""
    folder = adapter_path(name)
    info = AdapterInfo(
        name=name,
        path=folder,
        status="complete",
        base_path=base_path,
        base_identity=base_id,
        dataset_sha256=dataset_sha256,
        settings=settings,
        train_loss=train_loss,
        val_loss=val_loss,
        iterations=iterations,
        size_bytes=_adapter_size(folder),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    data = info.to_json()
    del data["path"], data["status"]
    tmp = folder / f".{MANIFEST}.partial"
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)
    return info


def _read(folder: Path) -> AdapterInfo | None:
    manifest = folder / MANIFEST
    try:
        if manifest.is_file():
            data = json.loads(manifest.read_text(encoding="utf-8"))
            known = {k: v for k, v in data.items() if k in AdapterInfo.__dataclass_fields__}
            return AdapterInfo(**{**known, "name": folder.name, "path": folder, "status": "complete"})
        run_file = folder / RUN_FILE
        if run_file.is_file():
            run = json.loads(run_file.read_text(encoding="utf-8"))
            done = (
                json.loads((folder / "checkpoint.json").read_text()) if (folder / "checkpoint.json").is_file() else {}
            )
            return AdapterInfo(
                name=folder.name,
                path=folder,
                status="incomplete",
                base_path=run.get("base", ""),
                base_identity=run.get("base_identity", {}),
                dataset_sha256=run.get("dataset_sha256", ""),
                settings=run.get("settings", {}),
                iterations=int(done.get("iteration", 0)),
                size_bytes=_adapter_size(folder),
                created=run.get("created", ""),
            )
    except (OSError, ValueError, TypeError):
        return None  # a damaged folder is not an adapter; it is left for the user to inspect
    return None


def list_adapters(include_incomplete: bool = False) -> list[AdapterInfo]:
    """Adapters by name; with ``include_incomplete`` also runs that can be resumed."""
    root = paths.adapters_dir()
    if not root.is_dir():
        return []
    found = [_read(folder) for folder in sorted(root.iterdir()) if folder.is_dir() and _NAME.match(folder.name)]
    return [a for a in found if a is not None and (include_incomplete or a.status == "complete")]


def get_adapter(name: str, include_incomplete: bool = False) -> AdapterInfo:
    folder = adapter_path(name)
    info = _read(folder) if folder.is_dir() else None
    if info is None or (info.status != "complete" and not include_incomplete):
        raise AdapterNotFound(f"No adapter named {name!r}", hint="`macapp adapters` lists them")
    return info


def delete_adapter(name: str) -> bool:
    """Delete an adapter's folder (complete or not). False if there was none."""
    folder = adapter_path(name)
    if not folder.is_dir():
        return False
    shutil.rmtree(folder)
    return True


# -- adapters as the engines take them -------------------------------------------------------------
# The engines know files, not this registry: ``engine_adapter`` turns what a user named (a registry
# name, an adapter folder, or a GGUF LoRA file) into an ``engines.base.AdapterFiles``, and the engine
# ``open_engine`` chose asks it for the form it reads.


@dataclass(frozen=True)
class EngineAdapter:
    """A registry name, an adapter folder or a GGUF LoRA file, resolved when an engine asks for it."""

    ref: str

    def folder(self) -> Path:
        return adapter_folder(self.ref)

    def gguf_lora(self) -> Path:
        return gguf_lora_for(self.ref)


def engine_adapter(ref: str | None) -> EngineAdapter | None:
    """What ``open_engine``/``Engine.use_adapter`` take for the adapter the user named (None: the base alone)."""
    return EngineAdapter(ref) if ref else None


def adapter_folder(adapter: str) -> Path:
    """An adapter's folder from its registry name or a path."""
    folder = Path(adapter).expanduser()
    if folder.is_dir():
        return folder
    return get_adapter(adapter).path


def gguf_lora_for(adapter: str) -> Path:
    """A GGUF LoRA file for ``adapter``: the file itself, or the adapter exported once next to its weights."""
    path = Path(adapter).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path
    folder = adapter_folder(adapter)
    out = folder / "lora.gguf"
    weights = folder / "adapters.safetensors"
    if not out.is_file() or (weights.is_file() and weights.stat().st_mtime > out.stat().st_mtime):
        from macapp.core.tuning.export import export_gguf_lora

        export_gguf_lora(folder, adapter_base(folder), out)
    return out


def adapter_base(folder: Path) -> str:
    """The base model an adapter was trained on: Orchard's manifest, else mlx-lm's ``adapter_config.json``."""
    for name, key in ((MANIFEST, "base_path"), ("adapter_config.json", "model")):
        try:
            base = json.loads((folder / name).read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError):
            continue
        if base:
            return str(base)
    raise UserError(
        f"The adapter {folder.name} doesn't say which base model it was trained on",
        hint="export it with `macapp export ADAPTER --gguf-lora OUT --base DIR`",
    )
