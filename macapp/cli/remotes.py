"""``macapp remotes add | list | remove | test``: the OpenAI-compatible servers Orchard can chat with."""

from __future__ import annotations

import argparse

from macapp.cli.output import console, print_json, say


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "remotes",
        help="remote OpenAI-compatible servers (vLLM, Ollama, LM Studio, Orchard)",
        description="Servers whose models you can chat with as remote:NAME/MODEL, the same list "
        "as the window's Remote servers… dialog. Without an action, lists them.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=list_cmd)
    actions = p.add_subparsers(dest="remotes_action", metavar="[ACTION]")

    a = actions.add_parser(
        "add",
        help="save a server (nothing is contacted; see `remotes test`)",
        description="Save a server under NAME. Its models are then remote:NAME/MODEL.",
    )
    a.add_argument("name", metavar="NAME", help="a short name without '/' (e.g. gpu-box)")
    a.add_argument("url", metavar="URL", help="its API root, e.g. http://192.168.1.20:8000/v1 (host:port gets /v1)")
    key = a.add_mutually_exclusive_group()
    key.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="read the API key from this environment variable each time (the key is not saved)",
    )
    key.add_argument("--api-key", metavar="KEY", help="save this API key in the system keychain")
    _json_flag(a)
    a.set_defaults(handler=add_cmd)

    ls = actions.add_parser("list", help="the saved servers (the default action)")
    _json_flag(ls)
    ls.set_defaults(handler=list_cmd)

    r = actions.add_parser("remove", help="forget a server")
    r.add_argument("name", metavar="NAME", help="the server's name (see `macapp remotes`)")
    _json_flag(r)
    r.set_defaults(handler=remove_cmd)

    t = actions.add_parser(
        "test",
        help="connect to a server and list its models",
        description="Asks the server for its models (GET /models) with the saved key.",
    )
    t.add_argument("name", metavar="NAME", help="the server's name (see `macapp remotes`)")
    _json_flag(t)
    t.set_defaults(handler=test_cmd)


def _json_flag(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: `macapp remotes --json list` and `macapp remotes list --json` both count
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON document")


def _endpoint_json(endpoint) -> dict:
    from macapp.core.engines.remote import api_base
    from macapp.core.errors import UserError

    try:
        base = api_base(endpoint.url)
    except UserError:
        base = None  # a URL edited by hand into something unusable: listed as saved
    return {
        "name": endpoint.name,
        "url": endpoint.url,
        "api_base": base,
        "api_key_from": _key_source(endpoint),
        "api_key_env": endpoint.api_key_env,
        "api_key_set": endpoint.has_key,
    }


def _key_source(endpoint) -> str | None:
    if endpoint.api_key_env:
        return "env"
    if endpoint.api_key_ref:
        return "keychain"
    return "settings" if endpoint.api_key else None  # plain text: only where no keychain exists


def _key_text(endpoint) -> str:
    source = _key_source(endpoint)
    if source == "env":
        return f"from ${endpoint.api_key_env}" + ("" if endpoint.api_key else " (not set)")
    return {"keychain": "in the keychain", "settings": "in settings (no keychain)"}.get(source, "-")


def add_cmd(args: argparse.Namespace) -> int:
    from macapp.core.engines.remote_endpoints import add_endpoint

    endpoint = add_endpoint(args.name, args.url, api_key=args.api_key, api_key_env=args.api_key_env)
    if args.json:
        print_json(_endpoint_json(endpoint))
        return 0
    say(f"Added {endpoint.name} ({endpoint.url}). Try it: macapp remotes test {endpoint.name}")
    return 0


def list_cmd(args: argparse.Namespace) -> int:
    from macapp.core.engines.remote import configured_endpoints

    endpoints = configured_endpoints()
    if args.json:
        print_json([_endpoint_json(e) for e in endpoints])
        return 0
    if not endpoints:
        console().print("No remote servers yet. Add one: macapp remotes add NAME URL")
        return 0
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("name", "url", "api key"):
        table.add_column(column)
    for e in endpoints:
        table.add_row(escape(e.name), escape(e.url), escape(_key_text(e)))
    console().print(table)
    return 0


def remove_cmd(args: argparse.Namespace) -> int:
    from macapp.core.engines.remote_endpoints import remove_endpoint

    endpoint = remove_endpoint(args.name)
    if args.json:
        print_json(_endpoint_json(endpoint))
        return 0
    say(f"Removed {endpoint.name} ({endpoint.url}).")
    return 0


def test_cmd(args: argparse.Namespace) -> int:
    from macapp.core.engines.remote import api_base, remote_ref
    from macapp.core.engines.remote_endpoints import endpoint_models, get_endpoint

    endpoint = get_endpoint(args.name)
    models = endpoint_models(endpoint)
    if args.json:
        print_json(
            {
                **_endpoint_json(endpoint),
                "models": [
                    {
                        "id": m.id,
                        "ref": remote_ref(endpoint.name, m.id),
                        "context_length": m.context_length,
                        "owned_by": m.owned_by,
                    }
                    for m in models
                ],
            }
        )
        return 0
    n = len(models)
    say(f"{endpoint.name} answers at {api_base(endpoint.url)}: {n} model{'s' if n != 1 else ''}")
    for m in models:
        ctx = f"  ({m.context_length:,} tokens)" if m.context_length else ""
        say(f"  {remote_ref(endpoint.name, m.id)}{ctx}")
    return 0
