"""One-line labels and combo boxes that elide their text ("…") instead of clipping it."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import QPainter, QPalette
from PySide6.QtWidgets import QComboBox, QLabel, QSizePolicy, QStyle, QStyleOptionComboBox, QStylePainter, QToolTip


class ElidedLabel(QLabel):
    """A one-line label as wide as its text when there is room, eliding its text (not clipping it) when not."""

    def __init__(
        self,
        text: str = "",
        mode: Qt.TextElideMode = Qt.TextElideMode.ElideMiddle,
        name: str | None = None,
        min_shown: int = 0,
    ):
        """``min_shown``: fewer characters than this left beside the "…" show nothing ("u…F" says nothing)."""
        super().__init__()
        if name:
            self.setObjectName(name)
        self._full = ""
        self._mode = mode
        self._min_shown = min_shown
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.set_full_text(text)

    def full_text(self) -> str:
        return self._full

    def set_full_text(self, text: str) -> None:
        self._full = text
        self._elide()
        self.updateGeometry()

    def sizeHint(self) -> QSize:
        margins = self.contentsMargins()
        width = self.fontMetrics().horizontalAdvance(self._full) + margins.left() + margins.right() + 2
        return QSize(width, super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        return QSize(min(40, self.sizeHint().width()), super().minimumSizeHint().height())

    def _elide(self) -> None:
        text = self.fontMetrics().elidedText(self._full, self._mode, max(0, self.contentsRect().width()))
        if text != self._full and len(text) - 1 < self._min_shown:
            text = ""
        self.setText(text)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide()

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._elide()
            self.updateGeometry()


def _with_full_text(full: str, tip: str) -> str:
    """A tooltip that holds the whole of an elided text (added above the widget's own tip unless it has it)."""
    return tip if full in tip else f"{full}\n{tip}" if tip else full


class EllipsisLabel(QLabel):
    """A one-line label whose ``text()`` stays whole: it paints "…" where the text does not fit its width, and
    its tooltip then holds the whole text. For status lines that must not widen their row."""

    def __init__(self, text: str = "", mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight, parent=None):
        super().__init__(text, parent)
        self._mode = mode
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def shown_text(self) -> str:
        """The text as painted at the current width."""
        return self.fontMetrics().elidedText(self.text(), self._mode, max(0, self.contentsRect().width()))

    def is_elided(self) -> bool:
        return self.shown_text() != self.text()

    def shown_tooltip(self) -> str:
        """The tooltip a hover shows: the label's own, with the whole text when it is elided."""
        return _with_full_text(self.text(), self.toolTip()) if self.is_elided() else self.toolTip()

    def minimumSizeHint(self) -> QSize:
        return QSize(min(40, super().sizeHint().width()), super().minimumSizeHint().height())

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        self.drawFrame(painter)
        align = QStyle.visualAlignment(self.layoutDirection(), self.alignment())
        self.style().drawItemText(
            painter,
            self.contentsRect(),
            int(align),
            self.palette(),
            self.isEnabled(),
            self.shown_text(),
            self.foregroundRole(),
        )

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ToolTip and self.is_elided():
            QToolTip.showText(event.globalPos(), self.shown_tooltip(), self)
            return True
        return super().event(event)


class ElidingComboBox(QComboBox):
    """A combo box that paints its current text with "…" (in the middle, by default) when it is narrower than the
    text, instead of clipping it, and whose tooltip then holds the whole text."""

    def __init__(self, parent=None, mode: Qt.TextElideMode = Qt.TextElideMode.ElideMiddle):
        super().__init__(parent)
        self._mode = mode

    def _text_rect(self, opt: QStyleOptionComboBox):
        rect = self.style().subControlRect(
            QStyle.ComplexControl.CC_ComboBox, opt, QStyle.SubControl.SC_ComboBoxEditField, self
        )
        if not opt.currentIcon.isNull():
            rect.setLeft(rect.left() + opt.iconSize.width() + 4)
        return rect

    def _option(self) -> QStyleOptionComboBox:
        opt = QStyleOptionComboBox()
        self.initStyleOption(opt)
        if self.currentIndex() < 0 and self.placeholderText():  # as QComboBox paints it
            opt.palette.setBrush(QPalette.ColorRole.ButtonText, opt.palette.placeholderText())
            opt.currentText = self.placeholderText()
        return opt

    def shown_text(self) -> str:
        """The current text as painted at the current width."""
        opt = self._option()
        width = self._text_rect(opt).width()
        return self.fontMetrics().elidedText(opt.currentText, self._mode, max(0, width))

    def is_elided(self) -> bool:
        return self.shown_text() != self.currentText()

    def shown_tooltip(self) -> str:
        return _with_full_text(self.currentText(), self.toolTip()) if self.is_elided() else self.toolTip()

    def paintEvent(self, event) -> None:
        painter = QStylePainter(self)
        opt = self._option()
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, opt)
        opt.currentText = self.shown_text()
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, opt)

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ToolTip and self.is_elided():
            QToolTip.showText(event.globalPos(), self.shown_tooltip(), self)
            return True
        return super().event(event)
