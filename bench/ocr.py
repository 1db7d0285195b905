"""OCR throughput and accuracy, with the text-layer path as the baseline in the same run.

The same report-like pages (``tests.fixtures.pdfs.report_pages``) are written twice: as an ordinary PDF with a
text layer, and as a 'scan' (each page an image of the text at 150 dpi, no text layer). ``scan.read_document``
reads both with this platform's engine (Vision on a Mac, RapidOCR elsewhere), as ``macapp docs add`` does:

- ``text_pages_per_s``: the text-layer PDF (pypdfium2 alone: the baseline);
- ``ocr_pages_per_s``: the scan (render at 2000 px, OCR, lines to text), the engine loaded beforehand;
- ``ocr_to_text_ratio``: how much slower a scanned page is than a typed one;
- ``char_accuracy``: mean over pages of 1 − edit distance / length against the known text;
- ``peak_rss_mb``: the process's resident memory after the OCR run (the per-page bound keeps it flat).

Usage: ``python -m bench.ocr [--pages N]``; the last line reads ``text_pages_per_s=… ocr_pages_per_s=…
ocr_to_text_ratio=… char_accuracy=… engine=… pages=… peak_rss_mb=… target=0.95 ok=…``; exit 1 if the
accuracy is under the target.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

TARGET_ACCURACY = 0.95


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=6)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MACAPP_HOME"] = str(Path(tmp) / "home")
        import numpy as np
        import psutil

        from macapp.core.docs.ocr import default_engine, recognize
        from macapp.core.docs.scan import read_document
        from macapp.core.progress import drain
        from tests.fixtures.ocr import char_accuracy
        from tests.fixtures.pdfs import make_pdf, make_scanned_pdf, report_pages

        texts = [page.replace("# ", "") for page in report_pages(args.pages)]
        typed = make_pdf(Path(tmp) / "typed.pdf", texts)
        scanned = make_scanned_pdf(Path(tmp) / "scanned.pdf", texts)
        engine = default_engine()
        recognize(np.full((64, 64, 3), 255, np.uint8), engine)  # load the models outside the timing

        started = time.perf_counter()
        _, typed_pages = drain(read_document(typed, ocr=engine))
        text_s = time.perf_counter() - started
        started = time.perf_counter()
        _, scanned_pages = drain(read_document(scanned, ocr=engine))
        ocr_s = time.perf_counter() - started
        rss_mb = psutil.Process().memory_info().rss / 2**20

    assert all(p.source == "text" for p in typed_pages) and all(p.source == "ocr" for p in scanned_pages)
    accuracy = sum(char_accuracy(p.text, t) for p, t in zip(scanned_pages, texts)) / len(texts)
    text_rate, ocr_rate = len(texts) / text_s, len(texts) / ocr_s
    ok = accuracy >= TARGET_ACCURACY
    print(
        f"text-layer PDF: {len(texts)} pages in {text_s:.3f} s; scanned PDF: {ocr_s:.1f} s "
        f"({ocr_s / len(texts):.1f} s a page) with {engine.name}",
        file=sys.stderr,
    )
    print(
        f"text_pages_per_s={text_rate:.1f} ocr_pages_per_s={ocr_rate:.3f} "
        f"ocr_to_text_ratio={text_rate / ocr_rate:.0f} char_accuracy={accuracy:.4f} engine={engine.name} "
        f"pages={len(texts)} peak_rss_mb={rss_mb:.0f} "
        f"target={TARGET_ACCURACY} ok={ok}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
