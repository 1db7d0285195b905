"""Light and dark: the style sheet follows the system's appearance, at start and when it changes."""

from __future__ import annotations

import re

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from macapp.ui import theme


def test_both_style_sheets_fill_every_colour():
    light, dark = theme.style_sheet(False), theme.style_sheet(True)
    assert light != dark
    for sheet in (light, dark):
        assert not re.findall(r"@\w+", sheet)  # every @colour of style.qss has a value in both palettes
    assert theme.DARK["window"] in dark and theme.LIGHT["window"] in light
    assert set(theme.DARK) == set(theme.LIGHT)


def _palette(window: str, text: str) -> QPalette:
    palette = QPalette()
    palette.setColor(QPalette.ColorRole.Window, QColor(window))
    palette.setColor(QPalette.ColorRole.WindowText, QColor(text))
    return palette


def test_the_app_restyles_when_the_system_switches_appearance(qapp: QApplication):
    before_palette, before_sheet = qapp.palette(), qapp.styleSheet()
    try:
        # Platforms that don't report a colour scheme (offscreen, some Linux desktops) are judged
        # by the palette's window colour; macOS reports Dark/Light directly.
        qapp.setPalette(_palette("#1e1e1e", "#eeeeee"))
        theme.apply_theme(qapp)
        assert theme.is_dark(qapp) and qapp.styleSheet() == theme.style_sheet(True)
        qapp.setPalette(_palette("#f4f4f4", "#111111"))
        qapp.styleHints().colorSchemeChanged.emit(qapp.styleHints().colorScheme())  # what the system sends
        assert not theme.is_dark(qapp) and qapp.styleSheet() == theme.style_sheet(False)
    finally:
        qapp.setPalette(before_palette)
        qapp.setStyleSheet(before_sheet)
