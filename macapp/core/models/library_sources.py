"""What the library watches, changed by a person: folders to scan and single files, added or forgotten.

The window's Models page (Add folder…), its Settings dialog (Remove) and ``macapp models add/remove``
all go through here. Forgetting only edits settings: the model files themselves are never deleted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from macapp.core.errors import UserError
from macapp.core.settings import Settings, update_settings

Kind = Literal["file", "folder"]


@dataclass(frozen=True)
class Forgotten:
    """What ``forget`` took out of the library: a single file or a watched folder (its path as saved)."""

    kind: Kind
    path: str


def add_model_folder(folder: str | os.PathLike[str], settings_path: Path | None = None) -> str:
    """Watch ``folder`` (and its subfolders) for .gguf models; returns the folder as saved.

    Adding a folder that is already watched changes nothing.
    """
    p = Path(folder).expanduser()
    if not p.exists():
        raise UserError(f"{p} does not exist")
    if not p.is_dir():
        raise UserError(f"{p} is not a folder")
    saved = os.path.abspath(p)  # as the person named it (symlinks kept), made absolute

    def remember(s: Settings) -> None:
        if not any(_same(saved, known) for known in s.model_dirs):
            s.model_dirs.append(saved)

    update_settings(remember, settings_path)
    return saved


def is_watched(folder: str | os.PathLike[str], settings: Settings | None = None) -> bool:
    settings = settings or Settings.load()
    return any(_same(folder, known) for known in settings.model_dirs)


def _same(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    return os.path.realpath(Path(a).expanduser()) == os.path.realpath(Path(b).expanduser())


def forget(ref: str, settings_path: Path | None = None) -> Forgotten:
    """Take a watched folder or an added file out of the library, named by its path or library id.

    A model found any other way (inside a watched folder, the Hugging Face cache, LM Studio's folder)
    cannot be forgotten on its own; the error says what to do instead.
    """
    settings = Settings.load(settings_path)
    found = _saved_match(ref.removeprefix("local:"), settings)  # ``local:<path>`` is how older ids named a file
    if found is None:
        found = _match_by_library_id(ref, settings)
    kind, saved = found
    field = "model_dirs" if kind == "folder" else "model_files"

    def drop(s: Settings) -> None:
        setattr(s, field, [p for p in getattr(s, field) if not _same(p, saved)])

    update_settings(drop, settings_path)
    return Forgotten(kind, saved)


def _saved_match(ref: str, settings: Settings) -> tuple[Kind, str] | None:
    saved_paths: list[tuple[Kind, str]] = [("folder", p) for p in settings.model_dirs]
    saved_paths += [("file", p) for p in settings.model_files]
    for kind, saved in saved_paths:
        if ref == saved or (Path(ref).expanduser().exists() and _same(ref, saved)):
            return kind, saved
    return None


def _match_by_library_id(ref: str, settings: Settings) -> tuple[Kind, str]:
    from macapp.core.models.library import list_library

    on_disk = Path(ref).expanduser().exists()
    entries = [
        e for e in list_library(settings) if e.known_as(ref) or ref == e.name or (on_disk and _same(ref, e.path))
    ]
    if not entries:
        if on_disk:
            raise UserError(f"{ref} is not in the library", hint="`macapp models` lists what is")
        raise UserError(f"no model or folder {ref!r} in the library", hint="`macapp models` lists them")
    if len(entries) > 1:
        raise UserError(f"{ref!r} matches {len(entries)} models", hint="use the id `macapp models` shows")
    entry = entries[0]
    if entry.source == "file":
        saved = next((p for p in settings.model_files if _same(p, entry.path)), entry.path)
        return "file", saved
    if entry.source == "folder":
        folder = next((d for d in settings.model_dirs if _inside(entry.path, d)), None)
        raise UserError(
            f"{entry.name} is in the folder {folder or 'a watched folder'}, which Orchard watches",
            hint=f"forget the whole folder with `macapp models remove {folder}`" if folder else None,
        )
    if entry.source == "hf-cache":
        repo = next(
            (
                part[len("models--") :].replace("--", "/")
                for part in Path(entry.path).parts
                if part.startswith("models--")
            ),
            "ORG/REPO",
        )
        raise UserError(
            f"{entry.name} is a download in the Hugging Face cache, not a file you added",
            hint=f"`hf cache rm model/{repo}` deletes the download",
        )
    raise UserError(
        f"{entry.name} is in LM Studio's models folder",
        hint="turn off “Include LM Studio's models” in Settings to hide them",
    )


def _inside(path: str, folder: str) -> bool:
    real, root = os.path.realpath(path), os.path.realpath(Path(folder).expanduser())
    return real.startswith(root.rstrip(os.sep) + os.sep)
