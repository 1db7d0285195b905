"""Entry point of the ``macapp`` command. Exit codes: 0 ok, 1 user error, 2 usage, 130 cancelled."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from macapp.core.errors import Cancelled, UserError

Handler = Callable[[argparse.Namespace], int]


class _Version(argparse.Action):
    """``--version`` that reads package metadata only when asked (keeps it off the GUI start-up)."""

    def __call__(self, parser, namespace, values, option_string=None):
        import macapp

        print(f"Orchard {macapp.__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    from macapp.cli import (
        agent,
        ask,
        chat,
        docs,
        doctor,
        embed,
        export,
        hub,
        mcp,
        models,
        remotes,
        selftest,
        serve,
        tune,
    )

    parser = argparse.ArgumentParser(
        prog="macapp",
        description="Orchard: run open-weight LLMs locally on a Mac, chat with your PDFs, LoRA-tune.",
        epilog="MODEL is a path to a .gguf file or a library id (see `macapp models`).",
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    gui = sub.add_parser(
        "gui",
        help="open the window (the default)",
        description="Open Orchard's window: chat with local models, find and download them, index PDFs, "
        "LoRA-tune and serve them. `macapp` with no command does the same; options Qt understands "
        "(such as -platform) are passed on to it.",
    )
    gui.add_argument("qt_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)  # Qt's own options
    gui.set_defaults(handler=_gui, qt_args=[])
    doctor.register(sub)
    models.register(sub)
    hub.register(sub)
    hub.register_pull(sub)
    chat.register(sub)
    embed.register(sub)
    docs.register(sub)
    ask.register(sub)
    agent.register(sub)
    serve.register(sub)
    remotes.register(sub)
    mcp.register(sub)
    export.register(sub)
    tune.register(sub)
    selftest.register(sub)
    return parser


def _gui(args: argparse.Namespace) -> int:
    from macapp.ui.app import run_gui

    return run_gui(list(args.qt_args))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv or ["gui"])
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:  # the client's retry notices are not the one line a user should read
        logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
        # nor the MCP client's tracebacks for a server's stray output: its row or step already says what failed
        logging.getLogger("mcp").setLevel(logging.CRITICAL)
    handler: Handler = getattr(args, "handler", _gui)
    try:
        return handler(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (Cancelled, KeyboardInterrupt):
        resumable = args.command == "pull"  # the other commands keep nothing half-done to come back to
        print("cancelled" + (" (the download resumes when you run it again)" if resumable else ""), file=sys.stderr)
        return 130
    except BrokenPipeError:  # `macapp models | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
