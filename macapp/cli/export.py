"""``macapp export ADAPTER --gguf-lora OUT | --fused-gguf OUT``: a trained adapter for llama.cpp."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from macapp.cli.output import key_values, print_json
from macapp.core.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export an adapter for llama.cpp (GGUF LoRA or fused GGUF)",
        description="--gguf-lora writes a small GGUF LoRA adapter that llama.cpp applies over the "
        "GGUF (any quantization) of the adapter's base model. --fused-gguf fuses the "
        "adapter into its base and writes one 16-bit GGUF model (llama/mistral with a "
        "SentencePiece-style vocabulary only).",
    )
    p.add_argument("adapter", metavar="ADAPTER", help="an adapter name (see `macapp adapters`) or an adapter folder")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--gguf-lora", metavar="OUT", type=Path, help="write a GGUF LoRA adapter to OUT")
    what.add_argument("--fused-gguf", metavar="OUT", type=Path, help="write the fused model as a GGUF to OUT")
    p.add_argument(
        "--base",
        metavar="DIR",
        type=Path,
        help="the MLX base model folder (default: the one the adapter was trained on)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=run)


def _recorded_base(adapter_dir: Path) -> Path | None:
    """The base recorded with an adapter folder: the registry's orchard.json, else mlx-lm's ``model``."""
    for name, key in (("orchard.json", "base_path"), ("adapter_config.json", "model")):
        try:
            value = json.loads((adapter_dir / name).read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, str) and value and Path(value).expanduser().is_dir():
            return Path(value).expanduser()
    return None


def resolve_adapter(ref: str) -> tuple[Path, Path | None]:
    """(adapter folder, its recorded base) for an adapter folder or a registry name."""
    from macapp.core.tuning.adapters import get_adapter

    folder = Path(ref).expanduser()
    if (folder / "adapter_config.json").is_file():
        return folder, _recorded_base(folder)
    if folder.is_dir():
        raise UserError(f"{folder} is not an adapter folder (no adapter_config.json)")
    info = get_adapter(ref)
    return info.path, _recorded_base(info.path)


def run(args: argparse.Namespace) -> int:
    from macapp.core.tuning.export import export_fused_gguf, export_gguf_lora

    adapter_dir, recorded = resolve_adapter(args.adapter)
    base = args.base or recorded
    if base is None:
        raise UserError(f"the base model of {adapter_dir.name} is not known", hint="pass --base DIR")
    if args.gguf_lora:
        result = export_gguf_lora(adapter_dir, base, args.gguf_lora)
    else:

        def show(step) -> None:
            if sys.stderr.isatty() and step.message:
                print(
                    f"\r{step.message}…" + (f" {step.fraction:.0%}" if step.fraction is not None else ""),
                    end="",
                    file=sys.stderr,
                    flush=True,
                )

        result = export_fused_gguf(adapter_dir, base, args.fused_gguf, on_progress=show)
        if sys.stderr.isatty():
            print(file=sys.stderr)
    if args.json:
        print_json(result.to_json())
        return 0
    from macapp.core.units import format_bytes

    rows = [
        ("File", str(result.path)),
        ("Size", format_bytes(result.size_bytes)),
        ("Architecture", result.architecture),
        ("Tensors", str(result.tensors)),
        ("Base", str(base)),
    ]
    if result.rank is not None:
        rows += [("Rank", str(result.rank)), ("Alpha", f"{result.alpha:g} (llama.cpp scale = alpha / rank)")]
    key_values("GGUF LoRA adapter" if result.kind == "gguf-lora" else "Fused GGUF model", rows)
    return 0
