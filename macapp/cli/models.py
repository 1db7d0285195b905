"""``macapp inspect | estimate | models [add|remove]``: GGUF facts, memory estimates and the local library."""

from __future__ import annotations

import argparse
import os

from macapp.cli.argtypes import add_budget_option, add_context_options
from macapp.cli.output import console, key_values, print_json
from macapp.core.hardware import machine_noun
from macapp.core.units import format_bytes, format_params


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="facts of a GGUF model (header only, fast)",
        description="Architecture, parameters, vocabulary, context, layers, heads, "
        "quantization and more, read from the GGUF header.",
    )
    p.add_argument("model", metavar="MODEL", help="a .gguf path or a library id")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=inspect_cmd)

    p = sub.add_parser(
        "estimate",
        help=f"memory a model needs and whether it fits {machine_noun()}",
        description="Weights + KV cache + compute buffers + overhead at a context length, "
        "the verdict against the budget (fits, tight within 10%, too_big) and the "
        "largest context that fits.",
    )
    p.add_argument("model", metavar="MODEL", help="a .gguf path or a library id")
    add_context_options(p, None, "context length (default: min(8192, the model's))", "f16")
    p.add_argument("--gpu-layers", type=int, default=-1, help="layers on the GPU (-1 = all, the default)")
    p.add_argument("--no-flash-attn", action="store_true", help="estimate without flash attention")
    add_budget_option(p)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=estimate_cmd)

    p = sub.add_parser(
        "models",
        help="the local model library; add or remove a model file or folder",
        description="GGUF models in the Hugging Face cache, your folders, and LM Studio's. "
        "Without an action, lists them.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=models_cmd)
    actions = p.add_subparsers(dest="models_action", metavar="[ACTION]")
    a = actions.add_parser(
        "add",
        help="add a .gguf file, or a folder to watch for them",
        description="A .gguf file joins the library as it is; a folder is scanned with its "
        "subfolders now and at every start (as Add model… and Add folder… do).",
    )
    a.add_argument("path", metavar="PATH", help="a .gguf file or a folder")
    a.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON document")
    a.set_defaults(handler=models_add_cmd)
    r = actions.add_parser(
        "remove",
        help="forget a model file or folder (the files stay on disk)",
        description="Takes a file you added, or a folder Orchard watches, out of the library. "
        "Nothing is deleted from disk.",
    )
    r.add_argument("ref", metavar="ID|PATH", help="a library id (see `macapp models`), a file or a watched folder")
    r.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON document")
    r.set_defaults(handler=models_remove_cmd)


def _facts(ref: str):
    from macapp.core.models.library import model_facts, resolve_model

    return model_facts(resolve_model(ref))


def inspect_cmd(args: argparse.Namespace) -> int:
    facts = _facts(args.model)
    if args.json:
        print_json(facts.to_json())
        return 0
    q = facts.quant_from_filename
    kv = facts.n_head_kv
    head = (
        str(facts.head_dim)
        if facts.key_length == facts.value_length
        else f"key {facts.key_length}, value {facts.value_length}"
    )
    rows = [
        ("Architecture", facts.architecture),
        ("Parameters", f"{format_params(facts.parameters)} ({facts.parameters:,})"),
        ("Vocabulary", f"{facts.vocab_size:,} tokens ({facts.tokenizer_model or 'unknown'} tokenizer)"),
        ("Context length", f"{facts.context_length:,}"),
        ("Layers", str(facts.n_layer)),
        ("Heads", f"{facts.n_head} query, {kv} key/value" + (" (GQA)" if 0 < kv < facts.n_head else "")),
        ("Head dim", head),
        (
            "Quantization",
            facts.quantization + "  [" + ", ".join(f"{k}: {v['count']}" for k, v in facts.tensor_types.items()) + "]",
        ),
        ("From the file name", f"{q.name} ({q.describe()})" if q else "-"),
        ("File size", format_bytes(facts.file_size)),
        ("Chat template", "yes" if facts.has_chat_template else "no"),
        ("Kind", f"{facts.kind} ({facts.kind_reason})"),
    ]
    if facts.sliding_window:
        rows.append(("Sliding window", f"{facts.sliding_window} tokens on {sum(facts.swa_layers)} layers"))
    if facts.n_expert:
        rows.append(("Experts", f"{facts.n_expert_used} of {facts.n_expert} per token"))
    if facts.tied_embeddings:
        rows.append(("Output", "tied to the token embedding"))
    for warning in facts.warnings:
        rows.append(("Note", warning))
    key_values(facts.file_name, rows)
    return 0


def estimate_cmd(args: argparse.Namespace) -> int:
    from macapp.core import hardware
    from macapp.core.errors import UserError
    from macapp.core.models.estimate import RuntimeSettings, estimate_memory

    facts = _facts(args.model)
    ctx = args.ctx if args.ctx is not None else min(8192, facts.context_length)
    if ctx <= 0:
        raise UserError(f"--ctx must be positive (got {ctx})")
    if ctx > facts.context_length:
        raise UserError(f"--ctx {ctx} is longer than the model's context length {facts.context_length}")
    hw = None
    budget = args.budget
    if budget is None:
        hw = hardware.detect()
        budget = hw.budget_bytes
    settings = RuntimeSettings(
        n_ctx=ctx,
        kv_type=args.kv_type,
        flash_attn=not args.no_flash_attn,
        gpu_layers=args.gpu_layers,
        backend=hardware.default_backend(),
    )
    est = estimate_memory(facts, settings, budget)
    if args.json:
        print_json(est.to_json())
        return 0
    colour = {"fits": "green", "tight": "yellow", "too_big": "red"}[est.verdict or "fits"]
    rows = [
        (
            "Context",
            f"{est.n_ctx:,} tokens (KV cache {est.kv_type}, flash attention "
            f"{'on' if est.flash_attn else 'off'}, {est.backend})",
        ),
        ("Weights", format_bytes(est.weights_bytes)),
        ("KV cache", format_bytes(est.kv_cache_bytes)),
        ("Compute buffers", format_bytes(est.compute_bytes)),
        ("Runtime overhead", format_bytes(est.overhead_bytes)),
        ("Total", format_bytes(est.total_bytes)),
        ("Budget", format_bytes(est.budget_bytes) + (f" ({hw.budget_rule})" if hw else " (given)")),
        ("Verdict", f"[{colour}]{est.verdict}[/{colour}]"),
        ("Largest context that fits", f"{est.max_ctx_that_fits:,}" if est.max_ctx_that_fits else "none"),
    ]
    if est.gpu_bytes != est.total_bytes:
        rows.insert(6, ("On the GPU", format_bytes(est.gpu_bytes)))
    key_values(facts.file_name, rows)
    return 0


def _entry_json(e) -> dict:
    return {
        "id": e.id,
        "path": e.path,
        "source": e.source,
        "error": e.error,
        "facts": e.facts.to_json() if e.facts else None,
    }


def models_cmd(args: argparse.Namespace) -> int:
    from macapp.core.models.library import list_library

    entries = list_library()
    if args.json:
        print_json([_entry_json(e) for e in entries])
        return 0
    if not entries:
        console().print("No models yet. Download one (macapp pull) or add one (macapp models add PATH).")
        return 0
    _print_entries(entries)
    return 0


def _print_entries(entries) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("model", "params", "quant", "ctx", "size", "source"):
        table.add_column(col, justify="right" if col in ("params", "ctx", "size") else "left")
    for e in entries:
        f = e.facts
        if f is None:
            table.add_row(e.id, "", "", "", "", f"[red]{e.error}[/red]")
        else:
            table.add_row(
                e.id,
                format_params(f.parameters),
                f.quantization,
                f"{f.context_length:,}",
                format_bytes(f.file_size),
                e.source,
            )
    console().print(table)


def models_add_cmd(args: argparse.Namespace) -> int:
    from pathlib import Path

    from macapp.core.errors import UserError
    from macapp.core.models.library import add_model_file, list_library
    from macapp.core.models.library_sources import add_model_folder

    path = Path(args.path).expanduser()
    if not path.exists():
        raise UserError(f"{path} does not exist")
    if path.is_dir():
        kind, saved = "folder", add_model_folder(path)
        root = os.path.realpath(saved).rstrip(os.sep) + os.sep
        entries = [e for e in list_library() if os.path.realpath(e.path).startswith(root)]
    else:
        entry = add_model_file(path)  # refuses what is missing or not a .gguf
        kind, saved, entries = "file", entry.path, [entry]
    if args.json:
        print_json({"kind": kind, "path": saved, "models": [_entry_json(e) for e in entries]})
        return 0
    if kind == "folder":
        n = len(entries)
        console().print(
            f"Watching {saved}: {n} model{'s' if n != 1 else ''}"
            + (" (none yet; it is scanned again at every start)" if not n else ""),
            markup=False,
        )
    else:
        unusable = " (it cannot be used, see why below)" if entries[0].error else ""
        console().print(f"Added {entries[0].name}{unusable}", markup=False)
    if entries:
        _print_entries(entries)
    return 0


def models_remove_cmd(args: argparse.Namespace) -> int:
    from macapp.core.models.library_sources import forget

    gone = forget(args.ref)
    if args.json:
        print_json({"kind": gone.kind, "path": gone.path})
        return 0
    console().print(
        f"Removed the {gone.kind} {gone.path} from the library (nothing was deleted from disk).", markup=False
    )
    return 0
