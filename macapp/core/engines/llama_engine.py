"""``LlamaCppEngine``: a GGUF model run by llama.cpp (all layers on Metal on a Mac, CPU elsewhere).

What it adds over a bare ``llama_cpp.Llama``:
- the file is checked with our bounded header reader before llama.cpp sees it (hostile
  hyperparameters abort the process inside llama.cpp), and a failed load says why, from the log;
- loading runs on a helper thread so ``load`` can yield progress and honour cancel;
- the chat template comes from the GGUF and renders in a Jinja sandbox (``engines.templates``);
- **prefix reuse**: the engine remembers the text and exact tokens of the last exchange, so the
  next prompt is tokenized only past that point and llama.cpp evaluates only the new tokens;
- streaming decodes each token's bytes once (an incremental UTF-8 decoder), never the whole answer;
- a GGUF LoRA adapter can be applied over the loaded model and switched per conversation
  (``set_adapter``) without reloading the base; a switch drops the remembered prefix and KV cache;
- ``grammar=`` (GBNF, from ``structured``/``tool_calls``) constrains sampling, so JSON answers and tool
  calls match their schema by construction; ``tools=`` reaches the chat template.
"""

from __future__ import annotations

import atexit
import codecs
import ctypes
import queue
import random
import re
import threading
import time
import weakref
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from macapp.core.engines import llama_log
from macapp.core.engines.base import (
    AdapterFiles,
    ChatMessage,
    EngineCapabilities,
    FinishReason,
    GenerationChunk,
    GenerationResult,
    SamplingSettings,
)
from macapp.core.engines.llama_loader import open_llama
from macapp.core.engines.templates import ChatTemplate, RenderedPrompt, template_stop_strings
from macapp.core.errors import Cancelled, UserError
from macapp.core.models.estimate import RuntimeSettings
from macapp.core.models.facts import ModelFacts, read_facts
from macapp.core.progress import CancelToken, Progress

if TYPE_CHECKING:  # llama_cpp is imported when a model loads, not with this module
    from llama_cpp import Llama

_CONTROL_OR_USER_DEFINED = 8 | 16  # llama_token_attr: LLAMA_TOKEN_ATTR_CONTROL | USER_DEFINED
_LOADED: weakref.WeakSet[LlamaCppEngine] = weakref.WeakSet()
MAX_LAYERS = 4096
MAX_CONTEXT = 1 << 24
_ADAPTER_FAILURE = re.compile(r"failed to apply lora adapter: (.+)")


def check_loadable(facts: ModelFacts) -> None:
    """Refuse hyperparameters that make llama.cpp abort the whole process instead of failing."""
    name = facts.file_name
    if facts.n_layer < 1 or facts.n_layer > MAX_LAYERS:
        raise UserError(f"{name} claims {facts.n_layer} layers; this is not a usable model file")
    if facts.n_embd < 1 or facts.n_head < 1 or facts.vocab_size < 1:
        raise UserError(f"{name} has no embedding size, heads or vocabulary; this is not a usable model file")
    if facts.context_length < 1 or facts.context_length > MAX_CONTEXT:
        raise UserError(f"{name} claims a context length of {facts.context_length}; this is not a usable model file")


def default_threads() -> int:
    import psutil

    return max(1, psutil.cpu_count(logical=False) or psutil.cpu_count() or 1)


class LlamaCppEngine:
    """One GGUF model in llama.cpp. Use it from one thread at a time."""

    name = "llama.cpp"
    capabilities = EngineCapabilities(grammar=True, adapters=True, tools=True)

    def __init__(
        self,
        path: str | Path,
        settings: RuntimeSettings | None = None,
        *,
        model_id: str | None = None,
        n_threads: int | None = None,
        adapter: str | Path | None = None,
        adapter_scale: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.model_id = model_id or str(path)
        self.settings = settings or RuntimeSettings()
        self.n_threads = n_threads or default_threads()
        self.facts: ModelFacts | None = None
        self.template: ChatTemplate | None = None
        self.template_notice: str | None = None  # set when the model's own template could not be used
        self._llm: Llama | None = None
        self._stop_strings: tuple[str, ...] = ()
        self._stop_tokens: frozenset[int] = frozenset()
        self._pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)
        self._history_text = ""  # the last prompt + answer text, and the exact tokens behind it
        self._history_tokens: list[int] = []
        self.adapter: Path | None = Path(adapter) if adapter else None  # a GGUF LoRA adapter, applied at load
        self.adapter_scale = adapter_scale
        self._applied: tuple[Path, float] | None = None
        self._adapters: dict[Path, int] = {}  # loaded adapter handles (llama_adapter_lora *), freed at unload
        self._grammars_ok: set[str] = set()  # grammars llama.cpp parsed for this vocabulary

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    @property
    def n_ctx(self) -> int:
        return self._llm.n_ctx() if self._llm is not None else self.settings.n_ctx

    @property
    def label(self) -> str:
        """The model file's name."""
        return self.path.name

    @property
    def llama(self):
        """The underlying ``llama_cpp.Llama`` (tests read llama.cpp's own counters through it)."""
        return self._require()

    def load(self, cancel: CancelToken | None = None) -> Iterator[Progress]:
        """Check, then load the model on a helper thread, yielding progress (0..1)."""
        cancel = cancel or CancelToken()
        if not self.path.is_file():
            raise UserError(f"The model file is gone: {self.path}", hint="it was moved or deleted; pick it again")
        yield Progress("checking", 0, 1, f"Reading {self.path.name}")
        facts = read_facts(self.path)
        check_loadable(facts)
        self.facts = facts
        settings = self.settings
        if settings.n_ctx > facts.context_length:
            settings = RuntimeSettings(**{**vars(settings), "n_ctx": facts.context_length})
            self.settings = settings

        events: queue.Queue = queue.Queue()
        outcome: dict = {}

        def on_progress(fraction: float) -> bool:
            events.put(fraction)
            return not cancel.cancelled

        def work() -> None:
            with llama_log.capture() as lines:
                try:
                    outcome["llm"] = open_llama(
                        str(self.path),
                        settings,
                        progress=on_progress,
                        verbose=False,
                        n_threads=self.n_threads,
                        n_threads_batch=self.n_threads,
                        seed=0,
                    )
                except Exception as exc:  # noqa: BLE001 - reported to the caller below
                    outcome["error"] = exc
                    outcome["log"] = list(lines)
            events.put(None)

        thread = threading.Thread(target=work, name=f"load {self.path.name}", daemon=True)
        thread.start()
        while True:
            fraction = events.get()
            if fraction is None:
                break
            yield Progress("loading", fraction, 1, f"Loading {self.path.name}")
        thread.join()
        if cancel.cancelled:
            if "llm" in outcome:
                outcome["llm"].close()
            raise Cancelled()
        if "error" in outcome:
            reason = llama_log.load_failure_reason(outcome["log"]) or str(outcome["error"])
            raise UserError(f"{self.path.name} could not be loaded: {reason}") from outcome["error"]
        self._llm = outcome["llm"]
        _LOADED.add(self)
        self._setup_template()
        if self.adapter is not None:
            try:
                self.set_adapter(self.adapter, self.adapter_scale)
            except UserError:
                self.unload()
                raise
        yield Progress("loading", 1, 1, f"Loaded {self.path.name}")

    def _setup_template(self) -> None:
        llm = self._require()
        model = llm._model
        source = llm.metadata.get("tokenizer.chat_template")
        bos = model.token_get_text(llm.token_bos()) if llm.token_bos() >= 0 else ""
        eos = model.token_get_text(llm.token_eos()) if llm.token_eos() >= 0 else ""
        self.template = ChatTemplate(source, bos_token=bos, eos_token=eos, name=self.path.name)
        self._bos_text = bos
        self._stop_tokens, self._stop_strings = self._split_stops(template_stop_strings(source))
        self._history_text, self._history_tokens = "", []

    def _split_stops(self, markers: Sequence[str]) -> tuple[frozenset[int], tuple[str, ...]]:
        """End-of-turn markers that are one token stop by id (control tokens never appear in the text);
        the rest stop as text."""
        ids, texts = set(), []
        for marker in markers:
            tokens = self.tokenize(marker)
            if len(tokens) == 1 and self._require()._model.token_get_attr(tokens[0]) & _CONTROL_OR_USER_DEFINED:
                ids.add(tokens[0])
            else:
                texts.append(marker)
        return frozenset(ids), tuple(texts)

    def use_adapter(self, adapter: AdapterFiles | None) -> None:
        """Answer with ``adapter`` (as a GGUF LoRA) from the next message on; None: the base alone."""
        self.set_adapter(adapter.gguf_lora() if adapter else None)

    def set_adapter(self, path: str | Path | None, scale: float = 1.0) -> None:
        """Apply the GGUF LoRA adapter at ``path`` (None: none) at ``scale``; the base stays loaded.

        Each adapter file is read once and kept until ``unload``. Changing the adapter (or its scale)
        invalidates the remembered history and llama.cpp's KV cache: they were computed with other weights.
        Before ``load`` it only records the choice, applied when the model loads.
        """
        import llama_cpp

        if self._llm is None:
            self.adapter, self.adapter_scale = (Path(path), float(scale)) if path is not None else (None, 1.0)
            return
        llm = self._llm
        wanted = (Path(path).resolve(), float(scale)) if path is not None else None
        if wanted == self._applied:
            return
        if wanted is not None and wanted[0] not in self._adapters:
            if not wanted[0].is_file():
                raise UserError(f"The adapter file is gone: {path}")
            with llama_log.capture() as lines:
                handle = llama_cpp.llama_adapter_lora_init(llm._model.model, str(wanted[0]).encode("utf-8"))
            if not handle:
                found = _ADAPTER_FAILURE.search("".join(lines))
                reason = found[1].strip() if found else "it is not a GGUF LoRA adapter llama.cpp can read"
                raise UserError(
                    f"{wanted[0].name} cannot be applied to {self.path.name}: {reason}",
                    hint="export the adapter from a model with the same base",
                )
            self._adapters[wanted[0]] = handle
        if wanted is None:
            llama_cpp.llama_set_adapters_lora(llm.ctx, None, 0, None)
        else:
            # llama-cpp-python types a handle as int and the array's items as pointers; its own wrapper does this too
            handles = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self._adapters[wanted[0]])  # type: ignore[misc]
            scales = (ctypes.c_float * 1)(wanted[1])
            llama_cpp.llama_set_adapters_lora(llm.ctx, handles, 1, scales)
        self._applied = wanted
        self.adapter, self.adapter_scale = (wanted[0], wanted[1]) if wanted else (None, 1.0)
        self._history_text, self._history_tokens = "", []
        llm.reset()  # nothing in the KV cache may be reused

    def unload(self) -> None:
        if self._llm is not None and self._adapters:
            import llama_cpp

            llama_cpp.llama_set_adapters_lora(self._llm.ctx, None, 0, None)
            for handle in self._adapters.values():
                llama_cpp.llama_adapter_lora_free(handle)
        self._adapters.clear()
        self._applied = None
        if self._llm is not None:
            self._llm.close()
        self._llm = None
        self._pieces.clear()
        self._history_text, self._history_tokens = "", []

    def _require(self) -> Llama:
        if self._llm is None:
            raise UserError("No model is loaded", hint="load a model first")
        return self._llm

    # -- tokens --------------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = True) -> list[int]:
        return self._require().tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text, special=False))

    def render(self, messages: Sequence[ChatMessage], tools: Sequence[dict] | None = None) -> RenderedPrompt:
        self._require()
        assert self.template is not None, "set when the model loads"
        extra = {"tools": list(tools)} if tools else {}
        rendered = self.template.render(list(messages), add_generation_prompt=True, **extra)
        self.template_notice = rendered.notice
        return rendered

    def prompt_tokens(self, messages: Sequence[ChatMessage], tools: Sequence[dict] | None = None) -> list[int]:
        """The tokens llama.cpp gets for ``messages`` and the assistant cue (with BOS when the model adds one)."""
        return self._tokenize_prompt(self.render(messages, tools).text, reuse=False)

    def count_chat_tokens(self, messages: Sequence[ChatMessage], tools: Sequence[dict] | None = None) -> int:
        return len(self.prompt_tokens(messages, tools))

    def _tokenize_prompt(self, text: str, reuse: bool = True) -> list[int]:
        """Tokens for a whole prompt; past the last exchange only the new text is tokenized."""
        llm = self._require()
        history = self._history_text
        if reuse and history and len(text) > len(history) and text.startswith(history):
            return self._history_tokens + self.tokenize(text[len(history) :])
        add_bos = llm._model.add_bos_token() and not (self._bos_text and text.startswith(self._bos_text))
        return self.tokenize(text, add_bos=add_bos)

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            import llama_cpp

            n = llama_cpp.llama_token_to_piece(self._require()._model.vocab, token, self._piece_buf, 256, 0, False)
            piece = self._piece_buf.raw[: max(0, n)]
            self._pieces[token] = piece
        return piece

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
        """Answer ``messages`` (system prompt included by the caller), streaming text.

        ``tools`` (OpenAI's shape) reach the chat template; ``grammar`` (GBNF) constrains every token.
        """
        rendered = self.render(messages, tools)
        tokens = self._tokenize_prompt(rendered.text)
        return (yield from self._generate(rendered.text, tokens, sampling or SamplingSettings(), cancel, grammar))

    def stream_completion(
        self,
        prompt: str,
        sampling: SamplingSettings | None = None,
        cancel: CancelToken | None = None,
        *,
        grammar: str | None = None,
    ) -> Generator[GenerationChunk, None, GenerationResult]:
        """Continue raw ``prompt`` text (no chat template), under ``grammar`` (GBNF) when given."""
        tokens = self._tokenize_prompt(prompt)
        return (yield from self._generate(prompt, tokens, sampling or SamplingSettings(), cancel, grammar))

    def _generate(
        self,
        prompt_text: str,
        tokens: list[int],
        sampling: SamplingSettings,
        cancel: CancelToken | None,
        grammar: str | None = None,
    ) -> Generator[GenerationChunk, None, GenerationResult]:
        """The token loop: sample, decode bytes incrementally, hold back text that may start a stop string."""
        import llama_cpp
        from llama_cpp.llama_grammar import LlamaGrammar

        llm = self._require()
        n_ctx = llm.n_ctx()
        if len(tokens) >= n_ctx:
            raise UserError(
                f"The prompt is {len(tokens)} tokens; the context window holds {n_ctx}",
                hint="start a new chat, shorten the message or load the model with a larger context",
            )
        llm.set_seed(sampling.seed if sampling.seed is not None else random.getrandbits(31))
        vocab = llm._model.vocab
        eog = llama_cpp.llama_vocab_is_eog
        stop_tokens = self._stop_tokens
        stops = tuple(s for s in (*sampling.stop, *self._stop_strings) if s)
        hold = max((len(s) for s in stops), default=1) - 1
        limit = sampling.max_tokens if sampling.max_tokens > 0 else n_ctx
        decoder = codecs.getincrementaldecoder("utf-8")("replace")

        cached_before = self._cached_prefix(tokens)
        started = time.perf_counter()
        first_at = started
        text = ""  # everything decoded so far
        emitted = 0  # how much of ``text`` went out in chunks
        generated: list[int] = []
        finish: FinishReason = "length"
        cut_by_stop_string = False
        if grammar:
            self._check_grammar(grammar)
        steps = llm.generate(
            tokens,
            top_k=sampling.top_k,
            top_p=sampling.top_p,
            min_p=sampling.min_p,
            temp=sampling.temperature,
            repeat_penalty=sampling.repeat_penalty,
            grammar=LlamaGrammar.from_string(grammar) if grammar else None,
        )
        try:
            for token in steps:
                if not generated and first_at == started:
                    first_at = time.perf_counter()
                if token in stop_tokens or eog(vocab, token):
                    finish = "stop"
                    break
                generated.append(token)
                text += decoder.decode(self._piece(token))
                if stops:
                    window = max(0, emitted - hold)
                    found = [i for i in (text.find(s, window) for s in stops) if i >= 0]
                    if found:
                        text = text[: min(found)]
                        finish, cut_by_stop_string = "stop", True
                        break
                safe = len(text) - hold if stops else len(text)
                if safe > emitted:
                    yield GenerationChunk(text[emitted:safe], len(generated), time.perf_counter() - first_at)
                    emitted = safe
                if len(generated) >= limit:
                    finish = "length"
                    if len(tokens) + len(generated) < n_ctx:
                        llm.eval([token])  # keep the cache complete so the next turn reuses all of it
                        llama_cpp.llama_synchronize(llm.ctx)  # and count it in this turn's timings
                    break
                if len(tokens) + len(generated) >= n_ctx:
                    finish = "context"
                    break
                if cancel is not None and cancel.cancelled:
                    finish = "cancelled"
                    break
        finally:
            steps.close()
        if not cut_by_stop_string:
            text += decoder.decode(b"", final=True)
        if len(text) > emitted:
            yield GenerationChunk(text[emitted:], len(generated), time.perf_counter() - first_at)
        ended = time.perf_counter()
        if cut_by_stop_string:
            self._history_text, self._history_tokens = "", []
        else:
            self._history_text, self._history_tokens = prompt_text + text, tokens + generated
        return GenerationResult(
            text=text,
            finish_reason=finish,
            prompt_tokens=len(tokens),
            prompt_eval_tokens=len(tokens) - cached_before,
            completion_tokens=len(generated),
            prompt_s=first_at - started,
            generation_s=ended - first_at,
        )

    def _check_grammar(self, grammar: str) -> None:
        """Refuse a grammar llama.cpp can't parse: sampling with one would crash the process."""
        if grammar in self._grammars_ok:
            return
        import llama_cpp

        with llama_log.capture() as lines:
            handle = llama_cpp.llama_sampler_init_grammar(
                self._require()._model.vocab, grammar.encode("utf-8"), b"root"
            )
        if not handle:
            detail = " ".join(line.strip() for line in lines if line.strip())[:300]
            raise UserError(f"llama.cpp could not use this grammar ({detail or 'it does not parse'})")
        llama_cpp.llama_sampler_free(handle)
        self._grammars_ok.add(grammar)

    def _cached_prefix(self, tokens: list[int]) -> int:
        """How many prompt tokens llama.cpp will take from its KV cache (mirrors ``Llama.generate``)."""
        llm = self._require()
        cached = llm._input_ids
        common = min(len(cached), len(tokens))
        differs = np.flatnonzero(cached[:common] != np.asarray(tokens[:common], dtype=cached.dtype))
        n = int(differs[0]) if differs.size else common
        if n == len(tokens):
            return n if llm.n_tokens == len(tokens) and not llm._requires_eval else n - 1
        return n


@atexit.register
def _unload_all() -> None:
    """Free models still loaded at exit while llama.cpp is still there (its finalizers fail during teardown)."""
    for engine in list(_LOADED):
        engine.unload()
