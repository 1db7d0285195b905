"""A small live loss chart: training and validation loss against the iteration, painted with QPainter."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

TRAIN_COLOR = QColor("#2f7d4f")
VAL_COLOR = QColor("#d9911a")
PLACEHOLDER = "The loss curve appears here while training."
PLACEHOLDER_FLAGS = Qt.AlignmentFlag.AlignCenter.value | Qt.TextFlag.TextWordWrap.value  # wraps when narrow, not cut


class LossPlot(QWidget):
    """Two polylines (train, validation) over iterations 0…``iters``; the y axis fits the losses seen."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("lossPlot")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.train_points: list[tuple[int, float]] = []
        self.val_points: list[tuple[int, float]] = []
        self.iters = 0

    def sizeHint(self) -> QSize:
        return QSize(480, 220)

    def minimumSizeHint(self) -> QSize:
        return QSize(240, 140)

    def clear(self, iters: int = 0) -> None:
        self.train_points.clear()
        self.val_points.clear()
        self.iters = iters
        self.update()

    def add_train(self, iteration: int, loss: float) -> None:
        self._add(self.train_points, iteration, loss)

    def add_val(self, iteration: int, loss: float) -> None:
        self._add(self.val_points, iteration, loss)

    def _add(self, points: list[tuple[int, float]], iteration: int, loss: float) -> None:
        if points and points[-1][0] == iteration:
            points[-1] = (iteration, loss)
        else:
            points.append((iteration, loss))
        self.update()

    def placeholder_rect(self) -> QRectF:
        """Where the line shown before any loss goes: the whole plot less its title row (no axes yet)."""
        return QRectF(self.rect()).adjusted(14, 26, -14, -14)

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        text = self.palette().color(self.foregroundRole())
        muted = QColor(text)
        muted.setAlpha(120)
        faint = QColor(text)
        faint.setAlpha(40)
        metrics = p.fontMetrics()
        area = QRectF(self.rect()).adjusted(48, 26, -14, -26)
        p.setPen(QPen(muted))
        p.drawText(QRectF(area.left(), 4, area.width(), 18), Qt.AlignmentFlag.AlignLeft, "Loss")
        self._legend(p, area)
        losses = [v for _, v in self.train_points + self.val_points]
        if not losses:
            p.setPen(QPen(muted))
            p.drawText(self.placeholder_rect(), PLACEHOLDER_FLAGS, PLACEHOLDER)
            p.end()
            return
        lo, hi = min(losses), max(losses)
        if hi - lo < 1e-6:
            lo, hi = lo - 0.5, hi + 0.5
        pad = (hi - lo) * 0.08
        lo, hi = max(0.0, lo - pad), hi + pad
        last = max(i for i, _ in self.train_points + self.val_points)
        span = max(self.iters, last, 1)

        def at(iteration: float, loss: float) -> QPointF:
            return QPointF(
                area.left() + area.width() * iteration / span, area.bottom() - area.height() * (loss - lo) / (hi - lo)
            )

        for k in range(5):  # grid and y labels
            value = lo + (hi - lo) * k / 4
            y = at(0, value).y()
            p.setPen(QPen(faint))
            p.drawLine(QPointF(area.left(), y), QPointF(area.right(), y))
            p.setPen(QPen(muted))
            right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
            p.drawText(QRectF(0, y - 8, area.left() - 6, 16), right, f"{value:.2f}")
        p.drawText(
            QRectF(area.left(), area.bottom() + 4, area.width(), metrics.height()), Qt.AlignmentFlag.AlignLeft, "0"
        )
        p.drawText(
            QRectF(area.left(), area.bottom() + 4, area.width(), metrics.height()),
            Qt.AlignmentFlag.AlignRight,
            f"iteration {span}",
        )
        for points, color in ((self.train_points, TRAIN_COLOR), (self.val_points, VAL_COLOR)):
            if not points:
                continue
            path = QPainterPath(at(*points[0]))
            for point in points[1:]:
                path.lineTo(at(*point))
            p.setPen(QPen(color, 2))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawPath(path)
            p.setBrush(color)
            for point in points:
                p.drawEllipse(at(*point), 2.5, 2.5)
        p.end()

    def _legend(self, p: QPainter, area: QRectF) -> None:
        x = area.right()
        for label, color in (("validation", VAL_COLOR), ("train", TRAIN_COLOR)):
            width = p.fontMetrics().horizontalAdvance(label)
            x -= width
            p.setPen(QPen(self.palette().color(self.foregroundRole())))
            p.drawText(QRectF(x, 4, width + 2, 18), Qt.AlignmentFlag.AlignLeft, label)
            p.setPen(QPen(color, 3))
            p.drawLine(QPointF(x - 20, 13), QPointF(x - 6, 13))
            x -= 34
