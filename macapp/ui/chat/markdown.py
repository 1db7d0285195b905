"""Markdown in chat bubbles: prose in text views as tall as their text, fenced code in code boxes.

``split_markdown`` cuts the text at code fences (pure string work). Prose renders with
``QTextDocument.setMarkdown`` in a ``MarkdownView``; each fenced block becomes a ``CodeBlock``
(monospace on a subtle background, its language and a Copy button). Styling code this way costs
no walk over the document, which matters while an answer streams: every call into Qt releases
Python's lock, and with the engine thread running, taking it back can cost ~0.1 ms a call.

``StreamingMarkdown`` shows a growing answer: parts that can no longer change (prose before a
fence, a closed code block, long prose up to a blank line) are frozen in widgets of their own and
rendered once; only the last part is re-rendered, so a flush costs about the same however long
the answer grows. Inline code gets its background once the answer is complete (``finish``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QColor, QFontDatabase, QPalette, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSizePolicy,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

SEGMENT_CHARS = 4000  # prose longer than this is frozen up to its last blank line
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")


@dataclass(frozen=True)
class Part:
    """A run of prose, or one fenced code block (``closed`` False while its fence is still open)."""

    kind: str  # prose | code
    text: str
    end: int  # offset just past this part in the source
    info: str = ""  # a code block's language
    closed: bool = True


def split_markdown(text: str) -> list[Part]:
    """Prose and fenced code blocks of ``text``, in order; an unclosed fence runs to the end."""
    parts: list[Part] = []
    pos = 0
    prose_start = 0
    fence = info = ""
    code_start = -1
    for line in text.splitlines(keepends=True):
        bare = line.rstrip("\r\n")
        if code_start < 0:
            m = _FENCE.fullmatch(bare)
            if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
                if pos > prose_start:
                    parts.append(Part("prose", text[prose_start:pos], pos))
                fence, info, code_start = m.group(1), m.group(2).strip(), pos + len(line)
        else:
            stripped = bare.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]} and len(bare) - len(bare.lstrip()) <= 3:
                parts.append(Part("code", text[code_start:pos], pos + len(line), info))
                code_start, prose_start = -1, pos + len(line)
        pos += len(line)
    if code_start >= 0:
        parts.append(Part("code", text[code_start:], len(text), info, closed=False))
    elif len(text) > prose_start:
        parts.append(Part("prose", text[prose_start:], len(text)))
    return parts


def code_background(palette: QPalette | None = None) -> QColor:
    """The page colour moved 7% toward the text colour: visible in light and dark themes, never loud.

    From the application's palette by default: a view styled ``background: transparent`` has a
    transparent (black) base colour of its own.
    """
    palette = palette or QApplication.palette()
    base, text = palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.Text)
    return QColor.fromRgbF(*(b * 0.93 + t * 0.07 for b, t in zip(base.getRgbF()[:3], text.getRgbF()[:3])))


def split_point(text: str) -> int:
    """Where prose can be cut without changing how either side renders: after its last blank line (0: none)."""
    cut = text.rfind("\n\n")
    return cut + 2 if cut > 0 else 0


class MarkdownView(QTextBrowser):
    """Markdown prose sized to its content: ``fit(width)`` sets the width, the height follows."""

    def __init__(self, text: str = "", final: bool = True, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("markdown")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setOpenExternalLinks(True)
        self.document().setDocumentMargin(2)
        self._text = ""
        self._shaded = False
        self._width = 0
        self._shrink = False
        if text:
            self.set_markdown(text, final)

    def markdown(self) -> str:
        """The Markdown source last shown."""
        return self._text

    def set_markdown(self, text: str, final: bool = True) -> None:
        """Render ``text``; ``final`` also gives inline code its background (a walk over the document)."""
        if text != self._text or not self._text:
            self._text = text
            self._shaded = False
            self.document().setMarkdown(text)
        if final and not self._shaded and "`" in text:
            self._shaded = True
            self._shade_inline_code()
        if self._width:
            self.fit(self._width, self._shrink)

    def _shade_inline_code(self) -> None:
        doc = self.document()
        shade = QTextCharFormat()
        shade.setBackground(code_background())
        cursor = QTextCursor(doc)
        cursor.beginEditBlock()  # one relayout at the end, not one per span
        block = doc.begin()
        while block.isValid():
            it = block.begin()
            while not it.atEnd():
                fragment = it.fragment()
                if fragment.charFormat().fontFixedPitch():
                    cursor.setPosition(fragment.position())
                    cursor.setPosition(fragment.position() + fragment.length(), QTextCursor.MoveMode.KeepAnchor)
                    cursor.mergeCharFormat(shade)
                it += 1
            block = block.next()
        cursor.endEditBlock()

    def fit(self, width: int, shrink: bool = False) -> None:
        """Lay the text out ``width`` pixels wide (narrower if ``shrink`` and the text is short)."""
        self._width, self._shrink = width, shrink
        self.ensurePolished()  # the style sheet's font, or the text is measured in the wrong one
        doc = self.document()
        doc.setTextWidth(width)
        if shrink:
            ideal = math.ceil(doc.idealWidth() + 2 * doc.documentMargin()) + 1
            if ideal < width:
                width = ideal
                doc.setTextWidth(width)
        self.setFixedSize(width, math.ceil(doc.size().height()))

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange) and self._width:
            self.fit(self._width, self._shrink)


class CodeBlock(QFrame):
    """A fenced code block: monospace, unwrapped (scrolls sideways), its language and a Copy button."""

    def __init__(self, code: str = "", language: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("codeBlock")
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 4, 6, 8)
        lay.setSpacing(2)
        head = QHBoxLayout()
        self.language = QLabel(language)
        self.language.setObjectName("codeLanguage")
        self.copy_button = QToolButton()
        self.copy_button.setObjectName("bubbleAction")
        self.copy_button.setText("Copy")
        self.copy_button.setToolTip("Copy this code")
        self.copy_button.setAutoRaise(True)
        self.copy_button.clicked.connect(lambda: QApplication.clipboard().setText(self._code))
        head.addWidget(self.language)
        head.addStretch(1)
        head.addWidget(self.copy_button)
        lay.addLayout(head)
        self.view = QPlainTextEdit()
        self.view.setObjectName("codeView")
        self.view.setReadOnly(True)
        self.view.setFrameShape(QFrame.Shape.NoFrame)
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.view.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.view.document().setDocumentMargin(0)
        lay.addWidget(self.view)
        self._code = ""
        self._width = 0
        self.set_code(code)

    def code(self) -> str:
        return self._code

    def set_language(self, language: str) -> None:
        """The fence's language, as it grows while an answer streams (```py, then ```python)."""
        if self.language.text() != language:
            self.language.setText(language)

    def set_code(self, code: str) -> None:
        self._code = code.removesuffix("\n")
        self.view.setPlainText(self._code)
        if self._width:
            self.fit(self._width)

    def fit(self, width: int, shrink: bool = False) -> None:
        self._width = width
        self.ensurePolished()
        self.view.ensurePolished()
        metrics = self.view.fontMetrics()
        lines = self._code.split("\n")
        widest = max(map(len, lines)) * metrics.horizontalAdvance("M")
        inner = width - 16
        scrollbar = self.view.horizontalScrollBar().sizeHint().height() if widest > inner else 0
        self.view.setFixedSize(inner, max(len(lines) * metrics.lineSpacing(), self._text_height()) + 6 + scrollbar)
        self.setFixedSize(width, self.sizeHint().height())

    def _text_height(self) -> int:
        """The laid-out lines' height: a line of the plain-text layout can be a pixel taller than the font's
        line spacing, and 14 lines cut the last one under the scroll bar."""
        layout = self.view.document().documentLayout()
        block, height = self.view.document().firstBlock(), 0.0
        while block.isValid():
            height += layout.blockBoundingRect(block).height()
            block = block.next()
        return math.ceil(height)


def _part_widget(part: Part, final: bool) -> MarkdownView | CodeBlock:
    return MarkdownView(part.text, final) if part.kind == "prose" else CodeBlock(part.text, part.info)


class RichText(QWidget):
    """Markdown shown as a column of prose views and code blocks."""

    def __init__(self, text: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(6)
        self._parts: list[MarkdownView | CodeBlock] = []
        self._text = ""
        self._width = 0
        self._shrink = False
        if text:
            self.set_text(text)

    def text(self) -> str:
        return self._text

    def parts(self) -> list[MarkdownView | CodeBlock]:
        return list(self._parts)

    def set_text(self, text: str) -> None:
        self._text = text
        for widget in self._parts:
            widget.deleteLater()
        self._parts = [_part_widget(part, final=True) for part in split_markdown(text)]
        for widget in self._parts:
            self._layout.addWidget(widget, 0, Qt.AlignmentFlag.AlignLeft)
        if self._width:
            self.fit(self._width, self._shrink)

    def fit(self, width: int, shrink: bool = False) -> None:
        self._width, self._shrink = width, shrink
        for widget in self._parts:
            widget.fit(width, shrink and isinstance(widget, MarkdownView))


class StreamingMarkdown(RichText):
    """A growing Markdown answer: finished parts are frozen and rendered once, the last is re-rendered."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("", parent)
        self._frozen_chars = 0
        self._tail: MarkdownView | CodeBlock | None = None

    def render(self, text: str) -> None:
        """Show ``text``: the whole answer so far (it only grows)."""
        self._text = text
        parts = split_markdown(text[self._frozen_chars :])
        while parts:
            part = parts[0]
            if part.kind == "prose" and len(part.text) > SEGMENT_CHARS and (cut := split_point(part.text)):
                self._freeze(Part("prose", part.text[:cut], cut))  # long prose: keep re-rendering only its end
                parts = split_markdown(text[self._frozen_chars :])
                continue
            if len(parts) == 1:
                self._show_tail(part)
                return
            self._freeze(part)
            parts = parts[1:]
        if self._tail is not None:  # nothing after the frozen parts yet
            self._tail.hide()

    def _take_tail(self, kind: str) -> MarkdownView | CodeBlock | None:
        """The tail widget if it shows a part of ``kind`` (else it goes: what it showed turned out otherwise)."""
        tail = self._tail
        if tail is not None and _kind(tail) != kind:
            self._parts.remove(tail)
            tail.hide()
            tail.deleteLater()
            self._tail = tail = None
        return tail

    def _update(self, widget: MarkdownView | CodeBlock, part: Part) -> None:
        if isinstance(widget, MarkdownView):
            widget.set_markdown(part.text, final=False)
        else:
            widget.set_language(part.info)
            widget.set_code(part.text)
        widget.show()

    def _freeze(self, part: Part) -> None:
        """``part`` will not change again: render it once more in the tail widget (or a new one) and keep it."""
        widget = self._take_tail(part.kind)
        if widget is None:
            self._add(_part_widget(part, final=False))
        else:
            self._update(widget, part)
            self._tail = None
        self._frozen_chars += part.end

    def _show_tail(self, part: Part) -> None:
        widget = self._take_tail(part.kind)
        if widget is None:
            self._tail = self._add(_part_widget(part, final=False))
        else:
            self._update(widget, part)

    def _add(self, widget: MarkdownView | CodeBlock) -> MarkdownView | CodeBlock:
        self._parts.append(widget)
        self._layout.addWidget(widget, 0, Qt.AlignmentFlag.AlignLeft)
        if self._width:
            widget.fit(self._width)
        return widget

    def finish(self, text: str) -> None:
        """The answer is complete: show all of ``text`` and give inline code its background."""
        if text != self._text:
            self.render(text)
        for widget in self._parts:
            if isinstance(widget, MarkdownView) and "`" in widget.markdown():
                widget.set_markdown(widget.markdown(), final=True)


def _kind(widget: QWidget) -> str:
    return "prose" if isinstance(widget, MarkdownView) else "code"
