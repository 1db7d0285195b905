"""``RemoteEngine``: a model on another OpenAI-compatible server (vLLM, Ollama, LM Studio, another Orchard)
behind the same ``Engine`` protocol as llama.cpp, for models that outgrow this Mac.

- ``load`` checks the endpoint answers and serves the model (a clear ``UserError`` when it is unreachable,
  refuses the key, or has no such model); nothing is downloaded.
- ``stream_chat`` streams Server-Sent Events with httpx. Cancel is prompt even while the server is still
  queueing or loading (no bytes yet): a watcher shuts the connection's socket down, which also tells the
  server to stop. Only OpenAI's own sampling fields are sent (temperature, top_p, max_tokens, stop, seed):
  strict servers refuse unknown ones, so top_k, min_p and repeat_penalty stay local settings.
- Token counts are exact where the server has vLLM's ``POST /tokenize`` (vLLM and Orchard do); elsewhere
  (Ollama, LM Studio, OpenAI) they are approximate, about 4 characters a token plus a few per message, and
  the context is the model card's ``context_length``/``max_model_len`` or 4,096 tokens. The usage each
  answer reports is the server's own count.

Ids: ``remote:<endpoint name>/<model>`` names a model on an endpoint in ``Settings.remote_endpoints``
(``{"name", "url"}`` and ``api_key_ref``: the keychain entry that holds the key, see ``core.secrets``, or
``api_key_env``: the variable that holds it); ``open_remote`` turns one into an engine;
``core.engines.remote_endpoints`` adds and removes them.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from macapp.core.engines.base import (
    AdapterFiles,
    ChatMessage,
    EngineCapabilities,
    FinishReason,
    GenerationChunk,
    GenerationResult,
    SamplingSettings,
    refuse_unsupported,
)
from macapp.core.errors import UserError
from macapp.core.progress import CancelToken, Progress

REMOTE_PREFIX = "remote:"
DEFAULT_CONTEXT = 4096  # what a server that does not say usually gives (Ollama's default num_ctx)
CHARS_PER_TOKEN = 4.0
TOKENS_PER_MESSAGE = 4  # role markers around each message, and 3 for the assistant cue
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 600.0  # a big model may load for minutes before its first token
_CONTEXT_KEYS = ("context_length", "max_model_len", "max_context_length", "context_window")
_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length"}


@dataclass(frozen=True)
class RemoteModel:
    """One model an endpoint serves."""

    id: str
    context_length: int | None = None
    owned_by: str = ""


@dataclass(frozen=True)
class RemoteEndpoint:
    """An OpenAI-compatible server the user added in settings."""

    name: str
    url: str
    # The key from api_key_env, or one still in plain text in settings (only where no keychain exists).
    api_key: str | None = None
    api_key_env: str | None = None  # the key is read from this environment variable when used (never saved)
    api_key_ref: str | None = None  # the keychain entry that holds the key (read when the server is used)

    @classmethod
    def from_json(cls, data: Any) -> RemoteEndpoint:
        if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not isinstance(data.get("url"), str):
            raise UserError("a remote endpoint in settings needs a name and a url")
        env = data.get("api_key_env") if isinstance(data.get("api_key_env"), str) else None
        ref = data.get("api_key_ref") if isinstance(data.get("api_key_ref"), str) else None
        key = data.get("api_key") or (os.environ.get(env) if env else None)
        return cls(data["name"], data["url"], key or None, env or None, ref or None)

    @property
    def has_key(self) -> bool:
        """A key is configured and, for a variable, set (the keychain is not asked)."""
        return bool(self.api_key or self.api_key_ref)

    def resolve_key(self) -> str | None:
        """The key to send (None: the server needs none), read from the keychain now where it is kept there;
        a clear ``UserError`` when the variable that holds it is not set or the keychain cannot give it."""
        if self.api_key:
            return self.api_key
        if self.api_key_ref:
            from macapp.core.secrets import read_secret

            key = read_secret(self.api_key_ref)
            if not key:
                raise UserError(
                    f"the API key of {self.name} is missing from the keychain",
                    hint=f"remove the server and add it again with its key (macapp remotes remove {self.name})",
                )
            return key
        if self.api_key_env:
            raise UserError(
                f"the API key of {self.name} is read from ${self.api_key_env}, which is not set",
                hint=f"export {self.api_key_env}=… before starting Orchard",
            )
        return None


def api_base(url: str) -> str:
    """The API root for what a user typed: ``host:11434`` -> ``http://host:11434/v1``; a URL with a path is kept."""
    typed = url.strip()
    url = typed if "://" in typed else "http://" + typed
    parts = urlsplit(url)
    try:
        _ = parts.port  # raises on "host:abc"
        host = parts.hostname
    except ValueError:
        host = None
    if parts.scheme not in ("http", "https") or not host:  # "http://" alone names no server
        raise UserError(f"{typed!r} is not an http(s) URL", hint="e.g. http://192.168.1.20:8000/v1")
    url = url.rstrip("/")
    return url if parts.path.strip("/") else url + "/v1"


def _client(api_key: str | None):
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    # No keep-alive: every request opens its own connection, so a cancel can always find its socket.
    return httpx.Client(headers=headers, timeout=timeout, limits=httpx.Limits(max_keepalive_connections=0))


def _error_message(response) -> str:
    try:
        body = json.loads(response.read())
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else error
        return str(message or body)[:500]
    except (ValueError, AttributeError):
        return response.text[:200] if hasattr(response, "text") else ""


def _raise_for(response, base: str, what: str) -> None:
    if response.status_code < 400:
        return
    if response.status_code in (401, 403):
        raise UserError(
            f"{base} refused the API key ({response.status_code})",
            hint="check the key in the remote endpoint's settings",
        )
    raise UserError(f"{base} answered {response.status_code} to {what}: {_error_message(response)}")


def _request(client, method: str, base: str, path: str, **kwargs) -> Any:
    """One JSON request with user-facing errors for the ways it can fail."""
    import httpx

    try:
        response = client.request(method, base + path, **kwargs)
    except httpx.ConnectError as exc:
        raise UserError(f"cannot reach {base}", hint="is the server running, and is the URL right?") from exc
    except httpx.TimeoutException as exc:
        raise UserError(f"{base} did not answer in time") from exc
    except httpx.HTTPError as exc:
        raise UserError(f"{base} failed: {exc}") from exc
    if response.status_code == 404 and path == "/models":
        raise UserError(
            f"{base} is not an OpenAI-compatible API (GET {path} answered 404)", hint="the URL usually ends in /v1"
        )
    _raise_for(response, base, f"{method} {path}")
    try:
        return response.json()
    except ValueError as exc:
        raise UserError(f"{base} did not answer like an OpenAI-compatible server (not JSON)") from exc


def _context_of(card: dict) -> int | None:
    for key in _CONTEXT_KEYS:
        value = card.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def list_remote_models(base_url: str, api_key: str | None = None) -> list[RemoteModel]:
    """The models an endpoint serves (``GET /models``), as it lists them."""
    base = api_base(base_url)
    with _client(api_key) as client:
        body = _request(client, "GET", base, "/models")
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise UserError(f"{base} did not answer like an OpenAI-compatible server (no model list)")
    return [
        RemoteModel(card["id"], _context_of(card), str(card.get("owned_by") or ""))
        for card in data
        if isinstance(card, dict) and isinstance(card.get("id"), str)
    ]


class _SocketCloser:
    """Shuts a request's socket down when its cancel token fires (even before any byte came back)."""

    def __init__(self, cancel: CancelToken) -> None:
        self._cancel = cancel
        self._stream = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="remote cancel", daemon=True)
        self._thread.start()

    def trace(self, event: str, info: dict) -> None:
        """httpx's trace hook: remember the connection's stream once it is open."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            self._stream = info.get("return_value") or self._stream

    def _watch(self) -> None:
        while not self._done.is_set():
            if not self._cancel.wait(0.05):
                continue
            sock = self._stream.get_extra_info("socket") if self._stream is not None else None
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed
                return
            self._done.wait(0.02)  # cancelled before the connection opened: wait for it

    def close(self) -> None:
        self._done.set()  # the watcher ends within 50 ms; nobody needs to wait for it


class RemoteEngine:
    """A model served by an OpenAI-compatible endpoint. Use it from one thread at a time.

    Args:
        base_url: the API root (``http://host:8000/v1``; a bare ``host:port`` gets ``/v1``).
        model: the model's id on that server.
        api_key: sent as ``Authorization: Bearer``.
        model_id: how Orchard names it (``remote:<endpoint>/<model>``); defaults to ``model``.
    """

    name = "remote"
    capabilities = EngineCapabilities()  # the server renders its own template: no tools=, grammar or adapter here
    template = None

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, model_id: str | None = None) -> None:
        self.base_url = api_base(base_url)
        self.model = model
        self.api_key = api_key
        self.model_id = model_id or model
        self.template_notice: str | None = None  # the server applies its own chat template
        self.exact_counts = False  # True when the server tokenizes for us (``/tokenize``)
        self._n_ctx = DEFAULT_CONTEXT
        self._client = None

    @property
    def label(self) -> str:
        """Which engine answers, for a person: ``model @ host:port``."""
        return f"{self.model} @ {urlsplit(self.base_url).netloc}"

    @property
    def loaded(self) -> bool:
        return self._client is not None

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    def load(self, cancel: CancelToken | None = None) -> Iterator[Progress]:
        """Check the endpoint answers and serves the model; learn its context and whether it counts tokens."""
        cancel = cancel or CancelToken()
        yield Progress("connecting", 0, 1, f"Connecting to {self.base_url}")
        client = _client(self.api_key)
        try:
            body = _request(client, "GET", self.base_url, "/models")
            cancel.raise_if_cancelled()
            cards = {c.get("id"): c for c in (body.get("data") or []) if isinstance(c, dict)}
            if self.model not in cards:
                served = ", ".join(sorted(str(k) for k in cards)[:8]) or "none"
                raise UserError(f"{self.base_url} has no model {self.model!r}", hint=f"it serves: {served}")
            self._n_ctx = _context_of(cards[self.model]) or DEFAULT_CONTEXT
            self._client = client
            self._probe_tokenizer()
        except BaseException:
            client.close()
            self._client = None
            raise
        yield Progress("loading", 1, 1, f"Connected to {self.label}")

    def _probe_tokenizer(self) -> None:
        counted = self._tokenize({"prompt": "hello"})
        self.exact_counts = counted is not None
        if counted and counted.get("max_model_len"):
            self._n_ctx = int(counted["max_model_len"])

    def _tokenize(self, payload: dict) -> dict | None:
        """vLLM's ``POST /tokenize`` next to ``/v1`` (None where the server has none)."""
        import httpx

        if not self.base_url.endswith("/v1"):
            return None
        try:
            response = self._require().post(
                self.base_url[:-3] + "/tokenize",
                json={"model": self.model, **payload},
                timeout=httpx.Timeout(30.0, connect=CONNECT_TIMEOUT_S),
            )
            body = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        return body if isinstance(body, dict) and isinstance(body.get("count"), int) else None

    def unload(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None

    def _require(self):
        if self._client is None:
            raise UserError("No model is loaded", hint="load a model first")
        return self._client

    # -- tokens --------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        if self.exact_counts:
            counted = self._tokenize({"prompt": text, "add_special_tokens": False})
            if counted is not None:
                return counted["count"]
        return _approx_tokens(text)

    def use_adapter(self, adapter: AdapterFiles | None) -> None:
        refuse_unsupported(self, adapter=adapter)

    def count_chat_tokens(self, messages: Sequence[ChatMessage], tools: Sequence[dict] | None = None) -> int:
        refuse_unsupported(self, tools=tools)
        if self.exact_counts:
            counted = self._tokenize({"messages": list(messages), "add_generation_prompt": True})
            if counted is not None:
                return counted["count"]
        return sum(_approx_tokens(m["content"]) + TOKENS_PER_MESSAGE for m in messages) + 3

    # -- generation ----------------------------------------------------------------------------

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        sampling: SamplingSettings | None = None,
        cancel: CancelToken | None = None,
        *,
        tools: Sequence[dict] | None = None,
        grammar: str | None = None,
    ) -> Generator[GenerationChunk, None, GenerationResult]:
        """Answer ``messages`` on the server, streaming; cancel closes the connection (the server stops too)."""
        refuse_unsupported(self, tools=tools, grammar=grammar)
        payload = {"messages": [{"role": m["role"], "content": m["content"]} for m in messages]}
        estimate = self.count_chat_tokens(messages) if not self.exact_counts else None
        return (yield from self._stream("/chat/completions", payload, sampling, cancel, estimate))

    def stream_completion(
        self, prompt: str, sampling: SamplingSettings | None = None, cancel: CancelToken | None = None
    ) -> Generator[GenerationChunk, None, GenerationResult]:
        """Continue raw ``prompt`` text (``/completions``; not every server has it)."""
        return (yield from self._stream("/completions", {"prompt": prompt}, sampling, cancel, _approx_tokens(prompt)))

    def _stream(
        self,
        path: str,
        payload: dict,
        sampling: SamplingSettings | None,
        cancel: CancelToken | None,
        prompt_estimate: int | None,
    ) -> Generator[GenerationChunk, None, GenerationResult]:
        import httpx

        client = self._require()
        sampling = sampling or SamplingSettings()
        cancel = cancel or CancelToken()
        body = {
            "model": self.model,
            **payload,
            **_sampling_fields(sampling),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        started = time.perf_counter()
        first_at = None
        text, pieces, usage = "", 0, None
        finish: FinishReason = "stop"
        closer = _SocketCloser(cancel)
        try:
            if cancel.cancelled:
                raise _Stopped()
            with client.stream("POST", self.base_url + path, json=body, extensions={"trace": closer.trace}) as response:
                _raise_for(response, self.base_url, f"POST {path}")
                for event in _sse_events(response):
                    if "error" in event:
                        raise UserError(f"{self.base_url} failed mid-answer: {_event_error(event)}")
                    usage = event.get("usage") or usage
                    for choice in event.get("choices") or ():
                        piece = (choice.get("delta") or {}).get("content") if "delta" in choice else choice.get("text")
                        if piece:
                            first_at = first_at or time.perf_counter()
                            text += piece
                            pieces += 1
                            yield GenerationChunk(piece, pieces, time.perf_counter() - first_at)
                        finish = _FINISH.get(choice.get("finish_reason") or "", finish)
                    if cancel.cancelled:
                        raise _Stopped()
        except _Stopped:
            finish = "cancelled"
        except httpx.ConnectError as exc:
            raise UserError(f"cannot reach {self.base_url}", hint="is the server still running?") from exc
        except httpx.HTTPError as exc:
            if not cancel.cancelled:
                raise UserError(f"{self.base_url} broke off the answer: {exc}") from exc
            finish = "cancelled"
        finally:
            closer.close()
        ended = time.perf_counter()
        first_at = first_at or ended
        usage = usage if isinstance(usage, dict) else {}
        prompt_tokens = usage.get("prompt_tokens") or prompt_estimate or 0
        return GenerationResult(
            text=text,
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            prompt_eval_tokens=prompt_tokens,
            completion_tokens=usage.get("completion_tokens") or pieces,
            prompt_s=first_at - started,
            generation_s=ended - first_at,
        )


class _Stopped(Exception):
    """The caller cancelled: end the stream and keep the partial answer."""


def _approx_tokens(text: str) -> int:
    return 0 if not text else max(1, round(len(text) / CHARS_PER_TOKEN))


def _sampling_fields(sampling: SamplingSettings) -> dict[str, Any]:
    fields: dict[str, Any] = {"temperature": sampling.temperature, "top_p": sampling.top_p}
    if sampling.max_tokens > 0:
        fields["max_tokens"] = sampling.max_tokens
    if sampling.stop:
        fields["stop"] = list(sampling.stop)[:4]
    if sampling.seed is not None:
        fields["seed"] = sampling.seed
    return fields


def _sse_events(response) -> Iterator[dict]:
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue  # comments, event names, keep-alives
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
        except ValueError:
            continue
        if isinstance(event, dict):
            yield event


def _event_error(event: dict) -> str:
    error = event.get("error")
    return str(error.get("message") if isinstance(error, dict) else error)


# -- remote:<endpoint>/<model> ids ---------------------------------------------------------------


def is_remote_ref(ref: str) -> bool:
    return ref.startswith(REMOTE_PREFIX)


def remote_ref(endpoint: str, model: str) -> str:
    return f"{REMOTE_PREFIX}{endpoint}/{model}"


def configured_endpoints(settings=None) -> list[RemoteEndpoint]:
    from macapp.core.settings import Settings

    settings = settings or Settings.load()
    return [RemoteEndpoint.from_json(e) for e in settings.remote_endpoints]


def open_remote(ref: str, settings=None, **_plan_options: Any) -> RemoteEngine:
    """An unloaded engine for ``remote:<endpoint>/<model>`` (model ids may contain ``/``); local options such as
    ``n_ctx`` do not apply to a remote model and are ignored."""
    name, sep, model = ref[len(REMOTE_PREFIX) :].partition("/")
    if not is_remote_ref(ref) or not sep or not name or not model:
        raise UserError(f"{ref!r} is not a remote model id", hint="remote:<endpoint name>/<model>")
    endpoints = {e.name: e for e in configured_endpoints(settings)}
    endpoint = endpoints.get(name)
    if endpoint is None:
        known = ", ".join(sorted(endpoints)) or "none yet"
        raise UserError(f"no remote endpoint named {name!r}", hint=f"add it in settings (known: {known})")
    return RemoteEngine(endpoint.url, model, endpoint.resolve_key(), model_id=ref)
