"""Documents in the window, for real: PDFs dropped on the Chat page are embedded into the conversation's
collection (real embedder, real chromadb in the temp MACAPP_HOME), answers cite pages with chips that
open the page viewer, and the Documents page lists, removes, re-indexes and deletes, and changes the
embedding model (re-indexing what was built with another)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import gguf
import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from macapp.core.chat.store import ChatStore
from macapp.core.docs.answer import resolve_citations
from macapp.core.docs.embedder import bundled_embedder_path, load_embedder
from macapp.core.docs.index import EmbedderMismatch
from macapp.core.docs.ingest import add_files, list_collections
from macapp.core.docs.retrieve import query
from macapp.core.hardware import detect
from macapp.core.models.library import add_model_file
from macapp.core.models.tiny_gguf import write_tiny_gguf
from macapp.core.settings import Settings, update_settings
from macapp.ui.chat.page import ChatPage
from macapp.ui.documents.page import DocumentsPage
from tests.fixtures import pdfs

BEES = [
    "# Beekeeping\nBeekeepers puff smoke at the hive entrance to calm the colony before lifting out "
    "frames of honey. The smoke masks the alarm scent of the guard bees.",
    "# Swarms\nA swarm leaves the hive in spring with the old queen and settles on a branch nearby.",
]
VOLCANOES = [
    "# Volcanoes\nMagma rises through cracks in the crust and erupts as lava, ash and volcanic gas.",
    "# Calderas\nA caldera forms when the ground collapses into an emptied magma chamber.",
    "# Hot springs\nGroundwater heated by magma rises as hot springs and geysers.",
]
BEE_PASSAGE = "Beekeepers puff smoke at the hive entrance to calm the colony"


@pytest.fixture
def docs(tmp_path) -> dict[str, Path]:
    folder = tmp_path / "pdfs"
    folder.mkdir()
    return {
        "bees": pdfs.make_pdf(folder / "bees.pdf", BEES),
        "volcanoes": pdfs.make_pdf(folder / "volcanoes.pdf", VOLCANOES),
        "broken": pdfs.make_corrupt_pdfs(folder / "bad")["garbage"],
        "notes": _write(folder / "notes.txt", "not a PDF"),
    }


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def drop(widget, paths, target=None) -> bool:
    """Drag ``paths`` over ``target`` (default: ``widget``) and drop them on ``widget``, as Qt delivers a
    drop of files from Finder; True if both the drag and the drop were accepted."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    where = widget.rect().center()
    enter = QDragEnterEvent(
        where, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(target or widget, enter)
    dropped = QDropEvent(
        QPointF(where), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(widget, dropped)
    return enter.isAccepted() and dropped.isAccepted()


@pytest.fixture
def chat(qtbot):
    store = ChatStore()
    page = ChatPage(Settings(default_ctx=2048), store)
    qtbot.addWidget(page)
    page.resize(1100, 760)
    page.show()
    page.open_history()
    yield page
    page.shutdown()
    store.close()


def _ingest(qtbot, page: ChatPage, paths) -> list:
    panel = page.documents.panel
    with qtbot.waitSignal(panel.batchFinished, timeout=30_000) as done:
        assert drop(page, paths)
    qtbot.waitUntil(lambda: not panel.busy, timeout=5_000)
    return done.args[1]


def test_dropping_pdfs_on_the_chat_attaches_them_with_progress(qtbot, chat, docs):
    panel = chat.documents.panel
    steps = []
    panel_add = panel.add

    def recording_add(collection, paths):
        worker = panel_add(collection, paths)
        worker.signals.yielded.connect(lambda step: steps.append((step.stage, [r.status for r in panel.rows])))
        return worker

    panel.add = recording_add
    assert chat.cid is None
    with qtbot.waitSignal(panel.batchFinished, timeout=30_000):
        # the drag enters over the composer: it does not take files, the page does
        assert drop(
            chat, [docs["bees"], docs["volcanoes"], docs["broken"], docs["notes"]], target=chat.composer.viewport()
        )
        assert [r.name for r in panel.rows] == ["bees.pdf", "volcanoes.pdf", "garbage.pdf"]  # at once
        assert panel.isVisible() and panel.cancel_button.isVisible() and chat.cid is not None
    qtbot.waitUntil(lambda: not panel.busy, timeout=5_000)
    assert "left out: notes.txt" in chat.notice.label.text()
    assert any(stage == "embed" and "working" in statuses for stage, statuses in steps)  # per-file progress
    assert [r.status for r in panel.rows] == ["added", "added", "failed"]
    assert [r.state_label.text() for r in panel.rows] == ["Added", "Added", "Failed"]
    assert panel.rows[0].detail_label.text().startswith("2 pages · ")
    assert "damaged or not a PDF" in panel.rows[2].detail_label.text()
    assert not panel.cancel_button.isVisible() and panel.close_button.isVisible()

    name = f"chat-{chat.cid}"
    assert chat.store.get_conversation(chat.cid).collection == name
    assert chat.documents.label.isVisible() and chat.documents.label.text().startswith("2 PDFs in this chat: ")
    assert name not in chat.documents.label.text() and name in chat.documents.label.toolTip()
    chat.grab().save("/tmp/chat-2-pdfs.png")
    info = {c.name: c for c in list_collections()}[name]
    assert sorted(f.file for f in info.files) == ["bees.pdf", "volcanoes.pdf"] and info.pages == 5

    outcomes = _ingest(qtbot, chat, [docs["bees"]])  # the same file again: same collection, skipped
    assert [o.status for o in outcomes] == ["skipped"] and panel.rows[-1].state_label.text() == "Skipped"
    panel.close_button.click()
    assert not panel.isVisible() and panel.rows == []


def test_the_line_under_a_chat_counts_its_pdfs_in_words():
    from macapp.ui.chat.documents import attached_line

    assert attached_line(1).startswith("1 PDF in this chat: answers use it and cite its pages.")
    assert attached_line(2).startswith("2 PDFs in this chat: answers use them and cite their pages.")
    assert attached_line(None).startswith("PDFs in this chat: answers use them")


def test_the_documents_page_calls_them_passages_as_the_cli_and_progress_rows_do(qtbot):
    from macapp.core.docs.ingest import CollectionInfo, FileInfo
    from macapp.ui.documents.files_table import FilesTable, collection_summary

    one = FileInfo("a.pdf", "/x/a.pdf", "a" * 64, 3, 19, "2025-03-02T10:04:00+00:00")
    info = CollectionInfo("Papers", "bge", 384, "2025-03-02T10:04:00+00:00", (one,))
    assert collection_summary(info) == "1 file · 3 pages · 19 passages"
    table = FilesTable()
    qtbot.addWidget(table)
    heads = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert heads == ["File", "Pages", "Passages", "Added"]
    assert not any("chunk" in text.lower() for text in [*heads, collection_summary(info)])


def test_two_passages_of_one_page_make_one_chip_that_quotes_both(qtbot):
    from macapp.core.docs.answer import Citation
    from macapp.ui.chat.citation_chips import CitationChips

    cited = [
        Citation(1, "refcard-en-a4.pdf", 2, 2, "Press Ctrl-K to cut a line."),
        Citation(2, "refcard-en-a4.pdf", 3, 3, "Press Ctrl-Y to paste it back."),
        Citation(3, "refcard-en-a4.pdf", 2, 2, "Press Ctrl-W to cut a region."),
        Citation(4, "other.pdf", 2, 2, "Another file's page 2."),
    ]
    chips = CitationChips([c.to_json() for c in cited])
    qtbot.addWidget(chips)
    assert [c.text() for c in chips.chips] == [
        "[refcard-en-a4.pdf, p. 2]",
        "[refcard-en-a4.pdf, p. 3]",
        "[other.pdf, p. 2]",
    ]
    tip = chips.chips[0].toolTip()
    assert "Ctrl-K to cut a line" in tip and "Ctrl-W to cut a region" in tip and "Ctrl-Y" not in tip
    with qtbot.waitSignal(chips.clicked) as opened:
        chips.chips[0].click()
    assert opened.args[0]["number"] == 1  # the page's first passage


def test_cancel_rolls_back_the_file_in_progress(qtbot, chat, docs):
    panel = chat.documents.panel
    with qtbot.waitSignal(panel.busyChanged, timeout=30_000, check_params_cb=lambda busy: not busy):
        drop(chat, [docs["volcanoes"], docs["bees"]])
        panel.cancel_button.click()
    assert all(r.status == "cancelled" for r in panel.rows), [r.status for r in panel.rows]
    assert chat.store.get_conversation(chat.cid).collection is None  # nothing got in: nothing attached


@pytest.fixture
def model_page(qtbot, chat, tmp_path):
    chat.set_library([add_model_file(write_tiny_gguf(tmp_path / "tiny-chat.gguf", ctx=4096))], detect())
    chat.drawer.numbers["max_tokens"].setValue(24)
    with qtbot.waitSignal(chat.modelLoaded, timeout=15_000):
        chat.load_model()
    qtbot.waitUntil(lambda: not chat.loading, timeout=5_000)
    return chat


def _ask(qtbot, page: ChatPage, text: str):
    with qtbot.waitSignal(page.turnFinished, timeout=60_000) as done:
        page.send_message(text)
    qtbot.waitUntil(lambda: not page.busy, timeout=5_000)
    return done.args[0]


def test_answers_from_documents_cite_pages_and_a_chip_opens_the_viewer(qtbot, model_page, docs):
    page = model_page
    _ingest(qtbot, page, [docs["bees"], docs["volcanoes"]])
    collection = page.store.get_conversation(page.cid).collection
    notes = []
    page.transcript.set_stream_note = lambda note, real=page.transcript.set_stream_note: (
        notes.append(note),
        real(note),
    )
    turn = _ask(qtbot, page, "How do beekeepers calm the colony?")
    assert notes and notes[0].startswith("Using ") and notes[0].endswith(" this chat's PDFs")
    assert collection not in notes[0]
    assert turn.plan.prompt_tokens > 100 and turn.result.completion_tokens > 0  # the passages were in the prompt
    answers = [b for b in page.transcript.bubbles() if b.role == "assistant"]
    assert len(answers) == 1 and answers[0].message_id == turn.message.id and answers[0].text()

    nothing = _ask(qtbot, page, "quarterly revenue of a software company")
    assert nothing.result.completion_tokens == 0 and "Nothing in" in notes[-1]
    assert "couldn't find anything" in page.transcript.bubbles()[-1].text()

    # The tiny model can't cite by itself: save an answer with real passages and the model's [n] markers.
    passages = query(collection, "How do beekeepers calm the colony?", k=1)
    raw = "Beekeepers use smoke [1]."
    _, citations = resolve_citations(raw, passages)
    store = page.store
    question = store.add_message(page.cid, "user", "And why smoke?")
    reply = store.begin_message(page.cid, parent_id=question.id)
    store.append_text(reply.id, raw)
    store.finish_message(reply.id, finish_reason="stop", citations=[c.to_json() for c in citations])
    page.open_conversation(page.cid)
    bubble = page.transcript.bubbles()[-1]
    assert bubble.message_id == reply.id and bubble.text() == "Beekeepers use smoke [bees.pdf, p. 1]."
    assert [c.text() for c in bubble.chips.chips] == ["[bees.pdf, p. 1]"]
    assert bubble.chips.isVisible() and bubble.chips.height() > 10

    with qtbot.waitSignal(_viewer_rendered(page), timeout=10_000):
        qtbot.mouseClick(bubble.chips.chips[0], Qt.MouseButton.LeftButton)
    viewer = page.documents.viewer
    assert viewer.isVisible() and viewer.page == 1 and viewer.pages == 2
    assert viewer.highlights and viewer.image.pixmap().width() > 500
    assert "Page 1 of 2" in viewer.page_label.text()
    with qtbot.waitSignal(viewer.rendered, timeout=10_000):
        viewer.next_button.click()
    assert viewer.page == 2 and viewer.highlights == [] and not viewer.next_button.isEnabled()
    width = viewer.image.pixmap().width()
    with qtbot.waitSignal(viewer.rendered, timeout=10_000):
        viewer.zoom_in.click()
    assert viewer.image.pixmap().width() > width

    docs["bees"].rename(docs["bees"].with_name("moved.pdf"))
    qtbot.mouseClick(bubble.chips.chips[0], Qt.MouseButton.LeftButton)
    assert viewer.message.isVisible() and "no longer at" in viewer.message.text()
    assert BEE_PASSAGE in viewer.message.text() and viewer.highlights == []


def _viewer_rendered(page: ChatPage):
    """The viewer's ``rendered`` signal (the viewer is made on the first click: make it now)."""
    from macapp.ui.widgets.page_viewer import PageViewer

    if page.documents.viewer is None:
        page.documents.viewer = PageViewer(page.window())
    return page.documents.viewer.rendered


def test_documents_page_lists_removes_reindexes_and_deletes(qtbot, docs, monkeypatch):
    embedder = load_embedder()
    for _ in add_files("Papers", [docs["bees"], docs["volcanoes"]], embedder):
        pass
    page = DocumentsPage()
    qtbot.addWidget(page)
    page.resize(1000, 640)
    with qtbot.waitSignal(page.refreshed, timeout=10_000):
        page.show()
    info = list_collections()[0]
    assert page.collection_list.count() == 1
    assert page.collection_list.item(0).text() == f"Papers\n2 files · 5 pages · {info.chunks} passages"
    table = page.files_table
    rows = {table.item(r, 0).text(): [table.item(r, c).text() for c in (1, 2)] for r in range(table.rowCount())}
    assert rows == {f.file: [str(f.pages), str(f.chunks)] for f in info.files}
    assert table.item(0, 3).text()  # the date it was added
    assert not page.remove_button.isEnabled()

    table.selectRow(next(r for r in range(table.rowCount()) if table.item(r, 0).text() == "bees.pdf"))
    assert page.remove_button.isEnabled()
    with qtbot.waitSignal(page.refreshed, timeout=10_000):
        page.remove_button.click()
    assert [table.item(r, 0).text() for r in range(table.rowCount())] == ["volcanoes.pdf"]
    assert page.collection_list.item(0).text().startswith("Papers\n1 file · 3 pages")
    assert "Removed bees.pdf" in page.notice.label.text()

    with qtbot.waitSignal(page.refreshed, timeout=30_000):  # a drop adds to the selected collection
        assert drop(page, [docs["bees"]])
    assert table.rowCount() == 2 and page.panel.rows[-1].status == "added"

    with qtbot.waitSignal(page.refreshed, timeout=30_000):
        page.reindex_button.click()
    assert page.panel.rows[-1].state_label.text() == "Done" and "re-indexed" in page.panel.rows[-1].detail_label.text()

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignals([page.collectionDeleted, page.refreshed], timeout=10_000):
        page.delete_button.click()
    assert list_collections() == [] and page.collection_list.count() == 0
    assert page.stack.currentWidget() is page.empty_label


def test_a_chats_collection_shows_what_it_holds_and_the_embedder_its_name(qtbot, docs):
    """No internal names on screen: ``chat-3`` is "2 PDFs in chat “…”", the embedder is "all-MiniLM-L6-v2"
    (its ``@`` file hash is for the index); the exact ones are in the tooltips."""
    embedder = load_embedder()
    with ChatStore() as store:
        conv = store.create_conversation(title="Bees and volcanoes")
        store.update_conversation(conv.id, collection=f"chat-{conv.id}")
    for name, files in (
        (f"chat-{conv.id}", [docs["bees"], docs["volcanoes"]]),
        ("chat-99", [docs["bees"]]),
        ("Papers", [docs["volcanoes"]]),
    ):
        for _ in add_files(name, files, embedder):
            pass
    page = _documents_page(qtbot)
    titles = {
        page.collection_list.item(r).data(Qt.ItemDataRole.UserRole): page.collection_list.item(r).text().split("\n")[0]
        for r in range(page.collection_list.count())
    }
    assert titles == {
        f"chat-{conv.id}": "2 PDFs in chat “Bees and volcanoes”",
        "chat-99": "1 PDF from a chat",
        "Papers": "Papers",
    }
    page.select_collection(f"chat-{conv.id}")
    assert page.collection_title.text() == "2 PDFs in chat “Bees and volcanoes”"
    assert f"chat-{conv.id}" in page.collection_title.toolTip()
    meta = page.collection_meta.text()
    assert " · embedded with all-MiniLM-L6-v2 · " in meta and "@" not in meta
    assert embedder.name in page.collection_meta.toolTip() and "@" in embedder.name
    page.grab().save("/tmp/documents-chat-collection.png")


def test_deleting_a_collection_detaches_it_from_its_chats(qtbot, chat, docs):
    _ingest(qtbot, chat, [docs["bees"]])
    name = chat.store.get_conversation(chat.cid).collection
    chat.documents.forget_collection(name.upper())  # names match without case
    assert chat.store.get_conversation(chat.cid).collection is None and not chat.documents.label.isVisible()


def test_drop_without_pdfs_is_refused(qtbot, chat, docs):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(docs["notes"]))])
    enter = QDragEnterEvent(
        QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(chat, enter)
    assert not enter.isAccepted() and not chat.documents.overlay.isVisible() and chat.cid is None


BEE_QUESTION = "How do beekeepers calm the colony?"
BUNDLED_ROW = "all-MiniLM-L6-v2.gguf · 384 dimensions · bundled"


@pytest.fixture(scope="module")
def other_embedder(tmp_path_factory) -> Path:
    """A second embedding model: the bundled GGUF with another ``general.name``, so another file hash and
    another name in the index (its vectors are the same, but the index can't know that)."""
    path = tmp_path_factory.mktemp("embedders") / "alt-MiniLM.gguf"
    shutil.copyfile(bundled_embedder_path(), path)
    reader = gguf.GGUFReader(path, "r+")
    field = reader.get_field("general.name")
    field.parts[field.data[0]][:] = np.frombuffer(b"alt-MiniLM-L6-v2", dtype=np.uint8)  # same length
    reader.data.flush()
    del reader
    return path


def _documents_page(qtbot) -> DocumentsPage:
    page = DocumentsPage()
    qtbot.addWidget(page)
    page.resize(1000, 640)
    with qtbot.waitSignals([page.refreshed, page.embedderShown], timeout=15_000):
        page.show()
    return page


def _marks(page: DocumentsPage) -> dict[str, str]:
    """Each listed collection's third line: its re-index mark ("" when it uses the current embedder)."""
    lst = page.collection_list
    return {
        lst.item(r).data(Qt.ItemDataRole.UserRole): (lst.item(r).text().split("\n") + [""])[2]
        for r in range(lst.count())
    }


def test_a_gguf_that_is_no_embedder_is_refused_and_the_setting_stays(qtbot, tmp_path):
    page = _documents_page(qtbot)
    assert page.embedder_row.label.text() == BUNDLED_ROW and not page.embedder_row.bundled_button.isEnabled()
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(os.urandom(4096))
    for path, message in (
        (write_tiny_gguf(tmp_path / "tiny-chat.gguf"), "tiny-chat.gguf is not an embedding model"),
        (junk, "junk.gguf is not a valid GGUF file"),
    ):
        with qtbot.waitSignal(page.embedderShown, timeout=15_000):  # the row shows the model still in use
            page.choose_embedder(str(path))
            assert (
                page.embedder_row.label.text().startswith("loading ")
                and not page.embedder_row.choose_button.isEnabled()
            )
        assert message in page.notice.label.text()
        assert page.embedder_row.label.text() == BUNDLED_ROW and page.embedder_row.choose_button.isEnabled()
        assert Settings.load().embedder_path == ""


def test_changing_the_embedder_reindexes_the_collections_built_with_another(qtbot, docs, other_embedder):
    bundled = load_embedder()
    for name, pdf in (("Papers", docs["bees"]), ("Notes", docs["volcanoes"])):
        for _ in add_files(name, [pdf], bundled):
            pass
    page = _documents_page(qtbot)
    assert _marks(page) == {"Notes": "", "Papers": ""} and not page.stale_box.isVisible()

    with qtbot.waitSignal(page.embedderShown, timeout=15_000):
        page.choose_embedder(str(other_embedder))
    other = load_embedder(str(other_embedder))
    assert Settings.load().embedder_path == str(other_embedder) and other.name != bundled.name
    assert (
        page.embedder_row.label.text() == "alt-MiniLM.gguf · 384 dimensions"
        and page.embedder_row.bundled_button.isEnabled()
    )
    assert "2 collections made with another model are re-indexed" in page.notice.label.text()
    assert _marks(page) == {"Notes": "Re-indexing…", "Papers": "Re-indexing…"}  # queued, one after another
    assert [r.name for r in page.panel.rows] == ["Re-indexing “Notes”", "Re-indexing “Papers”"]
    qtbot.waitUntil(
        lambda: not page.panel.busy and {c.embedder for c in page.collections} == {other.name}, timeout=60_000
    )
    assert [r.state_label.text() for r in page.panel.rows] == ["Done", "Done"]
    assert _marks(page) == {"Notes": "", "Papers": ""} and not page.stale_box.isVisible()
    assert BEE_PASSAGE in query("Papers", BEE_QUESTION, k=1, mode="vector")[0].text  # the setting's embedder

    # Back to the bundled model outside the page (the CLI, another window): both are marked, each has a fix.
    update_settings(lambda settings: setattr(settings, "embedder_path", ""))
    with qtbot.waitSignal(page.embedderShown, timeout=15_000):
        page.load_embedder_info()
    assert _marks(page) == {"Notes": "Needs re-index", "Papers": "Needs re-index"}
    page.select_collection("Papers")
    assert (
        page.stale_box.isVisible()
        and "Indexed with alt-MiniLM-L6-v2, not the current embedding model (all-MiniLM-L6-v2)"
        in page.stale_label.text()
        and "@" not in page.stale_label.text()
    )
    assert other.name in page.stale_label.toolTip()
    with pytest.raises(EmbedderMismatch):
        query("Papers", BEE_QUESTION, k=1, mode="vector")
    with qtbot.waitSignal(page.panel.batchFinished, timeout=30_000):
        page.stale_button.click()
        assert _marks(page)["Papers"] == "Re-indexing…" and page.stale_button.isHidden()
    qtbot.waitUntil(lambda: _marks(page) == {"Notes": "Needs re-index", "Papers": ""}, timeout=10_000)
    assert not page.stale_box.isVisible()
    assert BEE_PASSAGE in query("Papers", BEE_QUESTION, k=1, mode="vector")[0].text


def test_a_chat_on_documents_of_another_embedder_offers_to_reindex(qtbot, model_page, docs, other_embedder):
    page = model_page
    _ingest(qtbot, page, [docs["bees"]])
    collection = page.store.get_conversation(page.cid).collection
    update_settings(lambda settings: setattr(settings, "embedder_path", str(other_embedder)))
    with qtbot.waitSignal(page.busyChanged, timeout=30_000, check_params_cb=lambda busy: not busy):
        page.send_message(BEE_QUESTION)
    notice = page.notice.label.text()  # and the app goes on
    assert (
        "The PDFs in this chat were indexed with all-MiniLM-L6-v2, not the embedding model chosen now "
        "(alt-MiniLM-L6-v2)"
        in notice
        and collection not in notice
        and "@" not in notice
    )
    assert page.notice.action_button.isVisible() and page.notice.action_button.text() == "Re-index"
    assert [b.role for b in page.transcript.bubbles()] == ["user"]  # the question stays; no answer

    with qtbot.waitSignal(page.documents.panel.batchFinished, timeout=30_000):
        page.notice.action_button.click()
    assert not page.notice.isVisible() and page.documents.panel.rows[-1].state_label.text() == "Done"
    assert {c.name: c.embedder for c in list_collections()}[collection] == load_embedder(str(other_embedder)).name
    turn = _ask(qtbot, page, BEE_QUESTION)
    assert turn.plan.prompt_tokens > 100  # answered from the re-indexed passages


@pytest.mark.real_model
def test_a_real_small_models_grounded_answer_shows_its_sources_as_chips(qtbot, chat, docs, real_model):
    """SmolLM2-135M answers from the passages but writes no [n]: the chips name the pages its sentences match."""
    from macapp.core.engines.base import SamplingSettings

    chat.set_library([add_model_file(real_model)], detect())
    chat.drawer.set_sampling(SamplingSettings(temperature=0.0, seed=1, max_tokens=60))
    with qtbot.waitSignal(chat.modelLoaded, timeout=60_000):
        chat.load_model()
    qtbot.waitUntil(lambda: not chat.loading, timeout=5_000)
    _ingest(qtbot, chat, [docs["bees"], docs["volcanoes"]])
    turn = _ask(qtbot, chat, "How do beekeepers calm the colony?")
    assert turn.result.completion_tokens > 0 and "[" not in turn.result.text  # the model cites nothing itself
    bubble = [b for b in chat.transcript.bubbles() if b.role == "assistant"][-1]
    labels = [c.text() for c in bubble.chips.chips]
    assert labels and all(label.startswith("[bees.pdf, p. ") for label in labels), (turn.result.text, labels)
    qtbot.waitUntil(bubble.chips.isVisible, timeout=5_000)  # shown once the finished answer is laid out
    assert bubble.chips.height() > 10
    saved = chat.store.get_message(turn.message.id).citations
    assert saved and all(c["file"] == "bees.pdf" for c in saved)
    chat.grab().save("/tmp/chat-real-model-chips.png")
