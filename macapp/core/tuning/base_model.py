"""What tuning accepts as a base model: an MLX folder. A GGUF file is named as such, with its MLX twin.

mlx-lm trains safetensors weights with a ``config.json``; a GGUF (what Orchard runs in chat) cannot
be tuned. When a person picks one anyway, ``require_mlx_folder`` says so and names the catalog's MLX
twin of the same model (found from the Hugging Face cache path or the file name), which
``macapp pull REPO --mlx`` downloads.
"""

from __future__ import annotations

import re
from pathlib import Path

from macapp.core.errors import UserError

_HF_CACHE_REPO = re.compile(r"^models--(?P<org>[^/]+?)--(?P<name>[^/]+)$")


class NotAnMlxModel(UserError):
    """A GGUF file given where tuning needs an MLX model folder; ``twin`` is the catalog's MLX repo or None."""

    def __init__(self, path: Path, twin: str | None):
        if twin:
            hint = f"download its MLX version with `macapp pull {twin} --mlx` and choose that folder"
        else:
            hint = (
                "download an MLX version of this model (e.g. from mlx-community) with "
                "`macapp pull REPO --mlx` and choose that folder"
            )
        super().__init__(
            f"{path.name} is a GGUF file; tuning needs an MLX model (a folder with config.json and *.safetensors)",
            hint=hint,
        )
        self.path = path
        self.twin = twin


def _cache_repo(path: Path) -> str | None:
    """``org/name`` of a file in the Hugging Face cache (``models--org--name/snapshots/<sha>/...``)."""
    for parent in path.parents:
        found = _HF_CACHE_REPO.match(parent.name)
        if found:
            return f"{found['org']}/{found['name']}"
    return None


def mlx_twin_of(gguf: str | Path) -> str | None:
    """The catalog's MLX repo for a GGUF file: by its cached repo, else by its file name; None if unknown."""
    from macapp.core.models.catalog import load_catalog

    path = Path(gguf)
    try:
        catalog = load_catalog()
    except UserError:
        return None
    repo = (_cache_repo(path) or "").lower()
    name = path.name.lower()
    for entry in catalog:
        if entry.mlx_repo and (
            entry.repo.lower() == repo or any(Path(f.file).name.lower() == name for f in entry.files)
        ):
            return entry.mlx_repo
    return None


def require_mlx_folder(base: str | Path) -> Path:
    """``base`` as a folder path, or a ``UserError`` saying what it is instead (``NotAnMlxModel`` for a GGUF)."""
    path = Path(base).expanduser()
    if path.suffix.lower() == ".gguf" and not path.is_dir():
        raise NotAnMlxModel(path, mlx_twin_of(path))
    if path.is_file():
        raise UserError(
            f"{path.name} is a file; tuning needs an MLX model folder",
            hint="choose a folder with config.json and *.safetensors, e.g. an mlx-community model",
        )
    if not path.exists():
        raise UserError(f"No such base model folder: {path}")
    return path
