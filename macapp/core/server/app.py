"""The OpenAI-compatible HTTP API (Starlette): ``/v1/models``, ``/v1/chat/completions``, ``/v1/completions``,
``/v1/embeddings``, and vLLM's ``/tokenize`` (exact token counts for Orchard's own remote engine).

Chat takes ``tools`` and ``response_format``: calls come back as ``tool_calls`` (streamed as deltas after
the answer's text) with ``finish_reason: "tool_calls"``; both are schema-valid by construction on llama.cpp.

Nothing here runs a model on the event loop: generation happens on each model's owner thread
(``owners.ModelOwner``), library scans and embeddings on worker threads. A request is checked (model
loaded, prompt plus ``max_tokens`` within the context) before its response starts, so refusals are plain
HTTP errors even for streams. A client that goes away, while queued, while its answer streams or while it
waits for a whole answer, cancels its generation, and the model moves on to the next request.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from macapp.core.errors import UserError
from macapp.core.server import protocol
from macapp.core.server.errors import APIError, bad_request, internal_error, model_not_found, unauthorized
from macapp.core.server.jobs import Job, Started, chat_work, completion_work, count_work
from macapp.core.server.owners import ModelRegistry

log = logging.getLogger(__name__)
Endpoint = Callable[[Request], Awaitable[Response]]
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ClientGone(Exception):
    """The client closed its connection before the answer was ready."""


def error_response(error: APIError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse(error.to_json(), status_code=error.status, headers=headers)


def _dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _sse(doc: dict[str, Any]) -> str:
    return f"data: {_dumps(doc)}\n\n"


class BearerAuth:
    """ASGI middleware: with an API key set, every request must carry ``Authorization: Bearer <key>``."""

    def __init__(self, app, api_key: str | None) -> None:
        self.app = app
        self.key = api_key.encode() if api_key else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and self.key is not None:
            header = dict(scope["headers"]).get(b"authorization", b"")
            scheme, _, token = header.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
                await error_response(unauthorized())(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _Watch:
    """Notices the client hanging up while the handler waits (before a streaming response takes over)."""

    def __init__(self, request: Request) -> None:
        self._task = asyncio.ensure_future(self._watch(request.receive))

    @staticmethod
    async def _watch(receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async def race(self, awaitable: Awaitable[Any]) -> Any:
        task = asyncio.ensure_future(awaitable)
        done, _ = await asyncio.wait({task, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        raise ClientGone()

    def stop(self) -> None:
        self._task.cancel()


def _endpoint(handler: Endpoint) -> Endpoint:
    """Errors as OpenAI error documents; bugs logged and answered with a 500."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except APIError as exc:
            return error_response(exc)
        except UserError as exc:
            return error_response(bad_request(str(exc)))
        except ClientGone:
            return Response(status_code=499)  # nobody reads it
        except Exception:  # a bug: logged with its context, the client gets a 500 and the server goes on
            log.exception("%s %s failed", request.method, request.url.path)
            return error_response(internal_error())

    return wrapped


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


async def _until_done(job: Job) -> Any:
    while True:
        kind, value = await job.next_event()
        if kind == "done":
            return value
        if kind == "error":
            raise value


def create_app(registry: ModelRegistry | None = None, *, api_key: str | None = None) -> Starlette:
    """The ASGI app. ``registry`` owns the models (closed when the app shuts down)."""
    registry = registry or ModelRegistry()

    async def run_job(request: Request, model: str, job: Job) -> tuple[_Watch, Started | Any]:
        """Queue ``job`` on the model's owner; wait (watching the client) for it to start or finish."""
        owner = registry.known_owner(model)
        if owner is None:
            owner = await run_in_threadpool(registry.owner, model)
        owner.submit(job)
        watch = _Watch(request)
        try:
            kind, value = await watch.race(job.next_event())
        except BaseException:
            job.cancel.cancel()
            watch.stop()
            raise
        if kind == "error":
            watch.stop()
            raise value
        return watch, value

    async def generate(
        request: Request,
        model: str,
        job: Job,
        stream: Callable[[Job], AsyncIterator[str]],
        whole: Callable[[Any], dict[str, Any]],
    ) -> Response:
        watch, _ = await run_job(request, model, job)
        if job.streaming:
            watch.stop()  # from here Starlette's StreamingResponse watches the client
            # The background cancel covers a client gone before the stream's first event (no-op once finished).
            return StreamingResponse(
                stream(job),
                media_type="text/event-stream",
                headers=SSE_HEADERS,
                background=BackgroundTask(job.cancel.cancel),
            )
        try:
            result = await watch.race(_until_done(job))
        except BaseException:
            job.cancel.cancel()
            raise
        finally:
            watch.stop()
        return JSONResponse(whole(result))

    async def events(
        job: Job, ident: str, created: int, model: str, include_usage: bool, chat: bool
    ) -> AsyncIterator[str]:
        obj = "chat.completion.chunk" if chat else "text_completion"
        try:
            if chat:
                yield _sse(protocol.chat_chunk(ident, created, model, {"role": "assistant", "content": ""}))
            while True:
                kind, value = await job.next_event()
                if kind == "chunk":
                    yield _sse(
                        protocol.chat_chunk(ident, created, model, {"content": value.text})
                        if chat
                        else protocol.text_completion(ident, created, model, value.text, None)
                    )
                elif kind == "done":
                    finish = protocol.FINISH_REASONS[value.finish_reason]
                    for delta in protocol.tool_call_deltas(value) if chat else ():
                        yield _sse(protocol.chat_chunk(ident, created, model, delta))
                    yield _sse(
                        protocol.chat_chunk(ident, created, model, {}, finish)
                        if chat
                        else protocol.text_completion(ident, created, model, "", finish)
                    )
                    if include_usage:
                        yield _sse(protocol.usage_chunk(ident, created, model, obj, value))
                    break
                else:  # an error after the answer started: the SDKs raise on an "error" event
                    yield _sse(value.to_json())
                    break
            yield "data: [DONE]\n\n"
        finally:
            job.cancel.cancel()  # a client gone mid-stream stops its generation (no-op once finished)

    @_endpoint
    async def list_models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": await run_in_threadpool(registry.model_cards)})

    @_endpoint
    async def get_model(request: Request) -> Response:
        ident = request.path_params["model"]
        for card in await run_in_threadpool(registry.model_cards):
            if card["id"] == ident:
                return JSONResponse(card)
        raise model_not_found(ident)

    @_endpoint
    async def chat_completions(request: Request) -> Response:
        req = protocol.parse_chat(await _json_body(request))
        ident, created = protocol.new_id("chatcmpl"), protocol.now()
        job = Job(chat_work(req.messages, req.sampling, req.output), streaming=req.stream)
        return await generate(
            request,
            req.model,
            job,
            lambda j: events(j, ident, created, req.model, req.include_usage, chat=True),
            lambda result: protocol.chat_completion(ident, created, req.model, result),
        )

    @_endpoint
    async def completions(request: Request) -> Response:
        req = protocol.parse_completion(await _json_body(request))
        ident, created = protocol.new_id("cmpl"), protocol.now()
        job = Job(completion_work(req.prompt, req.sampling), streaming=req.stream)
        return await generate(
            request,
            req.model,
            job,
            lambda j: events(j, ident, created, req.model, req.include_usage, chat=False),
            lambda result: protocol.text_completion(
                ident, created, req.model, result.text, protocol.FINISH_REASONS[result.finish_reason], result
            ),
        )

    @_endpoint
    async def embeddings(request: Request) -> Response:
        req = protocol.parse_embeddings(await _json_body(request))
        if req.model not in registry.embedding_model_ids():
            await run_in_threadpool(registry.resolve, req.model)  # 404 for an unknown model
            raise bad_request(
                f"{req.model} is not an embedding model; use one of "
                f"{', '.join(sorted(registry.embedding_model_ids()))}",
                param="model",
            )
        vectors, tokens = await run_in_threadpool(registry.embed, req.inputs)
        return JSONResponse(protocol.embeddings(req.model, vectors, req.as_base64, tokens))

    @_endpoint
    async def tokenize(request: Request) -> Response:
        req = protocol.parse_tokenize(await _json_body(request))
        job = Job(count_work(req.prompt, req.messages))
        watch, counted = await run_job(request, req.model, job)
        watch.stop()
        return JSONResponse({"count": counted.prompt_tokens, "max_model_len": counted.n_ctx})

    async def not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException), "registered for HTTPException only"
        return error_response(
            APIError(
                exc.status_code,
                f"{request.method} {request.url.path}: {exc.detail}",
                code="not_found" if exc.status_code == 404 else None,
            )
        )

    @asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        await run_in_threadpool(registry.close)

    routes = [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/tokenize", tokenize, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(BearerAuth, api_key=api_key)],
        exception_handlers={HTTPException: not_found},
        lifespan=lifespan,
    )
    app.state.registry = registry
    return app
