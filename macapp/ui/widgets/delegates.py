"""Painting helpers for item delegates."""

from __future__ import annotations

from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem


def paint_item_background(delegate: QStyledItemDelegate, painter, option, index) -> None:
    """The cell's selection/hover background as the style draws it, without its text (delegates
    that paint their own content call this first)."""
    opt = QStyleOptionViewItem(option)
    delegate.initStyleOption(opt, index)
    opt.text = ""
    style = opt.widget.style() if opt.widget else None
    if style is not None:
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
