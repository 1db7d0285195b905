"""``macapp tune`` (LoRA training with progress) and ``macapp adapters`` (the adapter registry)."""

from __future__ import annotations

import argparse
from pathlib import Path

from macapp.cli.argtypes import add_budget_option, positive_int
from macapp.cli.output import console, print_json
from macapp.cli.progress import ctrl_c_cancels, follow, note
from macapp.core.errors import Cancelled
from macapp.core.hardware import machine_noun
from macapp.core.units import format_bytes


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="LoRA-tune an MLX model on a JSONL dataset",
        description="Validate the data (every problem with its line; nothing is trained if any), "
        "estimate memory, then train with mlx-lm in a child process. Ctrl-C stops at "
        "once and keeps the last checkpoint; --resume continues it. Unset sizes are "
        f"chosen for {machine_noun()}'s memory. Chat and prompt/completion data train on the "
        "answers only unless --train-on-prompt.",
    )
    p.add_argument(
        "--base",
        required=True,
        type=Path,
        metavar="MODEL_DIR",
        help="mlx-lm model folder (a GGUF can't be tuned: the error names its MLX twin to pull)",
    )
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        metavar="FILE.jsonl",
        help="JSONL file (messages, prompt/completion or text lines) or a folder with train/valid.jsonl",
    )
    p.add_argument("--name", required=True, help="adapter name in the registry")
    p.add_argument("--iters", type=positive_int, default=1000, help="training iterations (default 1000)")
    p.add_argument("--rank", type=positive_int, default=None, help="LoRA rank")
    p.add_argument("--layers", type=int, default=None, help="blocks to adapt, from the last (-1 = all)")
    p.add_argument("--lr", type=float, default=1e-5, help="learning rate (default 1e-5)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="examples per iteration")
    p.add_argument("--max-seq-length", type=positive_int, default=None, help="tokens per example")
    learn = p.add_mutually_exclusive_group()
    learn.add_argument(
        "--train-on-prompt",
        dest="mask_prompt",
        action="store_const",
        const=False,
        default=None,
        help="learn from the prompts too, not only the answers (messages and prompt/completion data "
        "train on the answers only by default; text data always trains on everything)",
    )
    learn.add_argument(
        "--mask-prompt",
        dest="mask_prompt",
        action="store_const",
        const=True,
        help="answers only (already the default for messages and prompt/completion data; an error for text data)",
    )
    p.add_argument("--grad-checkpoint", action="store_true", default=None, help="less memory, slower")
    p.add_argument("--steps-per-report", type=positive_int, default=10, help="iterations between reports")
    p.add_argument("--steps-per-eval", type=positive_int, default=200, help="iterations between validations")
    p.add_argument("--save-every", type=positive_int, default=100, help="iterations between checkpoints")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--resume", action="store_true", help="continue the run with this name from its checkpoint")
    add_budget_option(p)
    p.add_argument("--no-memory-check", action="store_true", help="train even if the estimate exceeds the budget")
    p.add_argument("--json", action="store_true", help="print the result as one JSON document")
    p.set_defaults(handler=tune_cmd)

    p = sub.add_parser(
        "adapters",
        help="the trained LoRA adapters; delete one",
        description="Name, base model, dataset hash, settings, final losses and size of each adapter; "
        "unfinished runs show as incomplete (resume them with `macapp tune --resume`). "
        "Without an action, lists them.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=adapters_cmd)
    actions = p.add_subparsers(dest="adapters_action", metavar="[ACTION]")
    ls = actions.add_parser("list", help="the adapters (the default action)")
    ls.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON document")
    ls.set_defaults(handler=adapters_cmd)
    rm = actions.add_parser(
        "delete",
        help="delete an adapter (finished or not) and its files",
        description="Deletes the adapter's folder in Orchard's adapter registry. Files you "
        "exported from it (macapp export) stay where you put them.",
    )
    rm.add_argument("name", metavar="NAME", help="the adapter's name (see `macapp adapters`)")
    rm.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON document")
    rm.set_defaults(handler=adapters_delete_cmd)


def adapters_delete_cmd(args: argparse.Namespace) -> int:
    from macapp.core.tuning.adapters import delete_adapter, get_adapter

    info = get_adapter(args.name, include_incomplete=True)  # a clear error for a bad or unknown name
    delete_adapter(info.name)
    if args.json:
        print_json({"deleted": info.name, "path": str(info.path), "status": info.status, "size_bytes": info.size_bytes})
        return 0
    console().print(f"Deleted the adapter {info.name} ({format_bytes(info.size_bytes)}).", markup=False)
    return 0


def _options(args: argparse.Namespace):
    from macapp.core.tuning.estimate import default_settings
    from macapp.core.tuning.train import TrainOptions

    chosen = {
        "batch_size": args.batch_size,
        "max_seq_length": args.max_seq_length,
        "layers": args.layers,
        "rank": args.rank,
        "grad_checkpoint": args.grad_checkpoint,
    }
    if any(v is None for v in chosen.values()):
        chosen = {k: default if chosen[k] is None else chosen[k] for k, default in default_settings().items()}
    return TrainOptions(
        base=args.base,
        data=args.data,
        name=args.name,
        iters=args.iters,
        learning_rate=args.lr,
        mask_prompt=args.mask_prompt,
        steps_per_report=args.steps_per_report,
        steps_per_eval=args.steps_per_eval,
        save_every=args.save_every,
        seed=args.seed,
        resume=args.resume,
        check_memory=not args.no_memory_check,
        **chosen,
    )


def _progress_line(p) -> str | None:
    if p.stage == "starting":
        return p.message
    if p.stage == "validating":
        return f"iter {p.iteration:>5}/{p.iters}  val loss {p.val_loss:.3f}"
    if p.stage == "checkpoint":
        return f"iter {p.iteration:>5}/{p.iters}  checkpoint saved"
    parts = [f"iter {p.iteration:>5}/{p.iters}", f"train loss {p.train_loss:.3f}"]
    if p.tokens_per_second is not None:
        parts.append(f"{p.tokens_per_second:,.0f} tok/s")
    if p.peak_memory_bytes:
        parts.append(f"peak {format_bytes(p.peak_memory_bytes)}")
    if p.eta_seconds is not None:
        parts.append("ETA <1 s" if p.eta_seconds < 1 else f"ETA {p.eta_seconds:,.0f} s")
    return "  ".join(parts)


def tune_cmd(args: argparse.Namespace) -> int:
    from macapp.core.progress import CancelToken
    from macapp.core.tuning.train import can_resume, plan_training, train_lora

    options = _options(args)
    plan = plan_training(options, budget_bytes=args.budget)
    for report in plan.reports:
        stats = (
            f", tokens min {report.tokens.min} / mean {report.tokens.mean:g} / max {report.tokens.max} / "
            f"total {report.tokens.total:,}"
            if report.tokens
            else ""
        )
        note(f"{report.path.name}: {report.examples} examples ({report.format or 'unknown format'}){stats}")
    for remark in plan.notes:
        note(f"note: {remark}")
    if plan.options.mask_prompt and not plan.problems:
        note("learning from the answers only (--train-on-prompt learns the prompts too)")
    if plan.problems:
        for problem in plan.problems:
            note(f"error: {problem}")
        note(f"{len(plan.problems)} problem{'s' if len(plan.problems) != 1 else ''} in the data; nothing was trained")
        return 1
    est = plan.estimate
    note(
        f"memory: about {format_bytes(est.total_bytes)} at peak (weights {format_bytes(est.weights_bytes)}, "
        f"activations {format_bytes(est.activation_bytes)}) of a {format_bytes(est.budget_bytes)} budget: "
        f"{est.verdict}"
    )
    token = CancelToken()
    try:
        with ctrl_c_cancels(token, "stopping…"):
            # Every step prints a line, on a terminal too: the loss history stays on screen.
            result = follow(train_lora(options, token, plan=plan), options.name, line=_progress_line, every=0)
    except Cancelled:
        if can_resume(options.name):
            resume = f"macapp tune ... --name {options.name} --resume"
            note(f"cancelled: the last checkpoint is kept; continue with `{resume}`")
        else:
            note("cancelled before the first checkpoint; nothing was kept")
        return 130
    if args.json:
        print_json(result.to_json())
        return 0
    losses = f"train loss {result.train_loss:.3f}" if result.train_loss is not None else ""
    if result.val_loss is not None:
        losses += f", validation loss {result.val_loss:.3f}"
    print(
        f"adapter {result.adapter.name!r}: {result.iterations} iterations in {result.seconds:.1f} s, {losses}; "
        f"{format_bytes(result.adapter.size_bytes)} at {result.adapter.path}"
    )
    return 0


def learned_text(settings: dict) -> str:
    """What a run learned from, as recorded in its settings (runs before prompt masking existed say nothing)."""
    mask = settings.get("mask_prompt")
    return "" if mask is None else ("answers" if mask else "everything")


def adapters_cmd(args: argparse.Namespace) -> int:
    from macapp.core.tuning.adapters import list_adapters

    found = list_adapters(include_incomplete=True)
    if args.json:
        print_json([a.to_json() for a in found])
        return 0
    if not found:
        print("No adapters yet: train one with `macapp tune --base MODEL_DIR --data FILE.jsonl --name NAME`.")
        return 0
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in (
        "name",
        "base",
        "iterations",
        "learned",
        "train loss",
        "val loss",
        "size",
        "dataset",
        "created",
        "status",
    ):
        table.add_column(column)

    def loss(value):
        return "" if value is None else f"{value:.3f}"

    for a in found:
        table.add_row(
            a.name,
            Path(a.base_path).name,
            str(a.iterations),
            learned_text(a.settings),
            loss(a.train_loss),
            loss(a.val_loss),
            format_bytes(a.size_bytes),
            a.dataset_sha256[:12],
            a.created[:16].replace("T", " "),
            a.status,
        )
    console().print(table)
    return 0
