"""``macapp docs …`` as a user runs it: JSON contracts, exit codes, one-line errors (real embedder and chromadb)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import pdfs

PROGRESS = re.compile(r"^(\[\d+/\d+\] )?\S+: (\d+/\d+ pages|failed|skipped)")
PAGES = [
    "# Lighthouses\nLighthouses warn ships away from rocks along dangerous coasts. A Fresnel lens focuses the lamp "
    "into a beam seen for many kilometres.",
    "# Sourdough\nA sourdough starter is a culture of wild yeast and lactobacilli. Bakers use it to leaven the dough "
    "instead of packaged yeast.",
    "# Volcanoes\nMagma rises through cracks in the crust and erupts as lava, ash and volcanic gas.",
]


def macapp(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "macapp.cli.main", "docs", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


def one_line_error(run: subprocess.CompletedProcess) -> None:
    """Besides progress lines (``docs add`` prints them when stderr is no terminal), stderr is one error line."""
    other = [line for line in run.stderr.splitlines() if not PROGRESS.match(line)]
    assert len(other) == 1 and other[0].startswith("error: ") and run.stderr.endswith("\n"), run.stderr
    assert "Traceback" not in run.stderr


@pytest.fixture
def book(tmp_path) -> Path:
    return pdfs.make_pdf(tmp_path / "book.pdf", PAGES)


def test_add_list_query_remove_json(book, tmp_path):
    run = macapp("add", "My Books", str(book), "--json")
    assert run.returncode == 0, run.stderr
    added = json.loads(run.stdout)
    assert added["collection"] == "My Books"
    [file] = added["files"]
    assert (file["file"], file["status"], file["pages"]) == ("book.pdf", "added", 3) and file["chunks"] >= 3

    again = json.loads(macapp("add", "my books", str(book), "--json").stdout)
    assert again["files"][0]["status"] == "skipped"

    listing = json.loads(macapp("list", "--json").stdout)
    assert [(c["name"], c["pages"], [f["file"] for f in c["files"]]) for c in listing] == [
        ("My Books", 3, ["book.pdf"])
    ]

    run = macapp("query", "My Books", "How do bakers make bread rise without buying leavening?", "-k", "2", "--json")
    assert run.returncode == 0, run.stderr
    passages = json.loads(run.stdout)
    assert len(passages) == 2
    for p in passages:
        assert {"file", "page", "text", "score"} <= set(p)
    assert (passages[0]["file"], passages[0]["page"]) == ("book.pdf", 2)
    assert "sourdough" in passages[0]["text"].lower()
    assert passages[0]["score"] >= passages[1]["score"]

    keyword = json.loads(macapp("query", "My Books", "Fresnel", "--mode", "keyword", "--json").stdout)
    assert [p["page"] for p in keyword] == [1]

    human = macapp("query", "My Books", "Fresnel lens")
    assert human.returncode == 0 and "book.pdf p. 1" in human.stdout

    run = macapp("remove", "My Books", "book.pdf", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["removed"]["file"] == "book.pdf"
    assert json.loads(macapp("query", "My Books", "Fresnel", "--json").stdout) == []
    assert json.loads(macapp("list", "--json").stdout)[0]["files"] == []


def test_a_bad_file_is_reported_and_exits_1(book, tmp_path):
    bad = tmp_path / "notes.pdf"
    bad.write_text("not a pdf at all")
    run = macapp("add", "Mixed", str(book), str(bad), "--json")
    assert run.returncode == 1
    files = json.loads(run.stdout)["files"]
    assert [(f["file"], f["status"], f["kind"]) for f in files] == [
        ("book.pdf", "added", None),
        ("notes.pdf", "failed", "corrupt"),
    ]
    one_line_error(run)
    human = macapp("add", "Mixed", str(book), str(bad))
    assert human.returncode == 1 and "skipped book.pdf" in human.stdout and "notes.pdf is not a PDF" in human.stdout


def test_errors_and_usage(book):
    for args in (
        ("query", "Nowhere", "anything"),
        ("remove", "Nowhere", "book.pdf"),
        ("add", "X", "/no/such.pdf"),
        ("add", "   ", str(book)),
        ("delete", "Nowhere"),
    ):
        run = macapp(*args)
        assert run.returncode == 1, (args, run.stderr)
        one_line_error(run)
        assert run.stdout == ""
    for args in ((), ("query", "C"), ("query", "C", "q", "-k", "0"), ("query", "C", "q", "--mode", "fuzzy")):
        assert macapp(*args).returncode == 2, args
    run = macapp("list", "--json")
    assert run.returncode == 0 and json.loads(run.stdout) == []


def test_ctrl_c_rolls_back_the_file_in_progress_and_exits_130(tmp_path):
    import signal
    import sqlite3
    import time

    big = pdfs.make_big_pdf(tmp_path / "big.pdf", 600)
    proc = subprocess.Popen(
        [sys.executable, "-m", "macapp.cli.main", "docs", "add", "Big", str(big)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    db = Path(os.environ["MACAPP_HOME"]) / "index" / "chunks.sqlite3"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:  # wait until it is embedding the file
        try:
            with sqlite3.connect(db) as conn:
                if conn.execute("SELECT count(*) FROM files WHERE status = 'pending'").fetchone()[0]:
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "cancelled" in err and "Traceback" not in err
    listing = json.loads(macapp("list", "--json").stdout)
    assert listing == []  # the add created "Big" and nothing landed in it: no empty collection is left
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == 0


def test_list_shows_a_chats_collection_by_what_it_holds_and_the_embedder_by_name(book):
    from macapp.core.chat.store import ChatStore

    with ChatStore() as store:
        conv = store.create_conversation(title="Reading list")
        store.update_conversation(conv.id, collection=f"chat-{conv.id}")
    assert macapp("add", f"chat-{conv.id}", str(book), "--json").returncode == 0
    [listed] = json.loads(macapp("list", "--json").stdout)
    assert (listed["name"], listed["shown_as"]) == (f"chat-{conv.id}", "1 PDF in chat “Reading list”")
    assert listed["embedder_name"] == "all-MiniLM-L6-v2" and listed["embedder"].startswith("all-MiniLM-L6-v2@")
    human = macapp("list")
    assert human.returncode == 0, human.stderr
    assert f"chat-{conv.id} (1 PDF in chat “Reading list”): 1 file, 3 pages" in human.stdout
    assert "(embedded with all-MiniLM-L6-v2)" in human.stdout and "@" not in human.stdout


def test_a_scan_and_an_image_are_added_with_their_pages_read_by_ocr(tmp_path):
    scan = pdfs.make_scanned_pdf(
        tmp_path / "letter.pdf",
        ["Dear grower, the cider press opens on Monday.", "The typed page of the letter keeps its own text layer."],
        text_pages={2},
    )
    photo = tmp_path / "label.png"
    pdfs.text_image("Quince jelly, batch 12", 300, 80).save(photo)
    added = macapp("add", "Post", str(scan), str(photo), "--json")
    assert added.returncode == 0, added.stderr
    files = {f["file"]: f for f in json.loads(added.stdout)["files"]}
    assert (files["letter.pdf"]["pages"], files["letter.pdf"]["ocr_pages"]) == (2, 1)
    assert (files["label.png"]["pages"], files["label.png"]["ocr_pages"]) == (1, 1)
    listed = macapp("list")
    assert "3 pages, 2 pages read by OCR" in listed.stdout, listed.stdout
    (collection,) = json.loads(macapp("list", "--json").stdout)
    assert collection["ocr_pages"] == 2 and {f["ocr_pages"] for f in collection["files"]} == {1}
    hits = json.loads(macapp("query", "Post", "cider press opens", "--mode", "keyword", "--json").stdout)
    assert (hits[0]["file"], hits[0]["page"]) == ("letter.pdf", 1)
