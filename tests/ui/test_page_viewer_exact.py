"""The viewer opens a citation at its exact page and highlights the sentences it stands for (its quote),
not the whole passage that runs over several pages."""

from __future__ import annotations

import os

from macapp.ui.widgets.page_viewer import PageViewer
from tests.fixtures import pdfs

PAGES = [
    "The orchard path runs along the old stone wall. Visitors often stop to read the signs.",
    "The weather in spring is mild and bright. Paths are swept every morning by the staff.",
    "Visitors often stop to read the signs. A barn owl nests in the cider press shed every winter. "
    "The weather in spring is mild and bright.",
    "Paths are swept every morning by the staff. The orchard path runs along the old stone wall.",
]
QUOTE = "A barn owl nests in the cider press shed every winter."


def citation(path, **extra) -> dict:
    breaks = [len(" ".join(PAGES[:n])) + 1 for n in range(1, len(PAGES))]
    return {
        "number": 1,
        "file": path.name,
        "path": str(path),
        "page": 3,
        "page_start": 1,
        "page_end": 4,
        "text": " ".join(PAGES),
        "page_breaks": breaks,
        "label": f"[{path.name}, p. 3]",
    } | extra


def show(qtbot, viewer: PageViewer, cite: dict) -> None:
    with qtbot.waitSignal(viewer.rendered, timeout=15_000):
        viewer.show_citation(cite)


def test_a_citation_opens_at_its_exact_page_with_its_quote_highlighted(qtbot, tmp_path):
    path = pdfs.make_pdf(tmp_path / "walk.pdf", PAGES)
    viewer = PageViewer()
    qtbot.addWidget(viewer)
    show(qtbot, viewer, citation(path, quote=QUOTE))
    assert viewer.page == 3 and "Page 3 of 4" in viewer.page_label.text()
    quoted = list(viewer.highlights)
    assert quoted
    show(qtbot, viewer, citation(path))  # a citation saved before quotes existed: the passage's part of page 3
    passage = list(viewer.highlights)
    assert viewer.page == 3 and passage
    top = min(r.top() for r in passage), max(r.bottom() for r in passage)
    assert max(r.bottom() for r in quoted) - min(r.top() for r in quoted) < top[1] - top[0]  # the quote, not all
    with qtbot.waitSignal(viewer.rendered, timeout=15_000):
        viewer.prev_button.click()
    assert viewer.page == 2 and viewer.highlights  # another page of the passage: its part there is marked
    if os.environ.get("ORCHARD_GRAB"):
        show(qtbot, viewer, citation(path, quote=QUOTE))
        viewer.resize(700, 500)
        qtbot.wait(200)
        viewer.grab().save(os.environ["ORCHARD_GRAB"])
