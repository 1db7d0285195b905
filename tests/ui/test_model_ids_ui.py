"""A chat saved by an older version names its model by a long id (``local:<path>``, ``org/repo/file.gguf``):
opening it still picks that model, and the picker's tooltip gives the short id."""

from __future__ import annotations

import os

from PySide6.QtCore import Qt

from macapp.core.chat.store import ChatStore
from macapp.core.hardware import detect
from macapp.core.models.library import list_library
from macapp.core.models.tiny_gguf import write_tiny_gguf
from macapp.core.settings import Settings
from macapp.ui.chat.page import ChatPage


def _hf_file(home, repo: str, name: str):
    snap = home / "hf-cache" / f"models--{repo.replace('/', '--')}" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    return write_tiny_gguf(snap / name)


def test_chats_stored_with_old_ids_pick_their_model(qtbot, tmp_path, isolated_home):
    folder = tmp_path / "models"
    folder.mkdir()
    mine = write_tiny_gguf(folder / "Mine.Q8_0.gguf")
    hf = _hf_file(isolated_home, "acme/tiny-GGUF", "tiny-chat-f32.gguf")
    Settings(model_dirs=[str(folder)], include_lm_studio=False).save()
    store = ChatStore()
    by_local = store.create_conversation(title="old local", model=f"local:{mine}")
    by_hf = store.create_conversation(title="old hf", model="acme/tiny-GGUF/tiny-chat-f32.gguf")
    by_path = store.create_conversation(title="window", model=str(mine))
    page = ChatPage(Settings(default_ctx=2048), store)
    qtbot.addWidget(page)
    page.resize(900, 600)
    page.show()
    page.open_history()
    entries = list_library()
    assert sorted(e.id for e in entries) == ["mine-q8_0", "tiny-chat-f32"]
    page.set_library(entries, detect())
    picker = page.header.picker
    try:
        for conv, path in ((by_hf, hf), (by_local, mine), (by_hf, hf), (by_path, mine)):
            page.open_conversation(conv.id)
            assert os.path.realpath(picker.current_entry().path) == os.path.realpath(path), conv.title
        tip = picker.itemData(picker.currentIndex(), Qt.ItemDataRole.ToolTipRole)
        assert tip.startswith("mine-q8_0\n") and str(mine) in tip
        page.grab().save("/tmp/chat-picker.png")
    finally:
        page.shutdown()
        store.close()
