"""Image files as one-page documents (PNG, JPEG; HEIC where the platform reads it): checked, decoded within a
memory bound, and rendered for the viewer.

An image's page is measured in its own pixels: one pixel is one point, so OCR boxes stored with the page and
the viewer's ``scale`` mean the same as for a PDF. Failures are ``ImageError`` (a ``PdfError``, so a batch
treats them like any unreadable file) with ``kind``: unreadable | empty | corrupt | too_large | unsupported.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from macapp.core.docs.pdf import PdfError
from macapp.core.docs.render import MAX_RENDER_PIXELS, encode_png
from macapp.core.docs.types import IMAGE_SUFFIXES

HEIC_SUFFIXES = (".heic", ".heif")
MAX_IMAGE_PIXELS = 100_000_000  # decoding takes 3 bytes a pixel: 100 MP is 300 MB; bigger images are refused
SIPS_TIMEOUT_S = 60.0  # macOS's converter turns a HEIC photo into PNG in well under a second


class ImageError(PdfError):
    """An image Orchard can't read; ``kind`` as for a ``PdfError`` (plus ``unsupported``)."""


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _open(path: Path):
    """The opened (not yet decoded) PIL image; HEIC through macOS's ``sips`` or pillow-heif where present."""
    from PIL import Image, UnidentifiedImageError

    try:
        size = path.stat().st_size
    except OSError as e:
        raise ImageError("unreadable", f"{path.name} can't be opened: {e.strerror or e}") from e
    if size == 0:
        raise ImageError("empty", f"{path.name} is empty (0 bytes).")
    source: Path | io.BytesIO = path
    if path.suffix.lower() in HEIC_SUFFIXES:
        source = _heic_as_png(path)
    Image.MAX_IMAGE_PIXELS = None  # Pillow's bomb check, replaced by ours below (it can't say the image's size)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError(
            "corrupt",
            f"{path.name} is damaged or not an image.",
            "Only PNG, JPEG and (on a Mac) HEIC images can be added.",
        ) from e
    if image.width * image.height > MAX_IMAGE_PIXELS:
        raise _too_large(path, image.size)
    return image


def _too_large(path: Path, size: tuple[int, int]) -> ImageError:
    return ImageError(
        "too_large",
        f"{path.name} is {size[0]:,} × {size[1]:,} pixels: more than Orchard reads in "
        f"one image ({MAX_IMAGE_PIXELS // 1_000_000} megapixels).",
        "scale it down (e.g. to 6000 pixels on the long side, plenty for text) and add that",
    )


def _heic_as_png(path: Path) -> io.BytesIO:
    try:
        import pillow_heif  # optional: reads HEIC anywhere when installed

        pillow_heif.register_heif_opener()
        return io.BytesIO(path.read_bytes())
    except ImportError:
        pass
    if sys.platform != "darwin" or not shutil.which("sips"):
        raise ImageError(
            "unsupported",
            f"{path.name} is a HEIC image, which this system can't read.",
            "Convert it to PNG or JPEG and add that (a Mac reads HEIC itself).",
        )
    with tempfile.TemporaryDirectory(prefix="orchard-heic-") as tmp:
        out = Path(tmp) / "page.png"
        done = subprocess.run(
            ["sips", "-s", "format", "png", str(path), "--out", str(out)],
            capture_output=True,
            timeout=SIPS_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0 or not out.is_file():
            raise ImageError(
                "corrupt",
                f"{path.name} is damaged or not an image.",
                "macOS could not convert it: " + done.stderr.decode(errors="replace").strip()[:200],
            )
        return io.BytesIO(out.read_bytes())


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) in pixels, from the file's header (no decoding); ``ImageError`` as ``load_image``."""
    path = Path(path)
    with _open(path) as image:
        return image.size


def load_image(path: str | Path, max_pixels: int | None = None) -> tuple[np.ndarray, float]:
    """(RGB uint8 pixels, scale from the original): the image decoded, EXIF rotation applied, scaled down to
    ``max_pixels`` if given (a JPEG decodes at the reduced size straight away, so memory stays bounded)."""
    from PIL import Image, ImageOps

    path = Path(path)
    with _open(path) as image:
        width, height = image.size
        scale = min(1.0, math.sqrt(max_pixels / (width * height))) if max_pixels else 1.0
        try:
            if scale < 1.0 and image.format == "JPEG":
                image.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
            image = ImageOps.exif_transpose(image.convert("RGB") if image.mode != "RGB" else image)
            if scale < 1.0:
                image = image.resize(
                    (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.LANCZOS
                )
            pixels = np.asarray(image, dtype=np.uint8).copy()
        except (OSError, SyntaxError, ValueError) as e:  # truncated or bad data
            raise ImageError(
                "corrupt",
                f"{path.name} is damaged: its pixels can't be decoded.",
                "Re-save it from an image viewer and add that.",
            ) from e
    return pixels, max(pixels.shape[:2]) / max(width, height)  # EXIF rotation may swap width and height


def render_image(path: str | Path, scale: float = 1.5) -> bytes:
    """PNG bytes of the image at ``scale`` × its pixel size (within the viewer's 40-megapixel bound)."""
    path = Path(path)
    width, height = image_size(path)
    scale = min(scale, math.sqrt(MAX_RENDER_PIXELS / max(width * height, 1)))
    pixels, _ = load_image(path, max_pixels=max(1, int(width * height * min(scale, 1.0) ** 2)))
    if scale > 1.0:
        from PIL import Image

        big = Image.fromarray(pixels).resize((round(width * scale), round(height * scale)), Image.Resampling.BICUBIC)
        pixels = np.asarray(big)
    return encode_png(pixels)
