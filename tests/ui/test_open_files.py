"""Files opened with Orchard (a PDF or GGUF dropped on the Dock icon, "Open With Orchard").

macOS delivers them as ``QFileOpenEvent``s to the application, possibly before the window exists;
``file_open_events`` keeps them until the window takes them, and ``MainWindow.open_files`` sends
PDFs to the chat on screen and models to the library.
"""

from __future__ import annotations

from PySide6.QtGui import QFileOpenEvent
from PySide6.QtWidgets import QApplication

from macapp.core.chat.store import ChatStore
from macapp.core.models.tiny_gguf import write_tiny_gguf
from macapp.core.paths import chats_db
from macapp.ui.app import file_open_events
from tests.fixtures.pdfs import make_pdf


def test_files_opened_before_the_window_exists_wait_for_it(qtbot):
    app = QApplication.instance()
    events = file_open_events(app)
    QApplication.sendEvent(app, QFileOpenEvent("/tmp/early.pdf"))
    got: list[str] = []
    events.deliver_to(got.extend)
    assert got == ["/tmp/early.pdf"]
    QApplication.sendEvent(app, QFileOpenEvent("/tmp/later.gguf"))
    assert got == ["/tmp/early.pdf", "/tmp/later.gguf"]
    app.removeEventFilter(events)


def test_an_opened_pdf_joins_the_chat_and_a_model_joins_the_library(qtbot, window_factory, tmp_path):
    window = window_factory()
    qtbot.waitUntil(lambda: window.chat_page.store is not None, timeout=10_000)
    pdf = make_pdf(tmp_path / "orchard-notes.pdf", ["Apple trees need pruning in late winter."])
    model = write_tiny_gguf(tmp_path / "opened-model.gguf")
    panel = window.chat_page.documents.panel
    with qtbot.waitSignal(panel.batchFinished, timeout=30_000) as done:
        window.open_files([str(pdf), str(model), str(tmp_path / "notes.txt")])
    assert [o.status for o in done.args[1]] == ["added"]
    assert window.pages.currentWidget() is window.chat_page and not window.welcome_visible
    assert window.toast.isVisible() and "notes.txt" in window.toast.text()
    qtbot.waitUntil(lambda: window.models_page.table_model.row_of_path(str(model)) is not None, timeout=15_000)
    cid = window.chat_page.cid
    with ChatStore(chats_db()) as store:
        assert store.get_conversation(cid).collection == done.args[0]
