"""Short model ids: derived from file names, unique in the library, stable across scans, old ids still resolve."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from macapp.core.chat.store import ChatStore
from macapp.core.errors import UserError
from macapp.core.models.library import add_model_file, library_files, list_library, resolve_model
from macapp.core.models.model_ids import assign_short_ids, short_name
from macapp.core.settings import Settings


@pytest.mark.parametrize(
    ("file_name", "short"),
    [
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m-instruct-q4_1"),
        ("Llama-3.2-1B-Instruct-Q4_K_M.gguf", "llama-3.2-1b-instruct-q4_k_m"),
        ("Qwen2.5-7B-Instruct-Q8_0-00001-of-00003.gguf", "qwen2.5-7b-instruct-q8_0"),
        ("My Model (v2) final!.GGUF", "my-model-v2-final"),
        ("--.gguf", "model"),
    ],
)
def test_short_name_from_the_file_name(file_name, short):
    assert short_name(file_name) == short


def _hf_file(home: Path, repo: str, name: str, source: Path) -> Path:
    """``source`` in the Hugging Face cache layout as ``repo``'s ``name`` (a snapshot symlink into blobs/)."""
    root = home / "hf-cache" / f"models--{repo.replace('/', '--')}"
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "snapshots" / "abc123").mkdir(parents=True, exist_ok=True)
    blob = root / "blobs" / f"blob-{name}"
    shutil.copy(source, blob)
    os.symlink(blob, root / "snapshots" / "abc123" / name)
    return root / "snapshots" / "abc123" / name


@pytest.fixture
def clashing_library(tmp_path, tiny_models, isolated_home):
    """Tiny-Q8_0.gguf in the HF cache, in two folders and in a third folder also named "b" (one clash too many)."""
    paths = {"hf": _hf_file(isolated_home, "acme/tiny-GGUF", "Tiny-Q8_0.gguf", tiny_models["mha_f32"])}
    for key, folder in (("a", tmp_path / "a"), ("b", tmp_path / "b"), ("b2", tmp_path / "x" / "b")):
        folder.mkdir(parents=True)
        paths[key] = folder / "Tiny-Q8_0.gguf"
        shutil.copy(tiny_models["gqa_f16"], paths[key])
    paths["other"] = tmp_path / "a" / "Other.F16.gguf"
    shutil.copy(tiny_models["gqa_f16"], paths["other"])
    folders = [str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "x")]
    Settings(model_dirs=folders, include_lm_studio=False).save()
    return paths, folders


def test_clashing_file_names_get_unique_ids_that_resolve_to_their_own_file(clashing_library):
    paths, _ = clashing_library
    by_path = {os.path.realpath(e.path): e for e in list_library()}
    ids = {key: by_path[os.path.realpath(p)].id for key, p in paths.items()}
    assert len(set(ids.values())) == len(ids) == len(by_path)
    assert ids["hf"] == "tiny-q8_0"  # the Hugging Face cache keeps the plain name
    assert ids["a"] == "a/tiny-q8_0" and ids["other"] == "other-f16"
    assert ids["b"].startswith("b/tiny-q8_0-") and ids["b2"].startswith("b/tiny-q8_0-")  # same folder name: hashed
    for key, ident in ids.items():
        assert os.path.realpath(resolve_model(ident)) == os.path.realpath(paths[key])
    assert os.path.realpath(resolve_model("TINY-Q8_0")) == os.path.realpath(paths["hf"])  # ids ignore case
    with pytest.raises(UserError, match="matches 4 models"):
        resolve_model("Tiny-Q8_0.gguf")  # a file name shared by four files names none of them


def test_ids_do_not_depend_on_scan_order(clashing_library):
    paths, folders = clashing_library
    first = {e.long_id: e.id for e in list_library()}
    for order in (list(reversed(folders)), [folders[1], folders[2], folders[0]]):
        Settings(model_dirs=order, include_lm_studio=False).save()
        assert {e.long_id: e.id for e in list_library()} == first
    items = [(f.long_id, f.source, f.path) for f in library_files()]
    for seed in range(5):
        random.Random(seed).shuffle(items)
        assert assign_short_ids(items) == first


def test_lm_studio_and_added_files_are_qualified_by_publisher_and_folder(tmp_path):
    same = "Phi-3-mini-4k-instruct-q4.gguf"
    items = [
        ("lmstudio:lmstudio-community/Phi-3-GGUF/" + same, "lm-studio", tmp_path / "lms" / same),
        (f"local:{tmp_path / 'Downloads' / same}", "file", tmp_path / "Downloads" / same),
    ]
    assert assign_short_ids(items) == {
        items[0][0]: "phi-3-mini-4k-instruct-q4",
        items[1][0]: "downloads/phi-3-mini-4k-instruct-q4",
    }


def test_old_ids_and_paths_still_resolve(clashing_library, tmp_path):
    paths, _ = clashing_library
    entries = list_library()
    for entry in entries:
        for ref in (entry.long_id, entry.path, entry.long_id.split(":", 1)[-1]):
            assert os.path.realpath(resolve_model(ref)) == os.path.realpath(entry.path), ref
    assert resolve_model("acme/tiny-GGUF/Tiny-Q8_0.gguf") == paths["hf"]
    assert resolve_model(f"local:{paths['a']}") == paths["a"]


def test_a_chat_stored_with_an_old_id_still_finds_its_model(clashing_library, tmp_path):
    """Chats keep the model they were made with (conversations.model, messages.model): ids stored by older
    versions (``local:<path>``, ``org/repo/file.gguf``) must still name the same file."""
    paths, _ = clashing_library
    with ChatStore() as store:
        old_local = store.create_conversation(model=f"local:{paths['a']}")
        old_hf = store.create_conversation(model="acme/tiny-GGUF/Tiny-Q8_0.gguf")
        store.add_message(old_local.id, "user", "hi", model=f"local:{paths['a']}")
    with ChatStore() as store:
        stored = {c.id: c.model for c in store.list_conversations()}
        message = store.thread(old_local.id)[-1]
    assert resolve_model(stored[old_local.id]) == resolve_model(message.model) == paths["a"]
    assert resolve_model(stored[old_hf.id]) == paths["hf"]
    entries = list_library()
    assert [e.id for e in entries if e.known_as(stored[old_local.id])] == ["a/tiny-q8_0"]
    assert [e.id for e in entries if e.known_as(stored[old_hf.id])] == ["tiny-q8_0"]


def test_an_added_file_gets_its_short_id(tmp_path, tiny_models):
    Settings(include_lm_studio=False).save()
    path = tmp_path / "Dropped.Q8_0.gguf"
    shutil.copy(tiny_models["mha_f32"], path)
    entry = add_model_file(path)
    assert (entry.id, entry.long_id) == ("dropped-q8_0", f"local:{path.resolve()}")
    assert [e.id for e in list_library()] == ["dropped-q8_0"]


def test_an_added_file_is_forgotten_by_its_old_id_too(tmp_path, tiny_models):
    from macapp.core.models.library_sources import forget

    Settings(include_lm_studio=False).save()
    path = tmp_path / "Old.Q8_0.gguf"
    shutil.copy(tiny_models["mha_f32"], path)
    add_model_file(path)
    assert forget(f"local:{path.resolve()}").path == str(path.resolve())
    assert list_library() == []
