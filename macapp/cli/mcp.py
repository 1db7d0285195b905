"""``macapp mcp list | add | remove``: the MCP servers in ``mcp.json`` whose tools the agent may use."""

from __future__ import annotations

import argparse

from macapp.cli.output import print_json, say


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mcp",
        help="MCP servers whose tools the agent can use (mcp.json)",
        description="The MCP servers in Orchard's mcp.json (the format Cursor and LM Studio use). "
        "Without an action, lists them with their tools.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=list_cmd, no_connect=False, timeout=None)
    actions = p.add_subparsers(dest="mcp_action", metavar="[ACTION]", parser_class=_IntermixedParser)

    ls = actions.add_parser(
        "list",
        help="each server, connected, with its tools and their effect (the default)",
        description="Starts (or reaches) every server in mcp.json, lists its tools and whether "
        "each only reads (pre-approvable) or writes/executes (asks first), then "
        "stops them.",
    )
    ls.add_argument("--no-connect", action="store_true", help="only read mcp.json; start nothing")
    ls.add_argument("--timeout", type=float, metavar="S", help="seconds a server may take to start (default 60)")
    _json_flag(ls)
    ls.set_defaults(handler=list_cmd)

    a = actions.add_parser(
        "add",
        help="save a server (nothing is started)",
        usage="macapp mcp add NAME [--env KEY=VALUE ...] -- COMMAND [ARGS ...]\n"
        "       macapp mcp add NAME --url URL [--header 'Name: value' ...]",
        description="Save a server that Orchard starts (COMMAND after --) or reaches over "
        "streamable HTTP (--url). Its tools are then NAME__TOOL.",
    )
    a.add_argument("name", metavar="NAME", help="a short name; its tools are called NAME__TOOL")
    a.add_argument("command", nargs="*", metavar="COMMAND", help="the program and its arguments, after --")
    a.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a variable for the server (it gets no other but PATH, HOME, LANG and the like)",
    )
    a.add_argument("--url", help="a streamable HTTP server's address instead of a command")
    a.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'", help="an HTTP header (--url)")
    _json_flag(a)
    a.set_defaults(handler=add_cmd)

    r = actions.add_parser("remove", help="forget a server")
    r.add_argument("name", metavar="NAME", help="the server's name (see `macapp mcp`)")
    _json_flag(r)
    r.set_defaults(handler=remove_cmd)


class _IntermixedParser(argparse.ArgumentParser):
    """Options may sit between NAME and ``--`` (argparse otherwise binds NAME and an empty COMMAND at once)."""

    _inner = False

    def parse_known_args(self, args=None, namespace=None):
        if self._inner:  # parse_known_intermixed_args calls back in here for its two passes
            return super().parse_known_args(args, namespace)
        self._inner = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inner = False


def _json_flag(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: `macapp mcp --json list` and `macapp mcp list --json` both count
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON document")


def _server_json(server) -> dict:
    # env and header values often hold keys: their names only
    return {
        "name": server.name,
        "transport": server.transport,
        "command": server.command,
        "args": list(server.args),
        "env": sorted(server.env),
        "url": server.url,
        "headers": sorted(server.headers),
    }


def _pairs(items: list[str], sep: str, what: str) -> dict[str, str]:
    from macapp.core.errors import UserError

    pairs = {}
    for item in items:
        key, found, value = item.partition(sep)
        if not found or not key.strip():
            raise UserError(f"{what} {item!r} must look like NAME{sep}VALUE")
        pairs[key.strip()] = value.strip() if sep == ":" else value
    return pairs


def add_cmd(args: argparse.Namespace) -> int:
    from macapp.core.agent.mcp_config import add_server, add_url_server
    from macapp.core.errors import UserError

    if args.url and args.command:
        raise UserError("give a command (after --) or --url, not both")
    if args.url:
        if args.env:
            raise UserError("--env is for servers Orchard starts; an HTTP server takes --header")
        server = add_url_server(args.name, args.url, _pairs(args.header, ":", "--header"))
    elif args.command:
        if args.header:
            raise UserError("--header is for --url servers")
        server = add_server(args.name, args.command[0], args.command[1:], _pairs(args.env, "=", "--env"))
    else:
        raise UserError("say how to reach the server: macapp mcp add NAME -- COMMAND ARGS... or --url URL")
    if args.json:
        print_json(_server_json(server))
        return 0
    say(f"Added {server.name} ({server.describe()}). See its tools: macapp mcp list")
    return 0


def remove_cmd(args: argparse.Namespace) -> int:
    from macapp.core.agent.mcp_config import parse_server, remove_server
    from macapp.core.errors import UserError

    entry = remove_server(args.name)
    try:
        server = parse_server(args.name, entry)
    except UserError:
        server = None
    described = server.describe() if server else "an entry that was not usable"
    if args.json:
        print_json({"name": args.name, "removed": True, "server": _server_json(server) if server else None})
        return 0
    say(f"Removed {args.name} ({described}).")
    return 0


def list_cmd(args: argparse.Namespace) -> int:
    from macapp.core.agent.mcp import CONNECT_TIMEOUT_S, connect_servers
    from macapp.core.agent.mcp_config import load_mcp_config
    from macapp.core.progress import CancelToken

    config = load_mcp_config()
    rows = {s.name: {**_server_json(s), "connected": False, "error": None, "tools": []} for s in config.servers}
    for problem in config.problems:
        rows[problem.server] = {"name": problem.server, "connected": False, "error": str(problem), "tools": []}
    if not args.no_connect and config.servers:
        if not args.json:
            say(f"Connecting to {len(config.servers)} server{'s' if len(config.servers) != 1 else ''}…")
        with connect_servers(config.servers, CancelToken(), args.timeout or CONNECT_TIMEOUT_S) as found:
            for problem in found.problems:
                rows[problem.server]["error"] = str(problem)
            for connection in found.connections:
                rows[connection.name]["connected"] = True
                rows[connection.name]["tools"] = [
                    {
                        "name": t.spec.name,
                        "remote_name": t.remote_name,
                        "effect": t.effect,
                        "description": t.spec.description,
                    }
                    for t in connection.tools
                ]
                rows[connection.name]["left_out"] = list(connection.problems)
    if args.json:
        print_json({"config": str(config.path), "servers": list(rows.values())})
        return 0
    if not rows:
        say(f"No MCP servers yet ({config.path}). Add one: macapp mcp add NAME -- COMMAND ARGS...")
        return 0
    for row in rows.values():
        where = " ".join([row["command"], *row["args"]]) if row.get("command") else row.get("url") or ""
        say(f"{row['name']}  {where}".rstrip())
        if row["error"]:
            say(f"  error: {row['error']}")
        elif row["connected"]:
            for tool in row["tools"]:
                summary = (tool["description"].strip().splitlines() or [""])[0][:100]
                say(f"  {tool['name']}  [{tool['effect']}]  {summary}".rstrip())
            if not row["tools"]:
                say("  (no tools)")
            for left_out in row.get("left_out", []):
                say(f"  left out: {left_out}")
    return 0
