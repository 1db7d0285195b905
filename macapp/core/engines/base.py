"""The one protocol every inference engine speaks: llama.cpp, MLX, a remote server, and the fake for tests.

An engine is owned by one thread at a time. ``load`` is a generator of ``Progress`` that honours
a ``CancelToken`` (raising ``Cancelled``); ``stream_chat`` yields ``GenerationChunk`` as text
arrives and *returns* a ``GenerationResult``. Stopping an answer is a normal outcome in a chat
(the partial answer is kept), so a cancelled generation returns ``finish_reason="cancelled"``
rather than raising. What an engine can do beyond that (grammars, run-time adapters, native tool calls)
it declares in ``capabilities``; ``label`` names its model for a person.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict

from macapp.core.errors import UserError
from macapp.core.progress import CancelToken, Progress

if TYPE_CHECKING:
    from macapp.core.engines.templates import ChatTemplate

FinishReason = Literal["stop", "length", "context", "cancelled"]


class _ToolParts(TypedDict, total=False):
    tool_calls: list[dict[str, Any]]
    tool_call_id: str
    name: str


class ChatMessage(_ToolParts):
    """One turn as chat templates see it. ``role`` is system | user | assistant | tool.

    An assistant turn that called tools carries ``tool_calls`` (OpenAI's shape); a ``tool`` turn is one
    call's result, with its ``tool_call_id`` and the tool's ``name``.
    """

    role: str
    content: str


@dataclass(frozen=True)
class SamplingSettings:
    """How the next token is chosen. ``seed`` None draws a fresh seed per answer."""

    temperature: float = field(default=0.7, metadata={"help": "randomness (0 = always the most likely token)"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus: smallest set with this much probability"})
    top_k: int = field(default=40, metadata={"help": "consider only the k most likely tokens (0 = all)"})
    min_p: float = field(default=0.05, metadata={"help": "drop tokens below this fraction of the best"})
    repeat_penalty: float = field(default=1.1, metadata={"help": "penalise recently used tokens (1 = off)"})
    seed: int | None = field(default=None, metadata={"help": "fixed seed for reproducible answers"})
    max_tokens: int = field(default=1024, metadata={"help": "longest answer in tokens (0 = until the context is full)"})
    stop: tuple[str, ...] = field(default=(), metadata={"help": "extra strings that end the answer"})

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> SamplingSettings:
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in (data or {}).items() if k in names}
        if "stop" in known:
            known["stop"] = tuple(known["stop"] or ())
        return cls(**known)

    def with_changes(self, **changes: Any) -> SamplingSettings:
        return replace(self, **changes)


PRESETS: dict[str, SamplingSettings] = {
    "balanced": SamplingSettings(),
    "precise": SamplingSettings(temperature=0.2, top_p=0.9, top_k=20, min_p=0.1, repeat_penalty=1.05),
    "creative": SamplingSettings(temperature=1.0, top_p=0.98, top_k=100, min_p=0.02, repeat_penalty=1.1),
    "deterministic": SamplingSettings(temperature=0.0, top_k=1, repeat_penalty=1.0, seed=0),
}


def answer_reserve(n_ctx: int, max_tokens: int) -> int:
    """Tokens kept free for the answer: the max-tokens setting, at most half the window."""
    wanted = max_tokens if max_tokens > 0 else n_ctx // 4
    return max(1, min(wanted, n_ctx // 2))


@dataclass(frozen=True)
class GenerationChunk:
    """New answer text since the last chunk, with running counts."""

    text: str
    completion_tokens: int
    elapsed_s: float


@dataclass(frozen=True)
class GenerationResult:
    """A finished (or stopped) answer with what it cost.

    ``prompt_tokens`` is the whole prompt; ``prompt_eval_tokens`` is how many of them the engine
    actually evaluated (the rest came from the conversation's cached prefix).
    """

    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    prompt_eval_tokens: int
    completion_tokens: int
    prompt_s: float
    generation_s: float

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.generation_s if self.generation_s > 0 else 0.0

    @property
    def prompt_tokens_per_s(self) -> float:
        return self.prompt_eval_tokens / self.prompt_s if self.prompt_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "prompt_tokens": self.prompt_tokens,
            "prompt_eval_tokens": self.prompt_eval_tokens,
            "completion_tokens": self.completion_tokens,
            "timings": {
                "prompt_s": round(self.prompt_s, 6),
                "generation_s": round(self.generation_s, 6),
                "prompt_tokens_per_s": round(self.prompt_tokens_per_s, 2),
                "tokens_per_s": round(self.tokens_per_s, 2),
            },
        }


class AdapterFiles(Protocol):
    """A tuned adapter in the forms the engines take. The tuning layer resolves a name into one
    (``tuning.adapters.engine_adapter``); an engine only asks for the file it reads."""

    def folder(self) -> Path:
        """mlx-lm's adapter folder (``adapters.safetensors`` + ``adapter_config.json``): what MLX applies."""
        ...

    def gguf_lora(self) -> Path:
        """The adapter as a GGUF LoRA file: what llama.cpp applies."""
        ...


@dataclass(frozen=True)
class EngineCapabilities:
    """What an engine can do beyond streaming text. Callers ask here rather than probing for attributes."""

    grammar: bool = False  # constrained sampling (``grammar=`` GBNF): JSON and tool calls valid by construction
    adapters: bool = False  # a tuned LoRA adapter switched at run time (``use_adapter``), without reloading the base
    tools: bool = False  # renders the model's own chat template (``template``), so ``tools=`` give native tool calls
    vision: bool = False  # images in the messages (no engine takes them yet)


class Engine(Protocol):
    """What the chat, the CLI and the server need from a backend.

    ``capabilities`` says which of the optional parts an engine has: ``tools=`` and ``grammar=`` are given
    only to an engine that declares them, and ``use_adapter`` refuses an adapter (``UserError``) on an engine
    without ``adapters``.
    """

    name: str  # "llama.cpp", "mlx", "remote"
    model_id: str  # what the user picked (a path or a library/remote id)
    template_notice: str | None  # set when the model's own chat template could not be used (ChatML stood in)

    @property
    def capabilities(self) -> EngineCapabilities: ...

    @property
    def label(self) -> str:
        """The model, for a person: a local file's or folder's name, a remote's ``model @ host:port``."""
        ...

    @property
    def template(self) -> ChatTemplate | None:
        """The model's chat template when the engine renders prompts itself (None: the server does)."""
        ...

    @property
    def n_ctx(self) -> int: ...

    @property
    def loaded(self) -> bool: ...

    def load(self, cancel: CancelToken | None = None) -> Iterator[Progress]:
        """Load the model, yielding progress; raises ``UserError`` with the real reason on failure."""
        ...

    def use_adapter(self, adapter: AdapterFiles | None) -> None:
        """Answer with ``adapter`` from the next message on (None: the base alone), from the engine's thread."""
        ...

    def count_chat_tokens(self, messages: Sequence[ChatMessage], tools: Sequence[dict] | None = None) -> int:
        """Tokens the rendered prompt for ``messages`` (plus the assistant cue) takes."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        sampling: SamplingSettings | None = None,
        cancel: CancelToken | None = None,
        *,
        tools: Sequence[dict] | None = None,
        grammar: str | None = None,
    ) -> Generator[GenerationChunk, None, GenerationResult]:
        """Answer the conversation: yields text as it arrives, returns the result."""
        ...

    def unload(self) -> None: ...


def refuse_unsupported(
    engine: Engine, *, tools: Sequence[dict] | None = None, grammar: str | None = None, adapter: object = None
) -> None:
    """Raise ``UserError`` for a tool list, grammar or adapter ``engine``'s capabilities don't include."""
    caps = engine.capabilities
    for asked, able, what in (
        (tools, caps.tools, "native tool calls"),
        (grammar, caps.grammar, "a grammar"),
        (adapter, caps.adapters, "a local adapter"),
    ):
        if asked and not able:
            raise UserError(f"{engine.name} models can't take {what}")
