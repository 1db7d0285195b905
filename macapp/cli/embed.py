"""``macapp embed TEXT…``: sentence vectors from the bundled embedder (or the one given by --model)."""

from __future__ import annotations

import argparse

from macapp.cli.output import key_values, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "embed",
        help="sentence vectors from the embedding model",
        description="Embed each TEXT with the embedding model the document index uses "
        "(the bundled all-MiniLM-L6-v2 unless settings name another).",
    )
    p.add_argument("texts", nargs="+", metavar="TEXT", help="text to embed (one vector each)")
    p.add_argument("--model", metavar="PATH", help="a GGUF embedding model instead of the configured one")
    p.add_argument("--json", action="store_true", help="print the vectors as one JSON list of lists")
    p.set_defaults(handler=run)


def _preview(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from macapp.core.docs.embedder import load_embedder

    embedder = load_embedder(args.model)
    vectors = embedder.embed(args.texts)
    if args.json:
        print_json(vectors.tolist())
        return 0
    rows = [
        ("Model", embedder.name),
        ("Dimensions", str(embedder.dim)),
        ("Max tokens", f"{embedder.max_tokens} (longer text is truncated)"),
    ]
    for text, vector in zip(args.texts, vectors):
        tokens = embedder.count_tokens(text)
        head = ", ".join(f"{v:+.4f}" for v in vector[:4])
        rows.append((_preview(text) or '""', f"{tokens} tokens, norm {np.linalg.norm(vector):.4f}, [{head}, …]"))
    key_values("Embeddings", rows)
    return 0
