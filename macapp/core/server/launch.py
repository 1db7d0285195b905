"""Starting the server: the loopback rule, the listening socket, uvicorn in the foreground or in a thread.

Anything but a loopback address without an API key is refused: a model server on the LAN without a
key lets anyone on the network use (and fill the memory of) this Mac. ``start_server`` runs it in a
background thread (tests, benchmarks, the window's switch); ``serve_forever`` runs it until Ctrl-C.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from dataclasses import dataclass

from macapp.core.errors import UserError
from macapp.core.server import DEFAULT_HOST, DEFAULT_IDLE_UNLOAD_S, DEFAULT_PORT


@dataclass(frozen=True)
class ServerOptions:
    """Where and how the server listens, and how models are run."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT  # 0 picks a free port
    api_key: str | None = None
    idle_unload_s: float = DEFAULT_IDLE_UNLOAD_S
    n_ctx: int | None = None
    n_threads: int | None = None  # llama.cpp's CPU threads (None: the user's setting, else automatic)
    access_log: bool = False


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond this machine without an API key."""
    if not api_key and not is_loopback(host):
        raise UserError(
            f"refusing to serve on {host} without an API key: anyone on the network could use it",
            hint="pass --api-key KEY (clients send 'Authorization: Bearer KEY'), or keep --host 127.0.0.1",
        )


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket for uvicorn (bound here so a busy port is a clear error and port 0 is known)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserError(f"cannot listen on {host!r}: {exc.strerror}") from exc
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = "another server is using it; pick another with --port" if port else None
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", hint=hint) from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/v1"


def _uvicorn_server(options: ServerOptions):
    import uvicorn

    from macapp.core.server.app import create_app
    from macapp.core.server.owners import ModelRegistry

    registry = ModelRegistry(n_ctx=options.n_ctx, idle_unload_s=options.idle_unload_s, n_threads=options.n_threads)
    app = create_app(registry, api_key=options.api_key)
    # log_config None: uvicorn's loggers go through the app's own logging instead of replacing its setup.
    config = uvicorn.Config(
        app, log_config=None, access_log=options.access_log, ws="none", lifespan="on", timeout_graceful_shutdown=3
    )
    return uvicorn.Server(config), registry


class RunningServer:
    """A server on a background thread. ``url`` ends in ``/v1``; ``stop()`` unloads its models."""

    def __init__(self, options: ServerOptions) -> None:
        check_exposure(options.host, options.api_key)
        self._sock = bind_socket(options.host, options.port)
        self.port = self._sock.getsockname()[1]
        self.url = base_url(options.host, self.port)
        self._server, self.registry = _uvicorn_server(options)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="openai server", daemon=True
        )
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise UserError(f"the server on {self.url} failed to start (see the log)")
            self._thread.join(0.01)

    def stop(self, timeout: float = 15.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server(options: ServerOptions | None = None) -> RunningServer:
    """Serve in a background thread; returns once it accepts connections."""
    return RunningServer(options or ServerOptions())


def serve_forever(options: ServerOptions, on_ready=None) -> None:
    """Serve in this thread until Ctrl-C (or SIGTERM); ``on_ready(url)`` is called once the socket listens
    (connections made from then on wait in its backlog until uvicorn accepts them)."""
    check_exposure(options.host, options.api_key)
    sock = bind_socket(options.host, options.port)
    server, _ = _uvicorn_server(options)
    if on_ready is not None:
        on_ready(base_url(options.host, sock.getsockname()[1]))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
