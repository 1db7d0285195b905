"""``macapp run MODEL PROMPT`` (one streamed answer) and ``macapp chat MODEL`` (interactive, saved to history)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import fields

from rich.markup import escape

from macapp.cli.argtypes import add_context_options, add_threads_option
from macapp.cli.progress import BarState, follow
from macapp.core.engines.base import PRESETS, SamplingSettings
from macapp.core.progress import run_to_end


def _add_model_options(p: argparse.ArgumentParser, positional: bool = True) -> None:
    if positional:
        p.add_argument("model", metavar="MODEL", help="a .gguf path, a library id or an mlx-lm model folder")
    else:
        p.add_argument(
            "--model", "-m", required=True, metavar="MODEL", help="a .gguf path, a library id or an mlx-lm model folder"
        )
    p.add_argument(
        "--adapter", metavar="A", default=None, help="a tuned adapter (a name from `macapp adapters`, or its folder)"
    )
    p.add_argument("--system", default="", metavar="S", help="system prompt")
    p.add_argument("--preset", choices=sorted(PRESETS), default="balanced", help="sampling preset (default balanced)")
    help_of = {f.name: f.metadata.get("help", "") for f in fields(SamplingSettings)}
    p.add_argument("--temp", type=float, default=None, metavar="T", help=help_of["temperature"])
    p.add_argument("--top-p", type=float, default=None, metavar="P", help=help_of["top_p"])
    p.add_argument("--top-k", type=int, default=None, metavar="K", help=help_of["top_k"])
    p.add_argument("--min-p", type=float, default=None, metavar="P", help=help_of["min_p"])
    p.add_argument("--repeat-penalty", type=float, default=None, metavar="X", help=help_of["repeat_penalty"])
    p.add_argument("--seed", type=int, default=None, metavar="N", help=help_of["seed"])
    p.add_argument("--max-tokens", type=int, default=None, metavar="N", help=help_of["max_tokens"])
    p.add_argument("--stop", action="append", default=None, metavar="TEXT", help="end the answer at TEXT (repeatable)")
    add_context_options(p, None, "context window (default: your setting, 8192)", None)
    p.add_argument("--no-flash-attn", action="store_true", help="run without flash attention")
    add_threads_option(p)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="one answer from a model, streamed",
        description="Load MODEL, answer PROMPT with its chat template, print the answer as it streams.",
    )
    _add_model_options(p)
    p.add_argument("prompt", metavar="PROMPT", help="the message ('-' reads it from stdin)")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document: text, prompt_tokens, completion_tokens, finish_reason, timings",
    )
    p.add_argument("--stats", action="store_true", help="print token counts and speed on stderr")
    p.set_defaults(handler=run_cmd)

    p = sub.add_parser(
        "chat",
        help="talk to a model interactively (saved to the chat history)",
        description="An interactive chat. Commands: /regen, /new, /system TEXT, /exit. "
        "Conversations are saved and show up in the window.",
    )
    _add_model_options(p)
    p.add_argument("--no-history", action="store_true", help="don't save this conversation")
    p.set_defaults(handler=chat_cmd)


def sampling_from(args: argparse.Namespace) -> SamplingSettings:
    base = PRESETS[args.preset]
    changes = {
        "temperature": args.temp,
        "top_p": args.top_p,
        "top_k": args.top_k,
        "min_p": args.min_p,
        "repeat_penalty": args.repeat_penalty,
        "seed": args.seed,
        "max_tokens": args.max_tokens,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if args.stop:
        changes["stop"] = tuple(args.stop)
    return base.with_changes(**changes)


def load_engine(args: argparse.Namespace, quiet: bool = False):
    """Open and load the engine, with a progress bar on stderr when it is a terminal."""
    from macapp.core.engines import cpu_threads, open_engine
    from macapp.core.tuning.adapters import engine_adapter

    options = {"n_ctx": args.ctx, "kv_type": args.kv_type, "flash_attn": not args.no_flash_attn}
    threads = cpu_threads(args.threads)
    engine = open_engine(args.model, adapter=engine_adapter(args.adapter), n_threads=threads, **options)
    if quiet:
        run_to_end(engine.load())
        return engine

    def bar(step) -> BarState:
        return BarState(step.fraction or 0.0, 1.0, f"Loading {engine.label}", f"{(step.fraction or 0.0):.0%}")

    follow(engine.load(), f"Loading {engine.label}", line=lambda step: None, bar=bar, columns="detail")
    return engine


def _stderr_console():
    from macapp.cli.output import err_console

    return err_console()


def _stats_line(result) -> str:
    cached = result.prompt_tokens - result.prompt_eval_tokens
    return (
        f"{result.prompt_tokens} prompt tokens ({cached} cached), {result.completion_tokens} generated, "
        f"{result.tokens_per_s:.1f} tokens/s, finish: {result.finish_reason}"
    )


def run_cmd(args: argparse.Namespace) -> int:
    from macapp.core.engines.templates import with_system
    from macapp.core.errors import UserError
    from macapp.core.progress import CancelToken

    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    if not prompt.strip():
        raise UserError("the prompt is empty")
    sampling = sampling_from(args)
    engine = load_engine(args, quiet=args.json)
    cancel = CancelToken()
    stream = engine.stream_chat(with_system([{"role": "user", "content": prompt}], args.system), sampling, cancel)
    try:
        while True:
            try:
                chunk = next(stream)
            except StopIteration as done:
                result = done.value
                break
            if not args.json:
                sys.stdout.write(chunk.text)
                sys.stdout.flush()
    except KeyboardInterrupt:  # Ctrl-C stops the answer; what was written stays
        cancel.cancel()
        raise
    finally:
        engine.unload()
    if args.json:
        data = result.to_json() | {"model": args.model}
        if engine.template_notice:
            data["notice"] = engine.template_notice
        json.dump(data, sys.stdout, indent=2)
    if engine.template_notice and not args.json:
        print(f"\nnote: {engine.template_notice}", file=sys.stderr)
    sys.stdout.write("\n")
    if args.stats:
        print(_stats_line(result), file=sys.stderr)
    return 0


def chat_cmd(args: argparse.Namespace) -> int:
    from macapp.core.chat.session import ChatSession, ContextPlan
    from macapp.core.chat.store import ChatStore
    from macapp.core.engines.base import GenerationChunk
    from macapp.core.progress import CancelToken

    sampling = sampling_from(args)
    engine = load_engine(args)
    store = ChatStore(":memory:" if args.no_history else None)
    session = ChatSession(engine, store, system_prompt=args.system, sampling=sampling)
    err = _stderr_console()
    err.print(f"[dim]{escape(engine.label)} · context {engine.n_ctx:,} tokens · /regen /new /system TEXT /exit[/dim]")
    if engine.template_notice:
        err.print(f"[yellow]{escape(engine.template_notice)}[/yellow]")
    try:
        while True:
            try:
                line = input(">>> " if sys.stdin.isatty() else "")  # piped lines get answers only, no prompts
            except EOFError:
                break
            command = line.strip()
            if command in ("/exit", "/quit", "/bye"):
                break
            if command == "/new":
                session = ChatSession(engine, store, system_prompt=session.system_prompt, sampling=sampling)
                err.print("[dim]new conversation[/dim]")
                continue
            if command.startswith("/system"):
                session.system_prompt = command[len("/system") :].strip()
                store.update_conversation(session.conversation_id, system_prompt=session.system_prompt)
                err.print("[dim]system prompt set[/dim]")
                continue
            if not command:
                continue
            if re.fullmatch(r"/\w+", line.split(" ", 1)[0]) and command != "/regen":  # "/exti": not for the model
                err.print(
                    f"unknown command {escape(command.split()[0])}: the commands are /regen /new /system TEXT "
                    "/exit (start a message with a space to send it as it is)"
                )
                continue
            cancel = CancelToken()
            turn = session.regenerate(cancel) if command == "/regen" else session.send(line, cancel)
            try:
                while True:
                    try:
                        event = next(turn)
                    except StopIteration as done:
                        finished = done.value
                        break
                    match event:
                        case GenerationChunk():
                            sys.stdout.write(event.text)
                            sys.stdout.flush()
                        case ContextPlan(notice=str(notice)):
                            err.print(f"[yellow]{escape(notice)}[/yellow]")
                        case _:  # PassagesFound (documents attached), or a plan that left nothing out
                            pass
            except KeyboardInterrupt:  # Ctrl-C stops this answer, not the chat
                cancel.cancel()
                for _ in turn:
                    pass
                sys.stdout.write("\n")
                continue
            sys.stdout.write("\n")
            err.print(f"[dim]{_stats_line(finished.result)} · {finished.tokens_used:,}/{engine.n_ctx:,} tokens[/dim]")
    finally:
        engine.unload()
        store.close()
    return 0
