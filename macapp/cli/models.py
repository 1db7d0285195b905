"""``macapp inspect | estimate | models``: GGUF facts, memory estimates and the local library."""

from __future__ import annotations

import argparse

from macapp.cli.output import console, key_values, print_json
from macapp.core.units import format_bytes, format_params, parse_bytes


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="facts of a GGUF model (header only, fast)",
                       description="Architecture, parameters, vocabulary, context, layers, heads, "
                                   "quantization and more, read from the GGUF header.")
    p.add_argument("model", metavar="MODEL", help="a .gguf path or a library id")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=inspect_cmd)

    p = sub.add_parser("estimate", help="memory a model needs and whether it fits this Mac",
                       description="Weights + KV cache + compute buffers + overhead at a context length, "
                                   "the verdict against the budget (fits, tight within 10%%, too_big) and the "
                                   "largest context that fits.")
    p.add_argument("model", metavar="MODEL", help="a .gguf path or a library id")
    p.add_argument("--ctx", type=int, default=None, help="context length (default: min(8192, the model's))")
    p.add_argument("--kv-type", choices=["f16", "q8_0"], default="f16", help="KV cache element type")
    p.add_argument("--gpu-layers", type=int, default=-1, help="layers on the GPU (-1 = all, the default)")
    p.add_argument("--no-flash-attn", action="store_true", help="estimate without flash attention")
    p.add_argument("--budget", type=parse_bytes, default=None, metavar="BYTES",
                   help="memory budget (e.g. 16G); default: this machine's (see `macapp doctor`)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=estimate_cmd)

    p = sub.add_parser("models", help="the local model library",
                       description="GGUF models in the Hugging Face cache, your folders, and LM Studio's.")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=models_cmd)


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
    head = (str(facts.head_dim) if facts.key_length == facts.value_length
            else f"key {facts.key_length}, value {facts.value_length}")
    rows = [
        ("Architecture", facts.architecture),
        ("Parameters", f"{format_params(facts.parameters)} ({facts.parameters:,})"),
        ("Vocabulary", f"{facts.vocab_size:,} tokens ({facts.tokenizer_model or 'unknown'} tokenizer)"),
        ("Context length", f"{facts.context_length:,}"),
        ("Layers", str(facts.n_layer)),
        ("Heads", f"{facts.n_head} query, {kv} key/value" + (" (GQA)" if 0 < kv < facts.n_head else "")),
        ("Head dim", head),
        ("Quantization", facts.quantization + "  [" + ", ".join(
            f"{k}: {v['count']}" for k, v in facts.tensor_types.items()) + "]"),
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
    settings = RuntimeSettings(n_ctx=ctx, kv_type=args.kv_type, flash_attn=not args.no_flash_attn,
                               gpu_layers=args.gpu_layers, backend=hardware.default_backend())
    est = estimate_memory(facts, settings, budget)
    if args.json:
        print_json(est.to_json())
        return 0
    colour = {"fits": "green", "tight": "yellow", "too_big": "red"}[est.verdict or "fits"]
    rows = [
        ("Context", f"{est.n_ctx:,} tokens (KV cache {est.kv_type}, flash attention "
                    f"{'on' if est.flash_attn else 'off'}, {est.backend})"),
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


def models_cmd(args: argparse.Namespace) -> int:
    from macapp.core.models.library import list_library

    entries = list_library()
    if args.json:
        print_json([{"id": e.id, "path": e.path, "source": e.source, "error": e.error,
                     "facts": e.facts.to_json() if e.facts else None} for e in entries])
        return 0
    if not entries:
        console().print("No models yet. Download one (macapp pull) or add a folder in the window.")
        return 0
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("model", "params", "quant", "ctx", "size", "source"):
        table.add_column(col, justify="right" if col in ("params", "ctx", "size") else "left")
    for e in entries:
        f = e.facts
        if f is None:
            table.add_row(e.id, "", "", "", "", f"[red]{e.error}[/red]")
        else:
            table.add_row(e.id, format_params(f.parameters), f.quantization, f"{f.context_length:,}",
                          format_bytes(f.file_size), e.source)
    console().print(table)
    return 0
