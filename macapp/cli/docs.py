"""``macapp docs add | list | remove | query | reindex | delete``: PDF collections and retrieval."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from macapp.cli.argtypes import non_negative_int, positive_int
from macapp.cli.output import console, print_json
from macapp.cli.progress import BarState, ctrl_c_cancels, follow
from macapp.core.errors import Cancelled, UserError
from macapp.core.units import format_duration, plural


def register(sub: argparse._SubParsersAction) -> None:
    docs = sub.add_parser(
        "docs",
        help="document collections (PDFs, images): add, list, remove, query",
        description="Index PDFs and images into named collections and retrieve passages from them.",
    )
    actions = docs.add_subparsers(dest="docs_command", metavar="ACTION", required=True)

    p = actions.add_parser(
        "add",
        help="add PDFs and images to a collection (created if new)",
        description="Extract, split into passages, embed and index PDFs and images (PNG, JPEG; HEIC on a Mac). "
        "Pages without a text layer (scans) and images are read by OCR, on the "
        "device. A file already in the collection is skipped; one that can't be "
        "read is reported and the rest are added (exit code 1 if any failed). "
        "Progress goes to stderr: a bar on a terminal, else a line like "
        "'report.pdf: 340/1000 pages embedded' (or 'read by OCR, about 40 s left') "
        "a second at most. "
        "Ctrl-C stops within a second and rolls back the file in progress (exit "
        "code 130).",
    )
    p.add_argument("collection", metavar="COLLECTION", help="the collection's name (created if new)")
    p.add_argument("files", metavar="FILE", nargs="+", type=Path, help="PDFs and images to add")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=add_cmd)

    p = actions.add_parser("list", help="collections with their files, pages (how many read by OCR) and passages")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=list_cmd)

    p = actions.add_parser("remove", help="remove a file and its passages from a collection")
    p.add_argument("collection", metavar="COLLECTION", help="the collection's name (see `macapp docs list`)")
    p.add_argument("file", metavar="FILE", help="the file's name, path or sha256 (12+ characters)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=remove_cmd)

    p = actions.add_parser(
        "query",
        help="the passages that best answer a question (retrieval only)",
        description="Passages best first, each on a different page when enough match, as "
        "{file, page, page_start, page_end, text, quote, score}: page (1-based) "
        "holds the sentences that matched (quote); a passage may run over "
        "page_start..page_end. Scores compare within one mode only.",
    )
    p.add_argument("collection", metavar="COLLECTION", help="the collection's name (see `macapp docs list`)")
    p.add_argument("question", metavar="QUESTION", help="what to look for, in your own words")
    p.add_argument("-k", type=positive_int, default=5, help="how many passages (default 5)")
    p.add_argument(
        "--mode",
        choices=["hybrid", "vector", "keyword"],
        default="hybrid",
        help="hybrid (default) fuses keyword and vector ranks",
    )
    p.add_argument(
        "--neighbours",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="passages of context on each side of a hit (default 0)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=query_cmd)

    p = actions.add_parser(
        "reindex",
        help="re-embed a collection with the current embedder",
        description="Needed after changing the embedding model; the PDFs are not re-read.",
    )
    p.add_argument("collection", metavar="COLLECTION", help="the collection's name (see `macapp docs list`)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=reindex_cmd)

    p = actions.add_parser("delete", help="delete a collection and everything indexed in it")
    p.add_argument("collection", metavar="COLLECTION", help="the collection's name (see `macapp docs list`)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=delete_cmd)


_DOING = {"extract": "read", "ocr": "read by OCR", "embed": "embedded"}


def _progress_line(step, label: str, finished: int = 0) -> str | None:
    """One plain line for a step: ``report.pdf: 340/1000 pages embedded`` (``[2/5]`` first when adding several;
    ``finished`` counts the files done, this step's included); None for a step with nothing to count yet."""
    if step.stage == "reindex":
        return f"{step.message or label}: {int(step.done)}/{int(step.total or 0)} passages"
    outcome, pages = getattr(step, "outcome", None), getattr(step, "pages", 0)
    if outcome is None and not pages:
        return None
    number = finished + (outcome is None)  # which file of the batch
    where = f"[{number}/{int(step.total)}] {step.file}" if step.total and step.total > 1 else step.file
    if outcome is not None:
        if outcome.status in ("added", "updated"):
            return f"{where}: {outcome.pages}/{outcome.pages} pages embedded, {outcome.status}"
        return f"{where}: {outcome.status}"
    if step.stage == "chunk":
        return f"{where}: {pages}/{pages} pages read, splitting into passages"
    eta = getattr(step, "eta_seconds", None)
    left = f", about {format_duration(eta)} left" if step.stage == "ocr" and eta is not None else ""
    return f"{where}: {step.page}/{pages} pages {_DOING.get(step.stage, step.stage)}{left}"


def ocr_note(pages: int) -> str:
    """``, 12 pages read by OCR`` (nothing when none was)."""
    return f", {plural(pages, 'page')} read by OCR" if pages else ""


def _run(gen, label: str):
    """Drain a progress generator and return its value: a live bar on stderr when it is a terminal, else plain
    progress lines there (one a second at most, plus the line that ends each file), so logs and pipes see it."""
    finished = 0  # files

    def line(step) -> str | None:
        nonlocal finished
        finished += getattr(step, "outcome", None) is not None
        return _progress_line(step, label, finished)

    return follow(
        gen,
        label,
        line=line,
        bar=lambda step: BarState(step.done, step.total, step.message or label),
        landmark=lambda step: getattr(step, "outcome", None) is not None,
    )


def _cancelled(what: str) -> int:
    print(f"cancelled: {what}", file=sys.stderr)
    return 130


def add_cmd(args: argparse.Namespace) -> int:
    from macapp.core.docs.embedder import load_embedder
    from macapp.core.docs.ingest import add_files
    from macapp.core.progress import CancelToken

    missing = [str(f) for f in args.files if not f.exists()]
    if len(missing) == len(args.files):
        raise UserError(
            f"No such file: {missing[0]}" if len(missing) == 1 else f"None of the {len(missing)} files exist."
        )
    embedder = load_embedder()
    token = CancelToken()
    try:
        with ctrl_c_cancels(token):
            outcomes = _run(add_files(args.collection, args.files, embedder, token), f"adding to {args.collection}")
    except (Cancelled, KeyboardInterrupt):
        return _cancelled("files finished before the cancel stay indexed; run it again to add the rest")
    failed = [o for o in outcomes if not o.ok]
    if args.json:
        print_json({"collection": args.collection, "files": [o.to_json() for o in outcomes]})
    else:
        from rich.markup import escape

        out = console()
        for o in outcomes:
            if o.status in ("added", "updated"):
                out.print(
                    f"[green]✓[/] {o.status} {escape(o.file)} ({plural(o.pages, 'page')}{ocr_note(o.ocr_pages)}, "
                    f"{o.chunks} passages)"
                )
            elif o.status == "skipped":
                out.print(f"[dim]·[/] skipped {escape(o.file)}: {escape(o.message)}")
            else:
                out.print(
                    f"[red]✗[/] {escape(o.file)}: {escape(o.message)}" + (f" ({escape(o.hint)})" if o.hint else "")
                )
    if failed:
        print(f"error: {len(failed)} of {len(outcomes)} files could not be added", file=sys.stderr)
        return 1
    return 0


def list_cmd(args: argparse.Namespace) -> int:
    from macapp.core.docs.ingest import list_collections
    from macapp.core.docs.names import collection_title, embedder_name

    collections = list_collections()
    titles = _chat_titles()
    shown = {c.name: collection_title(c.name, len(c.files), titles.get(c.name.casefold())) for c in collections}
    if args.json:
        print_json(
            [c.to_json() | {"shown_as": shown[c.name], "embedder_name": embedder_name(c.embedder)} for c in collections]
        )
        return 0
    out = console()
    if not collections:
        out.print("No collections yet: `macapp docs add COLLECTION FILE…` makes one.")
        return 0
    from rich.markup import escape
    from rich.table import Table

    for c in collections:
        also = f" ({escape(shown[c.name])})" if shown[c.name] != c.name else ""
        out.print(
            f"[bold]{escape(c.name)}[/]{also}: {plural(len(c.files), 'file')}, {plural(c.pages, 'page')}"
            f"{ocr_note(c.ocr_pages)}, {plural(c.chunks, 'passage')} "
            f"[dim](embedded with {escape(embedder_name(c.embedder))})[/]"
        )
        table = Table(box=None, pad_edge=False)
        for column in ("File", "Pages", "By OCR", "Passages", "sha256", "Added"):
            table.add_column(column, justify="right" if column in ("Pages", "By OCR", "Passages") else "left")
        for f in c.files:
            table.add_row(
                escape(f.file),
                str(f.pages),
                str(f.ocr_pages) if f.ocr_pages else "",
                str(f.chunks),
                f.file_hash[:12],
                f.added_at[:16].replace("T", " "),
            )
        out.print(table)
    return 0


def _chat_titles() -> dict[str, str]:
    """Chat titles by collection (casefolded); none when the chat history can't be read."""
    import sqlite3

    from macapp.core.chat.store import ChatStore

    try:
        with ChatStore() as store:
            return store.collection_titles()
    except (OSError, sqlite3.Error, UserError):
        return {}


def remove_cmd(args: argparse.Namespace) -> int:
    from macapp.core.docs.ingest import remove_file

    removed = remove_file(args.collection, args.file)
    if args.json:
        print_json(
            {
                "collection": args.collection,
                "removed": {
                    "file": removed.file,
                    "path": removed.path,
                    "file_hash": removed.file_hash,
                    "pages": removed.pages,
                    "chunks": removed.chunks,
                },
            }
        )
    else:
        console().print(f"removed {removed.file} ({removed.chunks} passages) from {args.collection}", markup=False)
    return 0


def query_cmd(args: argparse.Namespace) -> int:
    from macapp.core.docs.retrieve import query

    embedder = None
    if args.mode != "keyword":
        from macapp.core.docs.embedder import load_embedder

        embedder = load_embedder()
    passages = query(
        args.collection, args.question, k=args.k, mode=args.mode, neighbours=args.neighbours, embedder=embedder
    )
    if args.json:
        print_json(
            [
                {
                    "file": p.file,
                    "page": p.page,
                    "page_start": p.page_start,
                    "page_end": p.page_end,
                    "text": p.text,
                    "quote": p.quote,
                    "score": p.score,
                    "chunk_index": p.chunk_index,
                    "file_hash": p.file_hash,
                    "heading": p.heading,
                }
                for p in passages
            ]
        )
        return 0
    from rich.markup import escape

    out = console()
    if not passages:
        out.print("No passages match.")
    for rank, p in enumerate(passages, start=1):
        span = f" (passage pp. {p.page_start}-{p.page_end})" if p.page_start != p.page_end else ""
        out.print(f"[bold]{rank}. {escape(p.file)} p. {p.page}[/]{span}  [dim]score {p.score:.4f}[/]")
        out.print(p.text, markup=False)
        out.print()
    return 0


def reindex_cmd(args: argparse.Namespace) -> int:
    from macapp.core.docs.embedder import load_embedder
    from macapp.core.docs.ingest import reindex
    from macapp.core.progress import CancelToken

    embedder = load_embedder()
    token = CancelToken()
    try:
        with ctrl_c_cancels(token):
            chunks = _run(reindex(args.collection, embedder, token), f"re-indexing {args.collection}")
    except (Cancelled, KeyboardInterrupt):
        return _cancelled("the collection keeps its previous vectors")
    if args.json:
        print_json({"collection": args.collection, "embedder": embedder.name, "chunks": chunks})
    else:
        console().print(f"re-indexed {args.collection}: {chunks} passages with {embedder.name}", markup=False)
    return 0


def delete_cmd(args: argparse.Namespace) -> int:
    from macapp.core.docs.ingest import delete_collection

    delete_collection(args.collection)
    if args.json:
        print_json({"deleted": args.collection})
    else:
        console().print(f"deleted the collection {args.collection}", markup=False)
    return 0
