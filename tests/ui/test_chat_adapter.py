"""A tuned adapter switched on per conversation in the Chat page, over a GGUF base in llama.cpp."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from macapp.core import paths
from macapp.core.chat.store import ChatStore
from macapp.core.hardware import detect
from macapp.core.models.library import add_model_file
from macapp.core.settings import Settings
from macapp.core.tuning.adapters import base_identity, write_manifest
from macapp.core.tuning.tiny_mlx import write_tiny_mlx
from macapp.ui.chat.page import ChatPage
from tests.fixtures.tiny_adapter import ANSWER, QUESTION, train_tiny_adapter


@pytest.fixture
def tuned_page(qtbot, tmp_path):
    from macapp.core.tuning.export import export_base_gguf

    base = write_tiny_mlx(tmp_path / "base", heads=4, kv_heads=2)
    train_tiny_adapter(base, paths.adapters_dir() / "sky")
    write_manifest(
        "sky",
        base_path=str(base),
        base_id=base_identity(base),
        dataset_sha256="0" * 64,
        settings={},
        train_loss=None,
        val_loss=None,
        iterations=60,
    )
    gguf = export_base_gguf(base, tmp_path / "tiny-base.gguf").path
    store = ChatStore()
    page = ChatPage(Settings(default_ctx=1024), store)
    qtbot.addWidget(page)
    page.show()
    page.open_history()
    page.set_library([add_model_file(gguf)], detect())
    page.drawer.numbers["temperature"].setValue(0.0)
    page.drawer.numbers["max_tokens"].setValue(12)
    with qtbot.waitSignal(page.modelLoaded, timeout=15_000):
        page.load_model()
    qtbot.waitUntil(lambda: not page.loading, timeout=5_000)
    yield page, store
    page.shutdown()
    store.close()


def _ask(qtbot, page):
    page.composer.setFocus()
    qtbot.keyClicks(page.composer, QUESTION)
    with qtbot.waitSignal(page.turnFinished, timeout=60_000) as blocker:
        qtbot.keyClick(page.composer, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not page.busy, timeout=5_000)
    return blocker.args[0]


def test_adapter_per_conversation(qtbot, tuned_page):
    page, store = tuned_page
    box = page.drawer.adapter_box
    assert box.findData("sky") > 0
    box.setCurrentIndex(box.findData("sky"))
    with_adapter = _ask(qtbot, page)
    assert with_adapter.result.text.strip() == ANSWER
    first = page.cid
    assert store.get_conversation(first).adapter == "sky" and with_adapter.message.adapter == "sky"

    page.new_chat()
    box.setCurrentIndex(0)  # this conversation runs the base alone
    plain = _ask(qtbot, page)
    assert plain.result.text.strip() != ANSWER
    assert store.get_conversation(page.cid).adapter is None

    page.open_conversation(first)  # switching back brings its adapter back
    assert page.drawer.adapter() == "sky"


def test_try_in_chat_opens_a_new_chat_with_the_adapter(qtbot, window_factory, tuned_page):
    window = window_factory()
    window.tuning_page.tryInChat.emit("sky")
    assert window.pages.currentWidget() is window.chat_page
    assert window.chat_page.cid is None and window.chat_page.drawer.adapter() == "sky"
