"""MLX-format base models for tuning: an mlx-lm directory (safetensors + config + tokenizer) from the Hub.

The repo is listed once (``model_info`` with file metadata, through ``huggingface_hub`` with the
explicit endpoint) and pinned to that commit, so every file lands in one HF-cache snapshot folder.
LFS files (the weights, usually ``tokenizer.json``) go through ``download_file``: resumable and
sha256-verified. Small plain-git files (``config.json``, ``tokenizer_config.json``…) carry no
sha256 on the Hub; they are fetched by ``hf_hub_download`` into the same snapshot and checked
against their git blob id.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

from macapp.core import paths
from macapp.core.errors import UserError
from macapp.core.models.download import download_file
from macapp.core.models.hub import endpoint, hub_errors, safe_repo_path
from macapp.core.progress import CancelToken, Progress
from macapp.core.units import format_bytes

# What mlx-lm needs to load (and tune) a model; everything else in the repo (README, GGUF, .bin, images) is skipped.
WANTED = (
    "config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "generation_config.json",
    "chat_template.jinja",
    "chat_template.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "*.tiktoken",
    "tokenization_*.py",
)


@dataclass(frozen=True)
class MlxFile:
    path: str
    size: int
    sha256: str | None  # LFS hash (verified by download_file); None for a plain git file
    git_oid: str | None  # git blob id, checked for plain files


def _wanted(name: str) -> bool:
    return "/" not in name and any(fnmatch.fnmatchcase(name, pattern) for pattern in WANTED)


def list_mlx_files(repo_id: str, revision: str = "main") -> tuple[str, list[MlxFile]]:
    """The commit and the files of ``repo_id`` an mlx-lm model needs; UserError if it is not one."""
    from huggingface_hub import HfApi

    with hub_errors(repo_id):
        info = HfApi(endpoint=endpoint()).model_info(repo_id, revision=revision, files_metadata=True)
    files = []
    for sib in info.siblings or []:
        name = sib.rfilename
        safe_repo_path(name)  # a name that would escape the snapshot folder refuses the whole model
        if not _wanted(name):
            continue
        lfs = sib.lfs
        sha = (lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)) if lfs else None
        size = (
            sib.size
            if sib.size is not None
            else ((lfs.get("size") if isinstance(lfs, dict) else getattr(lfs, "size", 0)) if lfs else 0)
        )
        files.append(MlxFile(name, int(size or 0), sha, getattr(sib, "blob_id", None)))
    names = {f.path for f in files}
    missing = [
        what
        for what, ok in (
            ("config.json", "config.json" in names),
            ("*.safetensors weights", any(n.endswith(".safetensors") for n in names)),
        )
        if not ok
    ]
    if missing:
        raise UserError(
            f"{repo_id} is not an MLX / Hugging Face model: it has no {' and no '.join(missing)}",
            hint="pick an MLX repo (e.g. from mlx-community), or pull a GGUF without --mlx",
        )
    return info.sha or revision, sorted(files, key=lambda f: f.path)


def _plain_file(repo_id: str, f: MlxFile, commit: str) -> Path:
    """A small non-LFS file through huggingface_hub into the same snapshot, checked against its git blob id."""
    from huggingface_hub import hf_hub_download

    with hub_errors(f"{repo_id}/{f.path}"):
        local = Path(
            hf_hub_download(repo_id, f.path, revision=commit, cache_dir=paths.hf_hub_cache(), endpoint=endpoint())
        )
    data = local.read_bytes()
    if f.git_oid and hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() != f.git_oid:
        local.unlink(missing_ok=True)
        raise UserError(
            f"{f.path} does not match the Hub's git blob id; the corrupt file was deleted", hint="download it again"
        )
    return local


def fetch_mlx_model(
    repo_id: str,
    revision: str = "main",
    cancel: CancelToken | None = None,
) -> Generator[Progress, None, Path]:
    """Download the mlx-lm files of ``repo_id``; yields overall progress (bytes); returns the snapshot folder."""
    cancel = cancel or CancelToken()
    commit, files = list_mlx_files(repo_id, revision)
    total = sum(f.size for f in files)
    done = 0
    folder: Path | None = None
    yield Progress("listing", 0, total, f"{len(files)} files, {format_bytes(total)}")
    for i, f in enumerate(files, 1):
        cancel.raise_if_cancelled()
        label = f"{f.path} ({i}/{len(files)})"
        if f.sha256:
            gen = download_file(repo_id, f.path, commit, cancel=cancel)
            while True:
                try:
                    p = next(gen)
                except StopIteration as stop:
                    local = stop.value
                    break
                if p.stage in ("downloading", "done", "reconnecting"):
                    yield Progress(
                        p.stage if p.stage != "done" else "downloading", done + min(p.done, f.size), total, label
                    )
        else:
            yield Progress("downloading", done, total, label)
            local = _plain_file(repo_id, f, commit)
        done += f.size
        yield Progress("downloading", done, total, label)
        folder = Path(local).parent  # top-level names only (see _wanted): the snapshot folder itself
    assert folder is not None  # list_mlx_files guarantees config.json and weights
    yield Progress("done", total, total, str(folder))
    return folder


def mlx_twin(gguf_repo: str) -> str | None:
    """The catalog's MLX twin of a GGUF repo (or of a catalog id), for tuning; None if it has none."""
    from macapp.core.models.catalog import load_catalog

    key = gguf_repo.strip().lower()
    for entry in load_catalog():
        if key in (entry.repo.lower(), entry.id.lower(), entry.mlx_repo.lower()):
            return entry.mlx_repo or None
    return None
