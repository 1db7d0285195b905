"""``macapp serve``: the library's models and the embedder behind an OpenAI-compatible API."""

from __future__ import annotations

import argparse
import os
import sys

from macapp.cli.argtypes import add_threads_option, context_length
from macapp.cli.output import print_json

API_KEY_ENV = "MACAPP_API_KEY"


def register(sub: argparse._SubParsersAction) -> None:
    from macapp.core.server import DEFAULT_HOST, DEFAULT_IDLE_UNLOAD_S, DEFAULT_PORT

    p = sub.add_parser(
        "serve",
        help="an OpenAI-compatible server for editors and scripts",
        description="Serve /v1/models, /v1/chat/completions, /v1/completions and /v1/embeddings. Models load on "
        "first use and unload when idle; requests to one model queue. Listening beyond this machine "
        f"needs an API key (--api-key or ${API_KEY_ENV}).",
    )
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument(
        "--api-key",
        metavar="K",
        default=os.environ.get(API_KEY_ENV) or None,
        help=f"require 'Authorization: Bearer K' (default ${API_KEY_ENV})",
    )
    p.add_argument(
        "--idle-unload",
        type=float,
        default=DEFAULT_IDLE_UNLOAD_S,
        metavar="SECONDS",
        help=f"unload a model after this long without requests ({DEFAULT_IDLE_UNLOAD_S:.0f}; 0 = never)",
    )
    p.add_argument(
        "--ctx",
        type=context_length,
        default=None,
        metavar="N",
        help="context window models load with (default: your setting, 8192, within each model's own)",
    )
    add_threads_option(p)
    p.add_argument("--json", action="store_true", help="print {url, host, port, api_key_required} once listening")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from macapp.core.errors import UserError
    from macapp.core.server.launch import ServerOptions, serve_forever

    if args.idle_unload < 0:
        raise UserError("--idle-unload must be 0 (never) or a number of seconds")
    if args.ctx is not None and args.ctx <= 0:
        raise UserError(f"the context length must be positive (got {args.ctx})")
    options = ServerOptions(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        idle_unload_s=args.idle_unload,
        n_ctx=args.ctx,
        n_threads=args.threads,
        access_log=args.verbose,
    )

    def ready(url: str) -> None:
        if args.json:
            print_json(
                {
                    "url": url,
                    "host": args.host,
                    "port": int(url.rsplit(":", 1)[1].split("/")[0]),
                    "api_key_required": bool(args.api_key),
                }
            )
        else:
            print(f"Orchard is serving an OpenAI-compatible API at {url}")
            print(
                "  models: GET /v1/models · point a client's base URL here"
                + (" with your API key" if args.api_key else "; any API key works")
                + " · Ctrl-C stops"
            )
        sys.stdout.flush()

    try:
        serve_forever(options, on_ready=ready)
    except KeyboardInterrupt:  # uvicorn shut down cleanly, then passed Ctrl-C on: stopping a server is no error
        pass
    print("Orchard's server stopped", file=sys.stderr)
    return 0
