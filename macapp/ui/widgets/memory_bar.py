"""Paint a memory estimate against the budget: weights, KV cache, compute + overhead.

The segments are shades of the verdict colour (fits green, tight amber, too big red) so the
bar answers "will it fit?" at a glance; a vertical line marks the budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

from macapp.core.units import format_bytes, format_count, format_percent

if TYPE_CHECKING:
    from macapp.core.models.estimate import MemoryEstimate

VERDICT_COLORS = {"fits": "#2e9d5b", "tight": "#d9911a", "too_big": "#d64541", None: "#5b7fbf"}
VERDICT_WORDS = {"fits": "Fits", "tight": "Tight", "too_big": "Too big", None: "—"}
SEGMENT_NAMES = ("Weights", "KV cache", "Compute + overhead")
_SHADES = (1.0, 0.62, 0.32)  # opacity of each segment's colour over the track


def verdict_color(verdict: str | None) -> QColor:
    return QColor(VERDICT_COLORS.get(verdict, VERDICT_COLORS[None]))


def segment_color(verdict: str | None, index: int, track: QColor) -> QColor:
    """The colour of segment ``index`` blended over the track colour (legend swatches use it too)."""
    base, a = verdict_color(verdict), _SHADES[index]
    return QColor.fromRgbF(
        base.redF() * a + track.redF() * (1 - a),
        base.greenF() * a + track.greenF() * (1 - a),
        base.blueF() * a + track.blueF() * (1 - a),
    )


def track_color(palette: QPalette) -> QColor:
    base, text = palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.Text)
    return QColor.fromRgbF(*(b * 0.9 + t * 0.1 for b, t in zip(base.getRgbF()[:3], text.getRgbF()[:3])))


def paint_bar(
    painter: QPainter,
    rect: QRectF,
    parts: tuple[int, ...],
    budget: int | None,
    verdict: str | None,
    palette: QPalette,
    radius: float = 4.0,
) -> None:
    """Draw ``parts`` (bytes) side by side on a rounded track scaled so the budget fits with room to spare."""
    track = track_color(palette)
    total = sum(parts)
    scale = max(total, budget or 0) * 1.08 or 1
    clip = QPainterPath()
    clip.addRoundedRect(rect, radius, radius)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.fillPath(clip, track)
    painter.setClipPath(clip)
    x = rect.left()
    for i, part in enumerate(parts):
        w = rect.width() * part / scale
        if part > 0:
            w = max(w, 1.5)  # a segment that exists stays visible
        painter.fillRect(QRectF(x, rect.top(), w, rect.height()), segment_color(verdict, min(i, 2), track))
        x += w
    painter.setClipping(False)
    if budget:
        bx = rect.left() + rect.width() * budget / scale
        pen_color = palette.color(QPalette.ColorRole.Text)
        painter.setPen(pen_color)
        painter.drawLine(QPointF(bx, rect.top() - 3), QPointF(bx, rect.bottom() + 3))
    painter.restore()


class MemoryBar(QWidget):
    """Weights / KV cache / compute + overhead of one estimate, against the budget line."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._parts: tuple[int, int, int] = (0, 0, 0)
        self._budget: int | None = None
        self._verdict: str | None = None
        self.setObjectName("memoryBar")  # style.qss gives its track the theme's card colour (the palette's Base)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(160)

    def set_estimate(self, estimate) -> None:
        """Show a ``MemoryEstimate`` (or clear the bar with None)."""
        if estimate is None:
            self._parts, self._budget, self._verdict = (0, 0, 0), None, None
        else:
            self._parts = (
                estimate.weights_bytes,
                estimate.kv_cache_bytes,
                estimate.compute_bytes + estimate.overhead_bytes,
            )
            self._budget, self._verdict = estimate.budget_bytes, estimate.verdict
        self.update()

    @property
    def parts(self) -> tuple[int, int, int]:
        """(weights, KV cache, compute + overhead) bytes as drawn."""
        return self._parts

    @property
    def budget(self) -> int | None:
        return self._budget

    @property
    def verdict(self) -> str | None:
        return self._verdict

    def segment_colors(self) -> list[QColor]:
        """The colours the segments are painted in now (for a legend)."""
        track = track_color(self.palette())
        return [segment_color(self._verdict, i, track) for i in range(3)]

    def sizeHint(self) -> QSize:
        return QSize(320, 30)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        rect = QRectF(self.rect()).adjusted(1, 5, -1, -5)
        paint_bar(painter, rect, self._parts, self._budget, self._verdict, self.palette(), radius=6)
        painter.end()


def estimate_tooltip(estimate: MemoryEstimate) -> str:
    lines = [
        f"At {format_count(estimate.n_ctx)} tokens ({estimate.kv_type} KV cache):",
        f"weights {format_bytes(estimate.weights_bytes)}, KV cache {format_bytes(estimate.kv_cache_bytes)}, "
        f"compute + overhead {format_bytes(estimate.compute_bytes + estimate.overhead_bytes)}",
        f"total {format_bytes(estimate.total_bytes)}",
    ]
    if estimate.budget_bytes:
        share = format_percent(estimate.gpu_bytes / estimate.budget_bytes)
        budget = format_bytes(estimate.budget_bytes)
        lines[-1] += f": {share} of the {budget} budget ({VERDICT_WORDS[estimate.verdict]})"
    return "\n".join(lines)
