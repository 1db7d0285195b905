"""The Chat page's three panes on a narrow window: the chat list, the answers and the settings drawer.

Side by side they need the list's and the drawer's minimum widths plus ``CENTER_MIN`` for the answers (the
header's picker and buttons, the composer's row). When the drawer is open and that does not fit (900×600, the
window's minimum), the drawer floats over the right edge of the answers, between the header (whose gear closes
it) and the composer (whose Send stays reachable), instead of squeezing every button and spilling off the
window. Wide again, it goes back into the row.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPoint, QRect
from PySide6.QtWidgets import QWidget

CENTER_MIN = 420  # the answers' column: the header's picker and buttons, the composer's buttons


class PaneFitter(QObject):
    """Docks the settings drawer in the page's row when it fits, floats it over the answers when not."""

    def __init__(self, page: QWidget):
        super().__init__(page)
        self.page = page
        self.floating = False
        page.installEventFilter(self)
        page.drawer.installEventFilter(self)
        page.composer_box.installEventFilter(self)
        page.header.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        drawer = watched is self.page.drawer  # its own resizes come from here: only its showing and hiding count
        if event.type() in ((QEvent.Type.Show, QEvent.Type.Hide) if drawer else (QEvent.Type.Resize, QEvent.Type.Move)):
            self.fit()
        return False

    def fits(self) -> bool:
        page = self.page
        return page.width() - page.sidebar.minimumWidth() - page.drawer.minimumWidth() >= CENTER_MIN

    def fit(self) -> None:
        page, drawer = self.page, self.page.drawer
        float_it = drawer.isVisibleTo(page) and not self.fits()
        if float_it != self.floating:
            self.floating = float_it
            if float_it:
                page.layout().removeWidget(drawer)
            else:
                page.layout().addWidget(drawer)
        if float_it:
            drawer.setGeometry(self.floating_rect())
            drawer.raise_()

    def floating_rect(self) -> QRect:
        page, drawer = self.page, self.page.drawer
        width = max(drawer.minimumWidth(), min(drawer.maximumWidth(), drawer.sizeHint().width()))
        top = page.header.mapTo(page, QPoint(0, page.header.height())).y()
        bottom = page.composer_box.mapTo(page, QPoint(0, 0)).y()
        return QRect(page.width() - width, top, width, max(0, bottom - top))
