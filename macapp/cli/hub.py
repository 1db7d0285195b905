"""``macapp search | files``: GGUF models on the Hub, and whether each file fits this machine."""

from __future__ import annotations

import argparse

from rich.markup import escape

from macapp.cli.argtypes import add_budget_option, add_context_options
from macapp.cli.output import console, print_json
from macapp.cli.progress import BarState, ctrl_c_cancels, follow
from macapp.core.hardware import machine_noun
from macapp.core.units import format_bytes, format_params, time_left


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="find GGUF models on the Hub (no QUERY: curated picks for this machine)",
        description="Search the Hub (HF_ENDPOINT) for GGUF repositories, most downloaded first; "
        "when the Hub cannot be reached, the curated models matching QUERY instead "
        '(rows with "source": "catalog" in --json). Without QUERY: Orchard\'s '
        "curated models with the quant to get here, whether it fits at 8k context and "
        "its expected speed (offline), the recommendation first: the largest model "
        "that fits and answers at a readable pace (>= 10 tokens/s).",
    )
    p.add_argument(
        "query",
        metavar="QUERY",
        nargs="?",
        help="words to find in repository names, e.g. 'qwen 7b' (none: the curated picks)",
    )
    add_budget_option(p, "with no QUERY: ")
    p.add_argument("--limit", type=int, default=20, help="at most this many repositories (default 20)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=search_cmd)

    p = sub.add_parser(
        "files",
        help="a Hub repo's GGUF files with size, sha256 and whether they fit",
        description="List a repository's GGUF models by quantization (split files as one), read "
        "each header remotely (HTTP range requests, never the weights) and estimate "
        f"memory at the chosen context against {machine_noun()}'s budget.",
    )
    p.add_argument("repo", metavar="REPO", help="org/name on the Hub")
    p.add_argument("--revision", default="main", help="a branch, tag or commit of the repo (default main)")
    add_context_options(p, 8192, "context length for the estimate (default 8192)", "f16")
    add_budget_option(p)
    p.add_argument("--no-headers", action="store_true", help="list files only; do not read headers")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=files_cmd)


def search_cmd(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from macapp.core.models.hub import HubUnreachable, search_models

    if not args.query:
        return curated_cmd(args)

    try:
        models = search_models(args.query, limit=args.limit)
    except HubUnreachable as exc:
        return _offline_search(args, exc)
    if args.json:
        print_json([asdict(m) | {"source": "hub"} for m in models])
        return 0
    if not models:
        console().print(f"No GGUF repositories match {args.query!r}.")
        return 0
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("repository", "downloads", "likes", "updated"):
        table.add_column(col, justify="right" if col in ("downloads", "likes") else "left")
    for m in models:
        table.add_row(
            m.id + (" (gated)" if m.gated else ""), f"{m.downloads:,}", f"{m.likes:,}", (m.last_modified or "")[:10]
        )
    console().print(table)
    return 0


def files_cmd(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from macapp.core import hardware
    from macapp.core.errors import UserError
    from macapp.core.models.estimate import RuntimeSettings, estimate_memory
    from macapp.core.models.hub import RemoteFactsCache, list_gguf_files, remote_facts

    listing = list_gguf_files(args.repo, args.revision)
    budget = args.budget if args.budget is not None else hardware.detect().budget_bytes
    settings = RuntimeSettings(n_ctx=args.ctx, kv_type=args.kv_type, backend=hardware.default_backend())
    cache = RemoteFactsCache()
    rows = []
    for group in listing.groups:
        row = {
            "name": group.name,
            "quant": group.quant.name if group.quant else None,
            "quant_description": group.quant.describe() if group.quant else None,
            "size": group.size,
            "parts": [{"path": p.path, "size": p.size, "sha256": p.sha256} for p in group.parts],
            "estimate": None,
            "verdict": None,
            "error": group.error,
        }
        if not args.no_headers and group.error is None:
            try:
                facts = remote_facts(args.repo, group, listing.revision, cache)
                est = estimate_memory(facts, replace(settings, n_ctx=min(args.ctx, facts.context_length)), budget)
                row |= {
                    "parameters": facts.parameters,
                    "context_length": facts.context_length,
                    "estimate": est.to_json(),
                    "verdict": est.verdict,
                }
            except UserError as exc:
                row["error"] = exc.message
        rows.append(row)
    if args.json:
        print_json(
            {
                "repo": listing.repo_id,
                "revision": listing.revision,
                "budget_bytes": budget,
                "files": rows,
                "refused": listing.refused,
            }
        )
        return 0
    from rich.table import Table

    table = Table(box=None, pad_edge=False, title=f"{listing.repo_id} @ {listing.revision[:12]}", title_justify="left")
    for col in ("file", "quant", "size", "params", "needs", "verdict"):
        table.add_column(col, justify="right" if col in ("size", "params", "needs") else "left")
    colours = {"fits": "green", "tight": "yellow", "too_big": "red"}
    for r in rows:
        est = r["estimate"]
        verdict = f"[{colours[r['verdict']]}]{r['verdict']}[/]" if r["verdict"] else f"[red]{r['error'] or ''}[/]"
        table.add_row(
            r["name"],
            r["quant"] or "?",
            format_bytes(r["size"]),
            format_params(r.get("parameters")) if r.get("parameters") else "",
            format_bytes(est["total_bytes"]) if est else "",
            verdict,
        )
    console().print(table)
    for name in listing.refused:
        console().print(f"[red]refused[/] {name!r}: it would escape the download folder")
    return 0


def _curated(budget: int | None):
    """(this machine, its decode bandwidth, the budget, the catalog ordered for them)."""
    from macapp.core import hardware
    from macapp.core.hardware.bandwidth import decode_bandwidth
    from macapp.core.models.catalog import recommend

    hw = hardware.detect()
    budget = budget if budget is not None else hw.budget_bytes
    bandwidth = decode_bandwidth(hw)
    return hw, bandwidth, budget, recommend(budget, backend=hw.gpu, decode_bandwidth=bandwidth.bytes_per_s)


def _pick_json(r) -> dict:
    return {
        "id": r.entry.id,
        "name": r.entry.name,
        "repo": r.entry.repo,
        "file": r.file.file,
        "quant": r.file.quant,
        "parameters": r.entry.facts.parameters,
        "licence": r.entry.licence,
        "mlx_repo": r.entry.mlx_repo,
        "verdict": r.verdict,
        "tokens_per_s": round(r.tokens_per_s, 1) if r.tokens_per_s else None,
        "readable": r.readable,
        "estimate": r.estimate.to_json(),
    }


def _picks_table(picks, best, title: str):
    from rich.table import Table

    from macapp.core.models.speed import format_speed

    table = Table(box=None, pad_edge=False, title=title, title_justify="left")
    for col in ("model", "params", "quant", "needs", "verdict", "speed", "repo"):
        table.add_column(col, justify="right" if col in ("params", "needs", "speed") else "left")
    colours = {"fits": "green", "tight": "yellow", "too_big": "red"}
    for r in picks:
        name = r.entry.name + ("  [bold]← recommended[/bold]" if r is best else "")
        speed = format_speed(r.tokens_per_s) if r.tokens_per_s else ""
        table.add_row(
            name,
            format_params(r.entry.facts.parameters),
            r.file.quant,
            format_bytes(r.estimate.total_bytes),
            f"[{colours[r.verdict]}]{r.verdict}[/]",
            speed if r.readable else f"[yellow]{speed}[/]",
            r.entry.repo,
        )
    return table


def curated_cmd(args: argparse.Namespace) -> int:
    from macapp.core.models.catalog import best_pick
    from macapp.core.models.speed import format_speed

    hw, bandwidth, budget, picks = _curated(args.budget)
    best = best_pick(picks)
    if args.json:
        print_json(
            {
                "budget_bytes": budget,
                "decode_bandwidth": bandwidth.to_json(),
                "recommended": best.entry.id if best else None,
                "recommended_tokens_per_s": round(best.tokens_per_s, 1) if best and best.tokens_per_s else None,
                "models": [_pick_json(r) for r in picks],
            }
        )
        return 0
    console().print(_picks_table(picks, best, f"Curated models for a {format_bytes(budget)} budget at 8k context"))
    if best is not None and best.tokens_per_s:
        console().print(
            f"Recommended: {best.entry.name} {best.file.quant}, {format_speed(best.tokens_per_s)} "
            f"on {hw.place} ({bandwidth.basis})."
        )
    return 0


def _offline_search(args: argparse.Namespace, exc: Exception) -> int:
    """The Hub is unreachable: the curated models matching the query, with a note that says so."""
    import sys

    from macapp.core.models.catalog import best_pick, load_catalog, matching

    _, _, budget, picks = _curated(None)
    ids = {e.id for e in matching(load_catalog(), args.query)}
    best = best_pick(picks)
    shown = [r for r in picks if r.entry.id in ids][: args.limit]
    note = f"{exc}: showing the curated models matching {args.query!r} instead."
    if args.json:
        print(f"warning: {note}", file=sys.stderr)
        print_json(
            [
                {
                    "id": r.entry.repo,
                    "downloads": None,
                    "likes": None,
                    "last_modified": None,
                    "gated": False,
                    "source": "catalog",
                    "catalog": _pick_json(r),
                }
                for r in shown
            ]
        )
        return 0
    console().print(f"[yellow]{escape(note)}[/]")
    if not shown:
        console().print(escape(f"No curated model matches {args.query!r}."))
        return 0
    console().print(
        _picks_table(shown, best, f"Curated models matching {args.query!r} ({format_bytes(budget)} budget, 8k context)")
    )
    return 0


def register_pull(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pull",
        help="download a GGUF (resumable, sha256-verified) into the Hugging Face cache",
        description="Download FILE, or the model of quantization QUANT (all parts of a split "
        "model), from REPO. An interrupted download resumes where it stopped, even "
        "after a restart; the file is verified against the Hub's sha256 before it "
        "enters the library.",
    )
    p.add_argument("repo", metavar="REPO", help="org/name on the Hub")
    p.add_argument("what", metavar="FILE|QUANT", nargs="?", help="a file name in the repo, or a quant such as Q4_K_M")
    p.add_argument("--revision", default="main", help="a branch, tag or commit of the repo (default main)")
    p.add_argument(
        "--mlx",
        action="store_true",
        help="download REPO's MLX model (safetensors, config, tokenizer) for `macapp tune --base DIR`; "
        "a catalog GGUF repo means its MLX twin",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document at the end (no progress bar)")
    p.set_defaults(handler=pull_cmd)


def _files_to_pull(repo: str, what: str, revision: str) -> list[str]:
    from macapp.core.errors import UserError
    from macapp.core.models.hub import list_gguf_files

    if what.lower().endswith(".gguf"):
        return [what]
    listing = list_gguf_files(repo, revision)
    matches = [g for g in listing.groups if g.quant and g.quant.name == what.upper()]
    if not matches:
        quants = sorted({g.quant.name for g in listing.groups if g.quant})
        raise UserError(f"{repo} has no {what} file", hint="available: " + (", ".join(quants) or "none"))
    if len(matches) > 1:
        raise UserError(
            f"{repo} has {len(matches)} {what} models: name the file", hint=", ".join(g.name for g in matches)
        )
    return [p.path for p in matches[0].parts]


def pull_cmd(args: argparse.Namespace) -> int:
    from macapp.core.errors import Cancelled
    from macapp.core.models.download import download_file
    from macapp.core.progress import CancelToken

    token = CancelToken()
    if args.mlx:
        return _pull_mlx(args, token)
    if not args.what:
        from macapp.core.errors import UserError

        raise UserError("pull needs FILE or QUANT (or --mlx)", hint="e.g. macapp pull REPO Q4_K_M")
    done = []
    try:
        with ctrl_c_cancels(token):
            for name in _files_to_pull(args.repo, args.what, args.revision):
                gen = download_file(args.repo, name, args.revision, cancel=token)
                done.append(_follow_download(gen, name, lambda p, n=name: f"{n} ({p.stage})"))
    except (KeyboardInterrupt, Cancelled):
        token.cancel()
        raise Cancelled() from None
    if args.json:
        print_json({"repo": args.repo, "files": [str(p) for p in done]})
    else:
        for path in done:
            console().print(f"[green]✓[/] {path}")
    return 0


def _pull_mlx(args: argparse.Namespace, token) -> int:
    from macapp.core.errors import Cancelled
    from macapp.core.models.mlx_fetch import fetch_mlx_model, mlx_twin

    repo = mlx_twin(args.repo) or args.repo
    try:
        with ctrl_c_cancels(token):
            gen = fetch_mlx_model(repo, args.revision, cancel=token)
            folder = _follow_download(gen, repo, lambda p: p.message if p.stage != "done" else repo)
    except (KeyboardInterrupt, Cancelled):
        token.cancel()
        raise Cancelled() from None
    if args.json:
        print_json({"repo": repo, "folder": str(folder)})
    else:
        console().print(f"[green]✓[/] {folder}")
        console().print(f"tune with: macapp tune --base {folder}")
    return 0


def _follow_download(gen, name: str, describe):
    """Run a download to its end: a bar with bytes, speed and time left on a terminal, plain lines otherwise."""
    return follow(
        gen,
        name,
        line=lambda p: _download_line(name, p),
        bar=lambda p: BarState(p.done, p.total, describe(p)),
        landmark=lambda p: p.stage == "done",
        columns="transfer",
    )


def _download_line(name: str, p) -> str:
    """A download's progress as a plain line: ``model.gguf: 12.3 MB of 4.7 GB, 8.1 MB/s, 9 min left``."""
    if p.stage == "done":
        return f"{name}: done"
    amount = f"{format_bytes(p.done)} of {format_bytes(p.total)}" if p.total else format_bytes(p.done)
    speed = getattr(p, "speed", 0.0)
    parts = [amount] + ([f"{format_bytes(speed)}/s"] if speed else []) + [time_left(getattr(p, "eta", None))]
    return f"{name}: " + ", ".join(part for part in parts if part)
