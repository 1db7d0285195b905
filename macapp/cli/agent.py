"""``macapp agent MODEL TASK``: the model works on TASK with the tools you grant, asking before it writes or runs."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

from macapp.cli.chat import _add_model_options, load_engine, sampling_from
from macapp.cli.output import print_json

RESULT_LINES = 6  # lines of a tool's result printed under its step (--json has all of it)
ANSWERS = {
    "y": "allow_once",
    "yes": "allow_once",
    "a": "always",
    "always": "always",
    "n": "deny",
    "no": "deny",
    "": "deny",
}


def register(sub: argparse._SubParsersAction) -> None:
    from macapp.core.agent.builtin import BUILTIN_NAMES
    from macapp.core.agent.loop import AgentLimits

    help_of = {f.name: f.metadata.get("help", "") for f in fields(AgentLimits)}
    p = sub.add_parser(
        "agent",
        help="let a model use tools (files, a shell, your documents) to do a task",
        description="MODEL works on TASK, calling the tools you grant until it answers or a limit "
        "stops it. Tools that write or execute ask on the terminal first: y (once), "
        "a (always, for this chat), n (deny; also what an empty line or end of input "
        "means). Each step is printed and saved in the chat history. Tool results are "
        "data: a file telling the model to do something gets no more power than you "
        "granted.",
        epilog=f"Built-in tools: {', '.join(BUILTIN_NAMES)}. Without --tool, every tool whose "
        "needs are met is granted (file tools with --allow-folder, search_documents with "
        "--collection, run_command with --allow-shell).",
    )
    _add_model_options(p)
    p.add_argument("task", metavar="TASK", help="what the model should do")
    p.add_argument("--tool", action="append", default=[], metavar="NAME", help="grant only this tool (repeatable)")
    p.add_argument(
        "--allow-folder",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder file tools may use (repeatable; the first is the working folder)",
    )
    p.add_argument("--allow-shell", action="store_true", help="grant run_command (off by default; it always asks)")
    p.add_argument(
        "--mcp",
        action="append",
        default=[],
        metavar="SERVER",
        help="grant the tools of this server in mcp.json (repeatable; --tool SERVER__TOOL picks one)",
    )
    p.add_argument("--collection", metavar="NAME", help="documents search_documents searches (`macapp docs`)")
    p.add_argument(
        "--max-steps",
        type=int,
        default=AgentLimits.max_steps,
        metavar="N",
        help=f"{help_of['max_steps']} (default {AgentLimits.max_steps})",
    )
    p.add_argument(
        "--tool-timeout",
        type=float,
        default=AgentLimits.tool_timeout_s,
        metavar="S",
        help=f"{help_of['tool_timeout_s']} (default {AgentLimits.tool_timeout_s:g} s)",
    )
    p.add_argument(
        "--time-budget",
        type=float,
        default=AgentLimits.time_budget_s,
        metavar="S",
        help=f"{help_of['time_budget_s']} (default {AgentLimits.time_budget_s:g} s)",
    )
    p.add_argument(
        "--require-tool",
        action="store_true",
        help="the first step must call a tool (small models otherwise answer without looking)",
    )
    p.add_argument(
        "--yes", action="store_true", help="run read-only tools without asking (tools that write or execute still ask)"
    )
    p.add_argument("--no-history", action="store_true", help="don't save this run in the chat history")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document: the answer, why it stopped, and every step (tool, arguments, "
        "approval, status, result, duration)",
    )
    p.set_defaults(handler=agent_cmd)


def agent_cmd(args: argparse.Namespace) -> int:
    from macapp.core.agent.builtin import builtin_toolbox
    from macapp.core.agent.guard import Grants
    from macapp.core.agent.loop import AgentLimits
    from macapp.core.errors import UserError

    if not args.task.strip():
        raise UserError("the task is empty")
    limits = AgentLimits(max_steps=args.max_steps, tool_timeout_s=args.tool_timeout, time_budget_s=args.time_budget)
    grants = Grants(
        tools=tuple(args.tool),
        folders=tuple(args.allow_folder),
        shell=args.allow_shell,
        preapprove_reads=args.yes,
        servers=tuple(args.mcp),
    )
    if args.collection:
        from macapp.core.docs.index import DocumentIndex

        with DocumentIndex() as index:
            index.collection(args.collection)  # an unknown collection fails before the model loads
    toolbox = builtin_toolbox(grants, collection=args.collection)
    servers = _add_mcp_tools(toolbox, args.mcp, [t for t in args.tool if "__" in t])
    if not len(toolbox):
        if servers is not None:
            servers.close()
        raise UserError("no tool is granted", hint="--tool NAME, --allow-folder DIR, --allow-shell or --mcp SERVER")
    try:
        return _run(args, toolbox, grants, limits)
    finally:
        if servers is not None:
            servers.close()


def _add_mcp_tools(toolbox, server_names: list[str], tool_names: list[str]):
    """Connect the granted MCP servers and add their tools (only ``tool_names`` when any are named)."""
    from macapp.core.errors import UserError

    if not server_names:
        if tool_names:
            raise UserError(
                f"{tool_names[0]} is an MCP tool", hint=f"grant its server: --mcp {tool_names[0].split('__')[0]}"
            )
        return None
    from macapp.core.agent.mcp import connect_configured
    from macapp.core.agent.mcp_config import load_mcp_config

    config = load_mcp_config()
    for name in server_names:  # a name the user typed that mcp.json doesn't hold (or holds broken) stops here
        config.server(name)
    servers = connect_configured(server_names)
    for problem in servers.problems:  # a server that failed to start: the others still serve
        print(f"warning: {problem}", file=sys.stderr)
    offered = {tool.spec.name: tool for tool in servers.tools}
    missing = [name for name in tool_names if name not in offered]
    if missing:
        servers.close()
        raise UserError(
            f"No MCP tool is named {', '.join(missing)}", hint=f"the servers offer: {', '.join(offered) or 'none'}"
        )
    for name, tool in offered.items():
        if not tool_names or name in tool_names:
            toolbox.add(tool)
    return servers


def _run(args: argparse.Namespace, toolbox, grants, limits) -> int:
    from macapp.core.agent.approvals import ApprovalRequest
    from macapp.core.agent.history import run_in_chat
    from macapp.core.agent.loop import AgentText, ToolStarted, ToolStep
    from macapp.core.chat.store import ChatStore, default_title
    from macapp.core.progress import CancelToken

    engine = load_engine(args, quiet=args.json)
    store = ChatStore(":memory:" if args.no_history else None)
    conversation = store.create_conversation(default_title(args.task), model=args.model, system_prompt=args.system)
    cancel = CancelToken()
    out = sys.stderr if args.json else sys.stdout
    stream = run_in_chat(
        store,
        conversation.id,
        args.task,
        engine,
        toolbox,
        grants=grants,
        limits=limits,
        sampling=sampling_from(args),
        cancel=cancel,
        first_call_required=args.require_tool,
    )
    if not args.json:
        print(f"tools: {', '.join(toolbox.names)}", file=sys.stderr)
    try:
        while True:
            try:
                event = next(stream)
            except StopIteration as done:
                result = done.value
                break
            if isinstance(event, AgentText):
                if not args.json:
                    out.write(event.text)
                    out.flush()
            elif isinstance(event, ApprovalRequest):
                event.answer(_ask(event))
            elif isinstance(event, ToolStarted):
                print(f"\n→ {event.call.name} {event.call.arguments_json}", file=out, flush=True)
            elif isinstance(event, ToolStep):
                _print_step(event, out)
    except KeyboardInterrupt:  # Ctrl-C: the loop stops, what was done is saved
        cancel.cancel()
        raise
    finally:
        engine.unload()
        store.close()
    if args.json:
        print_json(
            result.to_json()
            | {
                "model": args.model,
                "tools": list(toolbox.names),
                "conversation_id": None if args.no_history else conversation.id,
            }
        )
        return 0
    out.write("\n")
    if result.stop_reason != "answer":
        print(f"stopped: {_STOPS[result.stop_reason].format(limits=limits)}", file=sys.stderr)
    return 0


_STOPS = {
    "max_steps": "the step limit ({limits.max_steps}) was reached; the answer was asked for without tools",
    "time_budget": "the time budget ({limits.time_budget_s:g} s) ran out",
    "length": "the answer reached the token limit",
    "cancelled": "cancelled",
}


def _ask(request) -> str:
    """The user's decision, read from stdin (an empty line or the end of input denies)."""
    verb = {"write": "write", "execute": "run a command"}.get(request.effect, "read")
    arguments = json.dumps(request.call.arguments, ensure_ascii=False)
    while True:
        print(
            f"? {request.call.name} wants to {verb}: {arguments}\n  Allow? [y] once, [a] always in this chat, "
            "[N] deny: ",
            end="",
            file=sys.stderr,
            flush=True,
        )
        line = sys.stdin.readline()
        if not line:  # end of input
            print("(no answer: denied)", file=sys.stderr)
            return "deny"
        answer = ANSWERS.get(line.strip().lower())
        if answer is not None:
            return answer
        print("  please answer y, a or n", file=sys.stderr)


def _print_step(step, out) -> None:
    if step.status in ("refused", "invalid", "denied"):  # it never started: show the call too
        print(f"\n→ {step.call.name} {step.call.arguments_json}", file=out)
    approval = f" · {step.approval}" if step.approval and step.approval != "not needed" else ""
    print(f"  {step.status}{approval} · {step.duration_s:.2f} s", file=out)
    lines = step.result.splitlines() or [""]
    for line in lines[:RESULT_LINES]:
        print(f"  │ {line}", file=out)
    if len(lines) > RESULT_LINES:
        print(f"  │ … {len(lines) - RESULT_LINES} more lines", file=out)
    out.flush()
