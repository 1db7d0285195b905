"""The local library over real files: folders, the HF cache layout, split models, bad files."""

from __future__ import annotations

import os
import shutil

import pytest

from macapp.core.errors import UserError
from macapp.core.models.library import add_model_file, list_library, model_facts, resolve_model
from macapp.core.settings import Settings


def test_folder_and_hf_cache_and_added_file(tmp_path, tiny_models, isolated_home):
    folder = tmp_path / "my-models"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(tiny_models["mha_f32"], folder / "sub" / "a-Q8_0.gguf")
    (folder / "mmproj-model-f16.gguf").write_bytes(b"not listed")
    # the Hugging Face cache layout: snapshot files are symlinks into blobs/
    repo = isolated_home / "hf-cache" / "models--acme--tiny-GGUF"
    (repo / "blobs").mkdir(parents=True)
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    shutil.copy(tiny_models["gqa_f16"], repo / "blobs" / "deadbeef")
    os.symlink(repo / "blobs" / "deadbeef", repo / "snapshots" / "abc123" / "tiny-f16.gguf")
    settings = Settings(model_dirs=[str(folder)])
    settings.save()

    entries = {e.long_id: e for e in list_library()}
    assert set(entries) == {"acme/tiny-GGUF/tiny-f16.gguf", f"local:{folder / 'sub' / 'a-Q8_0.gguf'}"}
    assert [e.id for e in entries.values()] == ["tiny-f16", "a-q8_0"]
    assert entries["acme/tiny-GGUF/tiny-f16.gguf"].source == "hf-cache"
    assert entries["acme/tiny-GGUF/tiny-f16.gguf"].facts.n_head_kv == 1
    assert resolve_model("acme/tiny-GGUF/tiny-f16.gguf").name == "tiny-f16.gguf"
    assert resolve_model("tiny-f16").name == "tiny-f16.gguf"
    assert resolve_model("a-Q8_0.gguf") == folder / "sub" / "a-Q8_0.gguf"

    bad = tmp_path / "broken.gguf"
    bad.write_bytes(tiny_models["tied_f16"].read_bytes()[:2000])
    entry = add_model_file(bad)
    assert entry.facts is None and "truncated" in entry.error
    assert str(bad.resolve()) in Settings.load().model_files
    ids = {e.long_id: e for e in list_library()}
    assert ids[f"local:{bad.resolve()}"].error == entry.error  # stays listed, with its reason
    assert ids[f"local:{bad.resolve()}"].id == entry.id == "broken"
    # the facts cache returns the same facts
    again = {e.long_id: e for e in list_library()}
    assert again["acme/tiny-GGUF/tiny-f16.gguf"].facts == entries["acme/tiny-GGUF/tiny-f16.gguf"].facts


def test_add_rejects_non_gguf(tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("hi")
    with pytest.raises(UserError, match="not a .gguf"):
        add_model_file(other)
    with pytest.raises(UserError, match="no model"):
        resolve_model("nothing-like-this")


def test_split_model_reads_as_one(tmp_path, tiny_models):
    from macapp.core.models.tiny_gguf import TinySpec, write_tiny_gguf

    whole = model_facts(tiny_models["mha_f32"])
    part1 = write_tiny_gguf(tmp_path / "m-00001-of-00002.gguf", TinySpec())
    write_tiny_gguf(tmp_path / "m-00002-of-00002.gguf", TinySpec(n_layer=1))
    split = model_facts(part1)
    assert split.parameters > whole.parameters
    assert split.file_size == sum(p.stat().st_size for p in tmp_path.glob("m-0000*"))
    (tmp_path / "m-00002-of-00002.gguf").unlink()
    with pytest.raises(UserError, match="missing"):
        model_facts(part1)
