"""A scanned PDF and a photo of text dropped on a chat are read by OCR (the real engine), with per-page progress;
the Documents page says how many pages OCR read; a citation on an OCR'd page opens the viewer there with the
recognised line highlighted."""

from __future__ import annotations

import os

from macapp.core.docs.answer import resolve_citations
from macapp.core.docs.ingest import list_collections
from macapp.core.docs.retrieve import query
from macapp.ui.documents.page import DocumentsPage
from macapp.ui.widgets.page_viewer import PageViewer
from tests.fixtures import pdfs
from tests.ui.test_documents_ui import chat, drop  # noqa: F401 - the chat page fixture

LETTER = [
    "The cider press in the old barn opens on Monday at eight.\n\n"
    "Bring your own crates; the grading line takes apples of every size.",
    "Typed page: the letter's second page keeps its own text layer and is not read by OCR at all.",
]
LINE = "The cider press in the old barn opens on Monday at eight."


def test_a_dropped_scan_and_photo_are_read_by_ocr_and_cited_with_the_line_highlighted(qtbot, chat, tmp_path):  # noqa: F811
    scan = pdfs.make_scanned_pdf(tmp_path / "letter.pdf", LETTER, text_pages={2})
    photo = tmp_path / "label.png"
    pdfs.text_image("Quince jelly from the orchard shop, batch 12", 420, 80).save(photo)
    panel = chat.documents.panel
    seen: list[tuple[str, str, str]] = []
    panel_add = panel.add

    def recording_add(collection, paths):
        worker = panel_add(collection, paths)
        worker.signals.yielded.connect(
            lambda step: seen.extend(
                (step.stage, r.state_label.text(), r.detail_label.text()) for r in panel.rows if r.status == "working"
            )
        )
        return worker

    panel.add = recording_add
    with qtbot.waitSignal(panel.batchFinished, timeout=120_000):
        assert drop(chat, [scan, photo])
    qtbot.waitUntil(lambda: not panel.busy, timeout=5_000)
    assert [r.status for r in panel.rows] == ["added", "added"], [r.detail_label.text() for r in panel.rows]
    assert any(
        stage == "ocr" and state == "Reading by OCR" and detail.startswith("page 1 of 2")
        for stage, state, detail in seen
    ), seen
    assert panel.rows[0].detail_label.text().startswith("2 pages (1 read by OCR) · ")
    assert panel.rows[1].detail_label.text().startswith("1 page (1 read by OCR) · ")

    name = f"chat-{chat.cid}"
    (info,) = [c for c in list_collections() if c.name == name]
    assert (info.pages, info.ocr_pages) == (3, 2)
    page = DocumentsPage()
    qtbot.addWidget(page)
    with qtbot.waitSignal(page.refreshed, timeout=15_000):
        page.show()
    page.select_collection(name)
    assert "3 pages · 2 pages read by OCR" in page.collection_meta.text()
    cells = {
        page.files_table.item(r, 0).text(): page.files_table.item(r, 1).text()
        for r in range(page.files_table.rowCount())
    }
    assert cells == {"letter.pdf": "2 (1 by OCR)", "label.png": "1 (1 by OCR)"}

    passages = query(name, "When does the cider press open?", k=1, mode="keyword")
    _, (citation,) = resolve_citations("It opens on Monday at eight [1].", passages)
    assert (citation.file, citation.page) == ("letter.pdf", 1) and "cider press" in citation.quote
    viewer = PageViewer()
    qtbot.addWidget(viewer)
    with qtbot.waitSignal(viewer.rendered, timeout=15_000):
        viewer.show_citation(citation.to_json())
    assert viewer.page == 1 and "Page 1 of 2" in viewer.page_label.text()
    (box, *rest) = viewer.highlights
    px = viewer.zoom  # device-independent pixels per point
    assert 45 * px < box.left() < 65 * px and 45 * px < box.top() < 70 * px  # the line drawn at the 56 pt margin
    assert box.width() > 250 * px and box.height() < 30 * px  # one line, not the page
    if os.environ.get("ORCHARD_GRAB"):
        viewer.resize(760, 420)
        qtbot.wait(200)
        viewer.grab().save(os.environ["ORCHARD_GRAB"])
