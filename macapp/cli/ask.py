"""``macapp ask COLLECTION QUESTION --model M``: an answer grounded in your documents, citing pages."""

from __future__ import annotations

import argparse
import json
import sys

from rich.markup import escape

from macapp.cli.chat import _add_model_options, _stderr_console, load_engine, sampling_from

QUOTE_CHARS = 90  # of the cited sentences shown after each source


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ask",
        help="answer a question from a document collection, citing pages",
        description="Find the passages of COLLECTION that answer QUESTION (or all of it, when it "
        "fits the context), let MODEL answer from them only, and cite [file, p. N]. "
        "When nothing relevant is found, it says so instead of guessing.",
    )
    p.add_argument("collection", metavar="COLLECTION", help="a collection made with `macapp docs add`")
    p.add_argument("question", metavar="QUESTION", help="the question, in your own words")
    _add_model_options(p, positional=False)
    p.add_argument("-k", type=int, default=5, metavar="K", help="passages to retrieve (default 5)")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document: text, found, citations, passages, token counts, timings",
    )
    p.set_defaults(handler=ask_cmd)


def ask_cmd(args: argparse.Namespace) -> int:
    from macapp.core.docs.answer import ask
    from macapp.core.docs.index import DocumentIndex
    from macapp.core.engines.base import GenerationChunk
    from macapp.core.progress import CancelToken

    index = DocumentIndex()
    index.collection(args.collection)  # an unknown collection fails before the model loads
    engine = load_engine(args, quiet=args.json)
    cancel = CancelToken()
    stream = ask(
        args.collection,
        args.question,
        engine,
        k=args.k,
        system_prompt=args.system,
        sampling=sampling_from(args),
        cancel=cancel,
        index=index,
    )
    try:
        while True:
            try:
                event = next(stream)
            except StopIteration as done:
                answer = done.value
                break
            if isinstance(event, GenerationChunk) and not args.json:  # (first come the passages found)
                sys.stdout.write(event.text)
                sys.stdout.flush()
    except KeyboardInterrupt:
        cancel.cancel()
        raise
    finally:
        engine.unload()
        index.close()
    if args.json:
        json.dump(answer.to_json() | {"model": args.model, "collection": args.collection}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not answer.found:
        sys.stdout.write(answer.text)
    sys.stdout.write("\n")
    err = _stderr_console()
    for c in answer.citations:
        err.print(source_line(c))
    for note in answer.notes:
        err.print(f"[yellow]{escape(note)}[/yellow]")
    if answer.result is not None and answer.found and not answer.citations:
        err.print("[yellow]The answer cites no passage; check it against the documents.[/yellow]")
    return 0


def source_line(citation) -> str:
    """Rich markup for one source under an answer: number, ``[file, p. N]`` and the start of the cited sentences.
    Label and quote are data, escaped: unescaped, rich reads ``[name.pdf, p. 2]`` as a style tag and drops it."""
    quote = " ".join(citation.quote.split())
    if len(quote) > QUOTE_CHARS:
        quote = quote[: QUOTE_CHARS - 1] + "…"
    shown = f" — “{quote}”" if quote else ""
    return f"[dim]\\[{citation.number}] {escape(citation.label)}{escape(shown)}[/dim]"
