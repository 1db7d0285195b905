"""``macapp docs add`` without a terminal: plain ``i/N pages`` progress lines, and Ctrl-C that returns at once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.fixtures import pdfs

LINE = re.compile(r"^(?:\[\d+/\d+\] )?(?P<file>\S+): (?P<page>\d+)/(?P<pages>\d+) pages (?P<what>.*)$")


def add(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "macapp.cli.main", "docs", "add", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )


def test_piped_output_gets_page_lines_ending_with_the_whole_file(tmp_path):
    book = pdfs.make_pdf(tmp_path / "book.pdf", pdfs.report_pages(3))
    other = pdfs.make_pdf(tmp_path / "other.pdf", pdfs.report_pages(2, seed=9))
    run = add("Books", str(book), str(other))
    out, err = run.communicate(timeout=180)
    assert run.returncode == 0, err
    lines = err.splitlines()
    assert lines[-1] == "[2/2] other.pdf: 2/2 pages embedded, added", lines
    assert "[1/2] book.pdf: 3/3 pages embedded, added" in lines, lines
    for line in lines:  # any line while a file was under way names it with its place in the batch
        m = re.match(r"^\[(\d)/2\] (\S+): (\d+)/(\d+) pages", line)
        assert m and (m[1], m[2], m[4]) in {("1", "book.pdf", "3"), ("2", "other.pdf", "2")}, line
    assert "added book.pdf (3 pages" in out  # the summary stays on stdout
    assert "\x1b[" not in err  # no terminal codes in a log


def test_a_long_ingest_prints_a_line_a_second_at_most_and_ctrl_c_exits_130_at_once(thousand_page_pdf):
    proc = add("Big", str(thousand_page_pdf))
    lines: list[tuple[float, str]] = []
    embedding = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append((time.monotonic(), line.rstrip("\n")))
            if " pages embedded" in line:
                embedding.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert embedding.wait(timeout=300), [text for _, text in lines]
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    proc.wait(timeout=30)
    exited = time.monotonic() - sent
    reader.join(timeout=10)
    proc.stdout.close()
    print(f"exit {proc.returncode} {exited:.2f} s after SIGINT; {len(lines)} lines")
    assert proc.returncode == 130, lines
    assert exited < 2.0, f"exited {exited:.2f} s after Ctrl-C"
    texts = [text for _, text in lines]
    assert texts[-1].startswith("cancelled: ") and "Traceback" not in "\n".join(texts)
    progress = [(at, m) for at, text in lines if (m := LINE.match(text))]
    assert progress, texts
    assert {m["file"] for _, m in progress} == {thousand_page_pdf.name}
    assert {m["pages"] for _, m in progress} == {"1000"}
    assert [at for at, _ in progress] == sorted(at for at, _ in progress)
    gaps = [b - a for (a, _), (b, _) in zip(progress, progress[1:])]
    assert all(gap >= 0.9 for gap in gaps), gaps  # one a second at most (a little slack for pipe buffering)
    assert progress[0][1]["what"].startswith("read")  # reading is reported ("read", or "read, splitting…" when
    # the whole file was read within the first second) before the embedding lines
    listing = subprocess.run(
        [sys.executable, "-m", "macapp.cli.main", "docs", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert json.loads(listing.stdout) == []  # the file in progress rolled back, and its new collection with it
    assert not (Path(os.environ["MACAPP_HOME"]) / "index" / "chunks.sqlite3-journal").exists()
