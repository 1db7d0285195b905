"""Orchard's icons from ``resources/icon.svg``: ``Orchard.icns`` for the macOS bundle, a PNG elsewhere.

The SVG is rendered with Qt's SVG renderer (offscreen) at every size macOS asks for, and the
``.icns`` container is written here (a ``b"icns"`` header, then one PNG per type code), so the
build needs no ``iconutil`` and runs the same on Linux, where the tests check the result.

Usage: ``python packaging/icons.py OUT_DIR`` writes ``OUT_DIR/Orchard.icns`` and ``OUT_DIR/Orchard.png``.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "resources" / "icon.svg"

# ICNS type code -> pixel size of its PNG (Apple's table; the @2x types are the Retina ones).
ICNS_TYPES = {
    "icp4": 16,
    "icp5": 32,
    "icp6": 64,
    "ic07": 128,
    "ic08": 256,
    "ic09": 512,
    "ic10": 1024,
    "ic11": 32,
    "ic12": 64,
    "ic13": 256,
    "ic14": 512,
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def render_png(svg: Path, size: int) -> bytes:
    """The SVG drawn into a ``size`` x ``size`` transparent PNG."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])  # noqa: F841 - Qt needs one
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise ValueError(f"{svg} is not an SVG Qt can draw")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return bytes(data.data())


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    if not png.startswith(PNG_SIGNATURE) or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return struct.unpack(">II", png[16:24])


def pack_icns(entries: dict[str, bytes]) -> bytes:
    """An ``.icns`` file from {type code: PNG bytes}."""
    body = b"".join(code.encode("ascii") + struct.pack(">I", len(png) + 8) + png for code, png in entries.items())
    return b"icns" + struct.pack(">I", len(body) + 8) + body


def unpack_icns(data: bytes) -> dict[str, bytes]:
    """{type code: payload} of an ``.icns`` file; raises ValueError when the container is damaged."""
    if data[:4] != b"icns" or struct.unpack(">I", data[4:8])[0] != len(data):
        raise ValueError("not an icns file, or its length is wrong")
    out, pos = {}, 8
    while pos < len(data):
        code, length = data[pos : pos + 4].decode("ascii"), struct.unpack(">I", data[pos + 4 : pos + 8])[0]
        if length < 8 or pos + length > len(data):
            raise ValueError(f"icns entry {code!r} runs past the end of the file")
        out[code] = data[pos + 8 : pos + length]
        pos += length
    return out


def build(out_dir: Path, svg: Path = SOURCE) -> tuple[Path, Path]:
    """Write ``Orchard.icns`` and a 512-px ``Orchard.png`` into ``out_dir``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rendered = {size: render_png(svg, size) for size in sorted(set(ICNS_TYPES.values()))}
    icns = out_dir / "Orchard.icns"
    icns.write_bytes(pack_icns({code: rendered[size] for code, size in ICNS_TYPES.items()}))
    png = out_dir / "Orchard.png"
    png.write_bytes(rendered[512])
    return icns, png


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "build" / "icons")
    for path in build(target):
        print(f"icons: wrote {path} ({path.stat().st_size:,} bytes)")
