"""The local model library: GGUF files in the Hugging Face cache, folders the user added,
single files dropped on the window, and LM Studio's models folder when present.

A model is named by its short id (``smollm2-135m-instruct-q4_1``, see ``model_ids``), a file path, or
the long id older versions used and stored (``org/repo/file.gguf`` for the HF cache,
``lmstudio:publisher/repo/file.gguf``, or ``local:<path>``). Bad files stay in the list with a
readable reason instead of facts. Facts are cached by (path, size, mtime) so a large library
lists quickly.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from macapp.core import paths
from macapp.core.errors import UserError
from macapp.core.models.facts import ModelFacts, facts_from_header, read_facts
from macapp.core.models.gguf_header import GGUFError, read_header_from_path
from macapp.core.models.model_ids import assign_short_ids, short_name, split_name
from macapp.core.progress import CancelToken
from macapp.core.settings import Settings, update_settings

log = logging.getLogger(__name__)

_SKIP = re.compile(r"mmproj|\.imatrix", re.I)  # vision projectors and importance matrices
MAX_SCAN_DEPTH = 6


@dataclass
class LibraryEntry:
    """One model in the library: its facts, or the reason it cannot be used."""

    id: str  # the short id: smollm2-135m-instruct-q4_1
    path: str
    source: str  # hf-cache | folder | lm-studio | file
    facts: ModelFacts | None = None
    error: str | None = None
    long_id: str = ""  # org/repo/file.gguf, lmstudio:…, local:<path> (what older versions stored)

    @property
    def name(self) -> str:
        return Path(self.path).name

    def known_as(self, ref: str) -> bool:
        """``ref`` names this model: its short id, its long id or its path."""
        return ref in (self.id, self.long_id, self.path)


@dataclass(frozen=True)
class LibraryFile:
    """A model file the library knows, before its header is read."""

    id: str  # the short id
    long_id: str
    source: str
    path: Path


def _split_parts(path: Path) -> list[Path] | None:
    split = split_name(path.name)
    if not split:
        return None
    stem, count = split
    return [path.with_name(f"{stem}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]


def model_facts(path: str | os.PathLike[str]) -> ModelFacts:
    """Facts of a model file; a split model (``-00001-of-00003.gguf``) is read as one model."""
    p = Path(path)
    parts = _split_parts(p)
    if not parts:
        return read_facts(p)
    missing = [x.name for x in parts if not x.exists()]
    if missing:
        raise GGUFError(f"{p.name} is part of a split model, but {', '.join(missing[:3])} is missing")
    first = read_header_from_path(parts[0])
    tensors = [t for part in parts[1:] for t in read_header_from_path(part).tensors]
    merged = replace(first, tensors=first.tensors + tensors, file_size=sum(x.stat().st_size for x in parts))
    return facts_from_header(merged, str(parts[0]), parts[0].name)


class FactsCache:
    """Facts keyed by (path, size, mtime) in a small JSON file: re-read only changed files."""

    def __init__(self, path: Path | None = None):
        self.path = path or paths.cache_dir() / "gguf-facts.json"
        try:
            self._data: dict[str, dict] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._data = {}
        self._dirty = False

    @staticmethod
    def _key(path: Path) -> str:
        st = path.stat()
        return f"{path}|{st.st_size}|{st.st_mtime_ns}"

    def get(self, path: Path) -> ModelFacts:
        key = self._key(path)
        cached = self._data.get(key)
        if cached is not None:
            try:
                return ModelFacts.from_json(cached)
            except (TypeError, KeyError):
                pass  # an older cache layout: read again
        facts = model_facts(path)
        self._data[key] = facts.to_json()
        self._dirty = True
        return facts

    def save(self) -> None:
        if self._dirty:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._data), encoding="utf-8")
            os.replace(tmp, self.path)
            self._dirty = False


def _scan_folder(root: Path, depth: int = 0) -> Iterator[Path]:
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=True) and depth < MAX_SCAN_DEPTH:
            yield from _scan_folder(Path(entry.path), depth + 1)
        elif entry.name.lower().endswith(".gguf") and not _SKIP.search(entry.name):
            parts = _split_parts(Path(entry.path))
            if parts and parts[0].name != entry.name:
                continue  # list a split model once, by its first part
            yield Path(entry.path)


def _hf_cache_models(cache: Path) -> Iterator[tuple[str, Path]]:
    """(``org/repo/file``, path) for every GGUF in the newest snapshot of each cached repo."""
    if not cache.is_dir():
        return
    for repo_dir in sorted(cache.glob("models--*")):
        repo_id = repo_dir.name[len("models--") :].replace("--", "/")
        snapshots = [s for s in (repo_dir / "snapshots").glob("*") if s.is_dir()]
        seen: set[str] = set()
        for snap in sorted(snapshots, key=lambda s: s.stat().st_mtime, reverse=True):
            for path in _scan_folder(snap):
                rel = path.relative_to(snap).as_posix()
                if rel not in seen and path.exists():  # a symlink whose blob is gone is skipped
                    seen.add(rel)
                    yield f"{repo_id}/{rel}", path


def iter_model_files(settings: Settings | None = None) -> Iterator[tuple[str, str, Path]]:
    """(long id, source, path) for every GGUF the library knows, without reading any header."""
    settings = settings or Settings.load()
    seen: set[str] = set()

    def once(ident: str, source: str, path: Path) -> Iterator[tuple[str, str, Path]]:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            yield ident, source, path

    for ident, path in _hf_cache_models(paths.hf_hub_cache()):
        yield from once(ident, "hf-cache", path)
    for folder in settings.model_dirs:
        for path in _scan_folder(Path(folder).expanduser()):
            yield from once(f"local:{path}", "folder", path)
    for file in settings.model_files:
        path = Path(file).expanduser()
        if path.exists():
            yield from once(f"local:{path}", "file", path)
    lms = paths.lm_studio_models_dir() if settings.include_lm_studio else None
    if lms:
        for path in _scan_folder(lms):
            yield from once(f"lmstudio:{path.relative_to(lms).as_posix()}", "lm-studio", path)


def library_files(settings: Settings | None = None) -> list[LibraryFile]:
    """Every GGUF the library knows, with its short id (no header is read)."""
    found = list(iter_model_files(settings))
    short = assign_short_ids(found)
    return [LibraryFile(short[long_id], long_id, source, path) for long_id, source, path in found]


def iter_library(settings: Settings | None = None, cancel: CancelToken | None = None) -> Iterator[LibraryEntry]:
    """Yield every model in the library with its facts (or the reason it is unusable), one by one.

    Headers are read as the entries are yielded, so a caller can show rows as they come;
    ``cancel`` stops the scan between files (raising ``Cancelled``).
    """
    cache = FactsCache()
    try:
        for file in library_files(settings):
            if cancel is not None:
                cancel.raise_if_cancelled()
            yield load_entry(file.id, file.source, file.path, cache, long_id=file.long_id)
    finally:
        cache.save()


def list_library(settings: Settings | None = None) -> list[LibraryEntry]:
    """Every model in the library (see ``iter_library``)."""
    return list(iter_library(settings))


def load_entry(
    ident: str, source: str, path: Path, cache: FactsCache | None = None, *, long_id: str = ""
) -> LibraryEntry:
    entry = LibraryEntry(ident, str(path), source, long_id=long_id or ident)
    try:
        entry.facts = cache.get(path) if cache else model_facts(path)
    except UserError as exc:
        entry.error = exc.message
    except OSError as exc:
        entry.error = f"cannot read {path.name}: {exc.strerror or exc}"
    return entry


def add_model_file(path: str | os.PathLike[str], settings_path: Path | None = None) -> LibraryEntry:
    """Add one .gguf file (drag and drop) to the library; returns its entry (facts or reason)."""
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise UserError(f"{p} is not a file")
    if p.suffix.lower() != ".gguf":
        raise UserError(f"{p.name} is not a .gguf file", hint="Orchard runs GGUF models")

    def remember(s: Settings) -> None:
        if str(p) not in s.model_files:
            s.model_files.append(str(p))

    settings = update_settings(remember, settings_path)
    real = os.path.realpath(p)
    file = next((f for f in library_files(settings) if os.path.realpath(f.path) == real), None)
    if file is None:  # not listed after all (cannot happen unless the file went meanwhile)
        return load_entry(short_name(p.name), "file", p, long_id=f"local:{p}")
    return load_entry(file.id, file.source, file.path, long_id=file.long_id)


def match_files(ref: str, files: list[LibraryFile]) -> list[LibraryFile]:
    """The library files ``ref`` names: by short id (any case) or long id first, else by file name or by
    a long id's part after ``local:`` / ``lmstudio:`` (a file name can match several)."""
    exact = [f for f in files if ref in (f.id, f.long_id) or ref.lower() == f.id]
    if exact:
        return exact
    return [f for f in files if ref in (f.path.name, f.long_id.split(":", 1)[-1])]


def resolve_model(ref: str, settings: Settings | None = None) -> Path:
    """A path, a short or long library id, or a unique file name in the library -> the model's path."""
    p = Path(ref).expanduser()
    if p.exists():
        if p.is_dir():
            raise UserError(f"{ref} is a folder; name a .gguf file")
        return p
    candidates = match_files(ref, library_files(settings))
    if len(candidates) == 1:
        return candidates[0].path
    if len(candidates) > 1:
        ids = ", ".join(sorted(f.id for f in candidates)[:4])
        raise UserError(f"{ref!r} matches {len(candidates)} models ({ids})", hint="use the id `macapp models` shows")
    raise UserError(f"no model {ref!r}: not a file and not in the library", hint="see `macapp models`")
