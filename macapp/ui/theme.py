"""Orchard's style sheet with the light or dark palette filled in (dark when the system is dark)."""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QPalette

LIGHT = {
    "window": "#f6f7f9",
    "side": "#eef0f3",
    "card": "#ffffff",
    "alt": "#f9fafb",
    "line": "#dfe3e8",
    "hover": "#e4e7ec",
    "text": "#1d2430",
    "muted": "#6b7480",
    "accent": "#2f7d4f",
    "accent_hover": "#276a43",
    "accent_soft": "#dcefe3",
    "accent_text": "#1f5e39",
    "error": "#b3261e",
    "notice": "#fff6e0",
    "notice_line": "#f0d9a0",
    "overlay": "rgba(246, 247, 249, 230)",
    "code": "#eef0f3",
    "disabled": "#7a828d",  # disabled text: paler than muted, still 3:1 on the cards and the question bubbles
    "scroll": "#c3c8cf",
}
DARK = {
    "window": "#1e2126",
    "side": "#191c20",
    "card": "#262a30",
    "alt": "#2b2f36",
    "line": "#3a3f47",
    "hover": "#32373e",
    "text": "#e6e8eb",
    "muted": "#9aa2ad",
    "accent": "#4caf74",
    "accent_hover": "#5cbf84",
    "accent_soft": "#23432f",
    "accent_text": "#9ad8b0",
    "error": "#ff8a80",
    "notice": "#3b3320",
    "notice_line": "#6b5a2c",
    "overlay": "rgba(30, 33, 38, 230)",
    "code": "#1b1e23",
    "disabled": "#868e99",
    "scroll": "#4a5059",
}


def is_dark(app: QGuiApplication) -> bool:
    scheme = app.styleHints().colorScheme()
    if scheme != Qt.ColorScheme.Unknown:
        return scheme == Qt.ColorScheme.Dark
    return app.palette().color(QPalette.ColorRole.Window).lightness() < 128


# Orchard's own icons (a tick, chevrons), one set drawn for both themes: the tick is white on the accent colour, as
# the primary buttons' text; the chevrons are a grey that reads on light and dark cards. style.qss names them
# url("@icons/NAME.svg"). Dialog buttons carry no icons at all, as on macOS (no stock red X or floppy disk).
ICONS = Path(__file__).with_name("icons")


def style_sheet(dark: bool) -> str:
    values = {**(DARK if dark else LIGHT), "icons": ICONS.as_posix()}
    text = (Path(__file__).with_name("style.qss")).read_text(encoding="utf-8")
    return re.sub(r"@(\w+)", lambda m: values.get(m.group(1), m.group(0)), text)


def apply_theme(app: QGuiApplication) -> None:
    """Style the app; restyle when the system switches between light and dark."""
    app.setStyleSheet(style_sheet(is_dark(app)))
    app.styleHints().colorSchemeChanged.connect(lambda _scheme: app.setStyleSheet(style_sheet(is_dark(app))))
