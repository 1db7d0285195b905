"""The Chat page on real llama.cpp with a tiny generated model: send, stream, stop, regenerate,
edit, search, delete, the context meter and its trim notice, load errors, closing the window."""

from __future__ import annotations

from dataclasses import replace

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from macapp.core.chat.store import ChatStore, default_title
from macapp.core.hardware import detect, machine_noun
from macapp.core.models.library import add_model_file
from macapp.core.models.tiny_gguf import write_tiny_gguf
from macapp.core.settings import Settings
from macapp.ui.chat.page import ChatPage
from macapp.ui.chat.sidebar import SEARCH_DELAY_MS
from macapp.ui.theme import style_sheet

LONG = 3000  # max tokens for answers that must still be running when Stop is pressed


@pytest.fixture
def model_path(tmp_path):
    return write_tiny_gguf(tmp_path / "tiny-chat.gguf", ctx=4096)


def _load(qtbot, page: ChatPage, ref=None) -> None:
    with qtbot.waitSignal(page.modelLoaded, timeout=15_000):
        page.load_model(ref)
    qtbot.waitUntil(lambda: not page.loading, timeout=5_000)


@pytest.fixture
def page(qtbot, model_path):
    """A chat page with the tiny model in its picker, loaded at 2,048 tokens; short seeded answers."""
    store = ChatStore()
    page = ChatPage(Settings(default_ctx=2048), store)
    qtbot.addWidget(page)
    page.resize(1100, 720)
    page.show()
    page.open_history()
    page.set_library([add_model_file(model_path)], detect())
    page.drawer.numbers["max_tokens"].setValue(40)
    _load(qtbot, page)
    yield page
    page.shutdown()
    store.close()


def _send(qtbot, page: ChatPage, text: str):
    """Type ``text`` and press Ctrl+Enter (⌘+Enter on a Mac); returns the finished Turn."""
    page.composer.setFocus()
    qtbot.keyClicks(page.composer, text)
    with qtbot.waitSignal(page.turnFinished, timeout=60_000) as blocker:
        qtbot.keyClick(page.composer, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not page.busy, timeout=5_000)
    return blocker.args[0]


def _wait_turn(qtbot, page: ChatPage, action):
    with qtbot.waitSignal(page.turnFinished, timeout=60_000) as blocker:
        action()
    qtbot.waitUntil(lambda: not page.busy, timeout=5_000)
    return blocker.args[0]


def _last(page: ChatPage, role: str):
    return next(b for b in reversed(page.transcript.bubbles()) if b.role == role)


def test_send_streams_into_the_transcript_and_saves_it(qtbot, page):
    page.drawer.numbers["max_tokens"].setValue(600)
    seen: list[int] = []
    flush = page.transcript.flush_stream

    def recording_flush():
        flush()
        if page.transcript.stream is not None:
            seen.append(len(page.transcript.stream.text()))

    page.transcript.flush_stream = recording_flush
    turn = _send(qtbot, page, "hello world, what is the model?")
    grown = [n for n in seen if n]
    assert len(set(grown)) >= 2 and grown == sorted(grown), seen  # the bubble grew while the answer streamed

    stored = page.store.thread(page.cid)
    assert [m.role for m in stored] == ["user", "assistant"]
    answer = _last(page, "assistant")
    assert answer.message_id == turn.message.id == stored[-1].id
    assert answer.text() == stored[-1].content.lstrip() and len(answer.text()) > 300
    assert "tokens/s" in answer.stats.text() and f"{turn.result.completion_tokens:,} tokens" in answer.stats.text()
    assert page.composer.toPlainText() == "" and page.send_button.text() == "Send"
    assert page.meter.label.text() == f"{turn.tokens_used:,} / {page.engine.n_ctx:,} tokens"
    assert page.sidebar.titles() == [default_title("hello world, what is the model?")]
    # a plain Enter writes a new line, it does not send
    qtbot.keyClick(page.composer, Qt.Key.Key_Return)
    assert not page.busy and page.composer.toPlainText() == "\n"


def test_stop_keeps_the_partial_answer(qtbot, page):
    page.drawer.numbers["max_tokens"].setValue(LONG)
    qtbot.keyClicks(page.composer, "tell me everything")
    qtbot.keyClick(page.composer, Qt.Key.Key_Enter, Qt.KeyboardModifier.ControlModifier)  # the keypad Enter
    assert page.busy and page.send_button.text() == "Stop"
    qtbot.waitUntil(lambda: page.transcript.stream is not None and bool(page.transcript.stream.text()), timeout=10_000)
    with qtbot.waitSignal(page.turnFinished, timeout=10_000) as blocker:
        qtbot.mouseClick(page.send_button, Qt.MouseButton.LeftButton)
    turn = blocker.args[0]
    qtbot.waitUntil(lambda: not page.busy, timeout=5_000)
    assert turn.result.finish_reason == "cancelled" and 0 < turn.result.completion_tokens < LONG
    saved = page.store.get_message(turn.message.id)
    assert saved.status == "cancelled" and saved.content == turn.result.text
    answer = _last(page, "assistant")
    assert answer.text() == saved.content.lstrip() and "stopped" in answer.stats.text()
    assert page.send_button.text() == "Send" and page.send_button.isEnabled()


def test_regenerate_adds_a_version_and_the_switcher_goes_back(qtbot, page):
    first = _send(qtbot, page, "hello")
    first_text = _last(page, "assistant").text()
    second = _wait_turn(qtbot, page, lambda: qtbot.mouseClick(page.regenerate_button, Qt.MouseButton.LeftButton))
    assert second.message.id != first.message.id
    assert [m.id for m in page.store.versions(second.message.id)] == [first.message.id, second.message.id]
    answer = _last(page, "assistant")
    assert answer.version_label.text() == "2/2" and answer.version_label.isVisible()
    assert answer.regenerate_button.isVisible()
    assert len([b for b in page.transcript.bubbles() if b.role == "assistant"]) == 1
    qtbot.mouseClick(answer.prev_button, Qt.MouseButton.LeftButton)
    answer = _last(page, "assistant")
    assert answer.version_label.text() == "1/2" and answer.text() == first_text
    assert answer.message_id == first.message.id


def test_edit_and_resend_starts_a_new_branch(qtbot, page):
    _send(qtbot, page, "first question")
    old_user = _last(page, "user")
    qtbot.mouseClick(old_user.edit_button, Qt.MouseButton.LeftButton)
    assert old_user.editor_box.isVisible() and old_user.editor.toPlainText() == "first question"
    old_user.editor.setPlainText("better question")
    turn = _wait_turn(qtbot, page, lambda: qtbot.mouseClick(old_user.resend_button, Qt.MouseButton.LeftButton))
    user = _last(page, "user")
    assert user.text() == "better question" and user.version_label.text() == "2/2"
    assert [m.content for m in page.store.versions(user.message_id)] == ["first question", "better question"]
    assert _last(page, "assistant").message_id == turn.message.id
    assert page.store.get_message(turn.message.id).parent_id == user.message_id
    qtbot.mouseClick(user.prev_button, Qt.MouseButton.LeftButton)  # the old branch is still there
    assert _last(page, "user").text() == "first question" and len(page.transcript.bubbles()) == 2


def test_search_finds_an_old_message_and_opens_it_there(qtbot, page):
    store = page.store
    old = store.create_conversation(title="Fruit talk")
    for i in range(12):
        store.add_message(old.id, "user", "what about the pineapple?" if i == 5 else f"question number {i}")
        store.add_message(old.id, "assistant", f"answer number {i}\n\n" + "more words here. " * 30)
    _send(qtbot, page, "hello")  # the current conversation is another one
    assert page.cid != old.id
    qtbot.keyClicks(page.sidebar.search_box, "pineap")
    qtbot.waitUntil(lambda: page.sidebar.hit_count() == 1, timeout=5_000)
    hits = page.sidebar.hits
    item = hits.item(0)
    assert "<b>pineapple</b>" in hits.itemWidget(item).text() and "Fruit talk" in hits.itemWidget(item).text()
    qtbot.mouseClick(hits.viewport(), Qt.MouseButton.LeftButton, pos=hits.visualItemRect(item).center())
    assert page.cid == old.id
    target = store.search("pineapple")[0].message_id
    bubble = page.transcript.bubble(target)
    qtbot.waitUntil(lambda: bubble.frame.property("highlight") is True, timeout=5_000)
    assert not bubble.visibleRegion().isEmpty()
    bar = page.transcript.verticalScrollBar()
    assert 0 < bar.value() < bar.maximum()  # scrolled to the middle, where the message is
    assert len(page.transcript.bubbles()) == 24


def test_a_search_still_waiting_when_the_page_closes_reads_no_closed_store(qtbot):
    page = ChatPage(Settings())
    qtbot.addWidget(page)
    page.open_history()  # the page opens (and owns) the store
    qtbot.keyClicks(page.sidebar.search_box, "apples")  # the search runs after a short delay...
    assert page.shutdown()  # ...but the window closes first (Ctrl+W right after typing), closing the store
    qtbot.wait(SEARCH_DELAY_MS * 3)  # an exception in the event loop (a closed database) fails the test
    assert page.sidebar.hit_count() == 0


def test_rename_and_delete_a_conversation(qtbot, page, monkeypatch):
    _send(qtbot, page, "keep me")
    _send(qtbot, page, "and me")
    page.new_chat()
    _send(qtbot, page, "delete me")
    doomed, kept = page.cid, page.store.list_conversations()[-1].id
    item = page.sidebar.conversations.item(1)
    item.setText("Renamed chat")  # what finishing an in-place edit does
    assert page.store.get_conversation(kept).title == "Renamed chat"
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    assert page.sidebar.delete_conversation(doomed)
    assert [c.id for c in page.store.list_conversations()] == [kept]
    assert page.sidebar.titles() == ["Renamed chat"]
    assert page.cid is None and page.transcript.bubbles() == []


def test_long_history_in_a_small_context_is_trimmed_with_a_notice(qtbot, page):
    page.drawer.ctx.setValue(512)
    page.drawer.numbers["max_tokens"].setValue(64)
    _load(qtbot, page)
    assert page.engine.n_ctx == 512
    store = page.store
    conv = store.create_conversation(title="Long one", system_prompt="You are brief.")
    for i in range(8):
        store.add_message(conv.id, "user", f"question {i}: " + "hello world and the model " * 8)
        store.add_message(conv.id, "assistant", f"answer {i}: " + "the answer is in the document " * 8)
    page.sidebar.refresh()
    page.open_conversation(conv.id)
    assert page.drawer.system_prompt() == "You are brief."
    turn = _send(qtbot, page, "and now?")
    assert turn.plan.dropped > 0 and turn.plan.messages[0] == {"role": "system", "content": "You are brief."}
    assert page.notice.isVisible() and "no longer fit" in page.notice.label.text()
    assert "system prompt is kept" in page.notice.label.text()
    assert page.transcript.divider.isVisible()
    assert page.meter.window == 512 and 0 < page.meter.used <= 512


def test_load_errors_are_shown_and_the_page_keeps_working(qtbot, page, model_path, tmp_path):
    page.apply_hardware(replace(detect(), budget_bytes=1_000_000))  # a very small Mac
    assert page.header.verdict_label.text() == "Too big"
    assert "Too big" in page.drawer.verdict.text()
    page.load_model()
    qtbot.waitUntil(lambda: not page.loading and page.notice.isVisible(), timeout=10_000)
    assert f"{machine_noun()} can give it" in page.notice.label.text()  # "this Mac" on a Mac only
    assert page.engine is None and page.header.model_status.text() == "No model loaded"

    page.apply_hardware(detect())
    gone = write_tiny_gguf(tmp_path / "gone.gguf")
    page.set_library([add_model_file(model_path), add_model_file(gone)])
    gone.unlink()
    page.load_model(str(gone))
    qtbot.waitUntil(lambda: not page.loading, timeout=10_000)
    assert page.notice.isVisible() and "gone.gguf" in page.notice.label.text()
    _load(qtbot, page)  # still works
    assert _send(qtbot, page, "still there?").result.completion_tokens > 0


def test_loading_shows_progress_and_eject_unloads(qtbot, page):
    fractions: list[float] = []
    worker = page.load_model()  # a reload
    worker.signals.yielded.connect(lambda p: fractions.append(p.fraction))
    assert page.loading and page.header.load_progress.isVisible() and page.header.load_button.text() == "Cancel"
    assert not page.header.eject_button.isEnabled() and not page.header.picker.isEnabled()
    qtbot.waitUntil(lambda: page.engine is not None and not page.loading, timeout=15_000)
    assert fractions and fractions[-1] == 1.0 and not page.header.load_progress.isVisible()
    assert page.header.model_status.text() == "tiny-chat.gguf · 2,048-token context"
    qtbot.waitUntil(lambda: page.meter.window == 2048, timeout=5_000)  # the empty chat's context, counted
    qtbot.mouseClick(page.header.eject_button, Qt.MouseButton.LeftButton)
    assert page.engine is None and not page.meter.isVisible()
    assert page.header.model_status.text() == "No model loaded" and page.header.load_button.text() == "Load"
    assert page.send_message("anyone there?") is None
    assert "Load a model first" in page.notice.label.text()


def test_only_load_is_green_reload_and_cancel_are_plain_buttons(qtbot, page):
    button = page.header.load_button
    assert button.text() == "Reload" and button.objectName() != "primary"
    page.load_model()
    assert button.text() == "Cancel" and button.objectName() != "primary"
    qtbot.waitUntil(lambda: page.engine is not None and not page.loading, timeout=15_000)
    assert button.text() == "Reload" and button.objectName() != "primary"
    qtbot.mouseClick(page.header.eject_button, Qt.MouseButton.LeftButton)
    assert button.text() == "Load" and button.objectName() == "primary"
    page.setStyleSheet(style_sheet(dark=False))

    def fill():  # the button's colour just inside its left edge, as drawn
        return button.grab().toImage().pixelColor(6, button.height() // 2)

    green = fill()
    _load(qtbot, page)
    plain = fill()
    assert green.green() > green.red() + 40 and abs(plain.green() - plain.red()) < 20, (green.name(), plain.name())


def test_switching_conversation_stops_the_answer_there(qtbot, page):
    other = page.store.create_conversation(title="Other chat")
    page.store.add_message(other.id, "user", "an older question")
    page.sidebar.refresh()
    page.drawer.numbers["max_tokens"].setValue(LONG)
    page.send_message("a long story please")
    streaming_in = page.cid
    qtbot.waitUntil(lambda: page.transcript.stream is not None and bool(page.transcript.stream.text()), timeout=10_000)
    item = page.sidebar.item(other.id)
    qtbot.mouseClick(
        page.sidebar.conversations.viewport(),
        Qt.MouseButton.LeftButton,
        pos=page.sidebar.conversations.visualItemRect(item).center(),
    )
    assert page.cid == other.id and page.transcript.stream is None
    assert [b.text() for b in page.transcript.bubbles()] == ["an older question"]
    qtbot.waitUntil(lambda: not page.busy, timeout=10_000)
    stopped = page.store.thread(streaming_in)[-1]
    assert stopped.status == "cancelled" and stopped.content and stopped.completion_tokens < LONG
    assert [b.text() for b in page.transcript.bubbles()] == ["an older question"]  # nothing leaked in


def test_closing_the_window_stops_the_answer_and_unloads(qtbot, model_path, window_factory):
    Settings(default_ctx=4096).save()
    add_model_file(model_path)
    window = window_factory()
    chat = window.chat_page
    qtbot.waitUntil(lambda: chat.header.picker.count() == 1, timeout=10_000)
    window.show_page("Chat")
    _load(qtbot, chat)
    chat.drawer.numbers["max_tokens"].setValue(LONG)
    chat.send_message("go on and on")
    qtbot.waitUntil(lambda: chat.transcript.stream is not None and bool(chat.transcript.stream.text()), timeout=10_000)
    window.close()
    assert chat.engine is None and chat.engine_pool.activeThreadCount() == 0
    with ChatStore() as store:
        answer = store.thread(store.list_conversations()[0].id)[-1]
    assert answer.role == "assistant" and answer.status == "cancelled" and answer.content


def test_with_no_models_the_empty_chat_says_where_to_get_one(qtbot, model_path):
    """The first run with an empty library: the chat says where models come from, not only "Load a model"."""
    store = ChatStore()
    page = ChatPage(Settings(default_ctx=2048), store)
    qtbot.addWidget(page)
    page.open_history()
    page.set_library([], detect())
    assert "Discover page" in page.transcript.placeholder.text()
    assert "Models page" in page.transcript.placeholder.text()
    page.set_library([add_model_file(model_path)], detect())
    assert page.transcript.placeholder.text().startswith("Load a model to start chatting.")
    page.shutdown()
    store.close()
