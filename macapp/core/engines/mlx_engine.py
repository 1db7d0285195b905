"""``MlxEngine``: an mlx-lm model directory, optionally with a LoRA adapter, behind the engine protocol.

A freshly trained adapter is usable at once, before any GGUF export, and can be switched per
conversation (``set_adapter``) without reloading the base.
- loading maps the safetensors lazily, then evaluates them tensor by tensor, so ``load`` yields real
  progress and honours cancel;
- the chat template is the tokenizer's, rendered like the llama.cpp engine's (``engines.templates``:
  sandboxed, ChatML fallback with a notice) and tokenized as mlx-lm's trainer does (no added BOS);
- end-of-turn markers that are single tokens stop generation like EOS; longer ones stop as text;
- **prefix reuse**: as in the llama.cpp engine, the text and exact tokens of the last exchange are
  remembered, so the next prompt is tokenized only past them; its KV cache is kept and the next
  prompt evaluates only the tokens past the common prefix (the cache is trimmed to it). Changing
  the adapter drops both.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from macapp.core.engines.templates import ChatTemplate, RenderedPrompt
from macapp.core.errors import Cancelled, UserError
from macapp.core.progress import CancelToken, Progress

if TYPE_CHECKING:  # mlx and mlx-lm are imported when a model loads, not with this module
    import mlx.nn as nn
    from mlx_lm.tokenizer_utils import TokenizerWrapper

DEFAULT_CONTEXT = 4096
REPEAT_WINDOW = 64  # tokens the repeat penalty looks back over (llama.cpp's default)


def check_model_dir(path: Path) -> None:
    """Refuse early (and without touching the network) what mlx-lm could not load from disk."""
    if not path.is_dir():
        raise UserError(f"The MLX model folder is gone: {path}", hint="it was moved or deleted; pick it again")
    if not (path / "config.json").is_file() or not any(path.glob("*.safetensors")):
        raise UserError(f"{path.name} is not an MLX model folder (config.json and *.safetensors are needed)")


def check_adapter_dir(path: Path) -> None:
    if not (path / "adapter_config.json").is_file() or not (path / "adapters.safetensors").is_file():
        raise UserError(
            f"{path} is not an mlx-lm adapter folder (adapter_config.json and adapters.safetensors are needed)"
        )


def _unwrap_adapters(model) -> None:
    """Put back the base layers mlx-lm's LoRA/DoRA wrappers hold (``.linear`` / ``.embedding``)."""
    from mlx.utils import tree_unflatten

    restored = []
    for name, module in model.named_modules():
        kind = type(module).__name__
        if kind in ("LoRALinear", "DoRALinear", "LoRASwitchLinear"):
            restored.append((name, module.linear))
        elif kind in ("LoRAEmbedding", "DoRAEmbedding"):
            restored.append((name, module.embedding))
    if restored:
        model.update_modules(tree_unflatten(restored))


class MlxEngine:
    """One mlx-lm model (+ adapter). Use it from one thread at a time."""

    name = "mlx"
    capabilities = EngineCapabilities(adapters=True, tools=True)

    def __init__(
        self,
        model_dir: str | Path,
        adapter_dir: str | Path | None = None,
        *,
        model_id: str | None = None,
        n_ctx: int | None = None,
    ) -> None:
        self.path = Path(model_dir)
        self.adapter_dir = Path(adapter_dir) if adapter_dir else None
        self.model_id = model_id or str(model_dir)
        self.template: ChatTemplate | None = None
        self.template_notice: str | None = None
        self._requested_ctx = n_ctx
        self._n_ctx = n_ctx or DEFAULT_CONTEXT
        self._model: nn.Module | None = None
        self._tokenizer: TokenizerWrapper | None = None
        self._config: dict[str, Any] = {}
        self._adapter_type: str | None = None
        self._stop_strings: tuple[str, ...] = ()
        self._cache: list | None = None  # the KV cache of the last exchange and the tokens in it
        self._cache_tokens: list[int] = []
        self._history_text = ""  # the last prompt + answer text, and the exact tokens behind it
        self._history_tokens: list[int] = []

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def label(self) -> str:
        """The model folder's name."""
        return self.path.name

    @property
    def tokenizer(self):
        """mlx-lm's ``TokenizerWrapper`` (tests compare tokenizations through it)."""
        self._require()
        return self._tokenizer

    @property
    def model(self):
        """The mlx ``nn.Module`` (tests read logits through it)."""
        return self._require()

    def load(self, cancel: CancelToken | None = None) -> Iterator[Progress]:
        """Read the config and tokenizer, then the weights tensor by tensor (progress 0..1), then the adapter."""
        cancel = cancel or CancelToken()
        check_model_dir(self.path)
        if self.adapter_dir is not None:
            check_adapter_dir(self.adapter_dir)
        yield Progress("checking", 0, 1, f"Reading {self.path.name}")
        import mlx.core as mx
        from mlx.utils import tree_flatten
        from mlx_lm.utils import load_model, load_tokenizer

        try:
            model, config = load_model(self.path, lazy=True)
            tokenizer = load_tokenizer(self.path, eos_token_ids=config.get("eos_token_id"))
        except (ValueError, KeyError, FileNotFoundError, OSError) as exc:
            raise UserError(f"{self.path.name} could not be loaded: {exc}") from exc
        # mlx types tree_flatten as list or dict; a list of (key, value) unless given a dict destination
        arrays: list[mx.array] = [value for _, value in tree_flatten(model.parameters())]  # type: ignore[str-unpack,misc]
        total = sum(a.nbytes for a in arrays) or 1
        done = 0
        for array in arrays:
            if cancel.cancelled:
                raise Cancelled()
            mx.eval(array)
            done += array.nbytes
            yield Progress("loading", done, total, f"Loading {self.path.name}")
        self._model, self._tokenizer, self._config = model, tokenizer, config
        limit = int(config.get("max_position_embeddings") or DEFAULT_CONTEXT)
        self._n_ctx = min(self._requested_ctx, limit) if self._requested_ctx else limit
        self._setup_template(tokenizer)
        if self.adapter_dir is not None:
            yield Progress("adapter", 0, 1, f"Applying {self.adapter_dir.name}")
            try:
                self._apply_adapter(self.adapter_dir)
            except UserError:
                self.unload()
                raise
        model.eval()
        yield Progress("loading", 1, 1, f"Loaded {self.path.name}")

    def _setup_template(self, tok: TokenizerWrapper) -> None:
        source = tok.chat_template
        if isinstance(source, dict):  # named templates
            source = source.get("default") or next(iter(source.values()), None)
        self.template = template = ChatTemplate(
            source, bos_token=tok.bos_token or "", eos_token=tok.eos_token or "", name=self.path.name
        )
        stop_ids, texts = set(tok.eos_token_ids), []
        for marker in template.stop_strings:
            ids = tok.encode(marker, add_special_tokens=False)
            if len(ids) == 1:
                stop_ids.add(ids[0])
            else:
                texts.append(marker)
        tok.eos_token_ids = stop_ids
        self._stop_strings = tuple(texts)

    def use_adapter(self, adapter: AdapterFiles | None) -> None:
        """Answer with ``adapter`` (its mlx-lm folder) from the next message on; None: the base alone."""
        self.set_adapter(adapter.folder() if adapter else None)

    def set_adapter(self, adapter_dir: str | Path | None) -> None:
        """Run with ``adapter_dir`` (an mlx-lm adapter folder) or none; the base stays loaded.

        Before ``load`` it only records the choice, applied when the model loads.
        """
        new = Path(adapter_dir) if adapter_dir else None
        if self._model is None:
            self.adapter_dir = new
            return
        if new == self.adapter_dir and (new is None or self._adapter_type is not None):
            return
        if new is not None:
            check_adapter_dir(new)
        self._drop_cache()
        if self._adapter_type == "full":  # it replaced base weights: start from the files again
            from mlx_lm.utils import load_model

            self._model, _ = load_model(self.path)
        else:
            _unwrap_adapters(self._model)
        self._adapter_type, self.adapter_dir = None, None
        if new is not None:
            self._apply_adapter(new)
        self._model.eval()

    def _apply_adapter(self, adapter_dir: Path) -> None:
        import json

        from mlx_lm.utils import load_adapters

        try:
            kind = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8")).get(
                "fine_tune_type", "lora"
            )
            self._model = load_adapters(self._require(), str(adapter_dir))
        except (ValueError, KeyError, TypeError, OSError) as exc:
            _unwrap_adapters(self._model)
            raise UserError(
                f"the adapter {adapter_dir.name} does not fit {self.path.name}: {exc}",
                hint="use an adapter trained on this base model",
            ) from exc
        self._adapter_type, self.adapter_dir = str(kind), adapter_dir
        self._drop_cache()

    def unload(self) -> None:
        self._model = self._tokenizer = None
        self._adapter_type = None
        self._drop_cache()
        gc.collect()
        try:
            import mlx.core as mx

            mx.clear_cache()
        except (ImportError, AttributeError):
            pass

    def _drop_cache(self) -> None:
        self._cache, self._cache_tokens = None, []
        self._history_text, self._history_tokens = "", []

    def _require(self) -> nn.Module:
        if self._model is None:
            raise UserError("No model is loaded", hint="load a model first")
        return self._model

    def _require_tokenizer(self) -> TokenizerWrapper:
        self._require()
        assert self._tokenizer is not None, "set with the model"
        return self._tokenizer

    # -- tokens --------------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        return list(self._require_tokenizer().encode(text, add_special_tokens=False))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def render(self, messages: Sequence[ChatMessage], tools: Sequence[dict] | None = None) -> RenderedPrompt:
        self._require()
        assert self.template is not None, "set when the model loads"
        extra = {"tools": list(tools)} if tools else {}
        rendered = self.template.render(list(messages), add_generation_prompt=True, **extra)
        self.template_notice = rendered.notice
        return rendered

    def count_chat_tokens(self, messages: Sequence[ChatMessage], tools: Sequence[dict] | None = None) -> int:
        return len(self.tokenize(self.render(messages, tools).text))

    def _tokenize_prompt(self, text: str) -> list[int]:
        """Tokens for a whole prompt; past the last exchange only the new text is tokenized."""
        history = self._history_text
        if history and len(text) > len(history) and text.startswith(history):
            return self._history_tokens + self.tokenize(text[len(history) :])
        return self.tokenize(text)

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

        ``tools`` reach the chat template. MLX takes no grammar: ``constrained.stream_structured``
        validates its JSON and tool calls and retries a bounded number of times instead.
        """
        refuse_unsupported(self, grammar=grammar)
        text = self.render(messages, tools).text
        return (
            yield from self.generate_tokens(
                self._tokenize_prompt(text), sampling or SamplingSettings(), cancel, prompt_text=text
            )
        )

    def stream_completion(
        self, prompt: str, sampling: SamplingSettings | None = None, cancel: CancelToken | None = None
    ) -> Generator[GenerationChunk, None, GenerationResult]:
        """Continue raw ``prompt`` text (no chat template)."""
        return (
            yield from self.generate_tokens(
                self._tokenize_prompt(prompt), sampling or SamplingSettings(), cancel, prompt_text=prompt
            )
        )

    def _reusable_cache(self, tokens: list[int]) -> tuple[list, int]:
        """A KV cache holding the longest usable prefix of ``tokens``, and that prefix's length."""
        from mlx_lm.models.cache import can_trim_prompt_cache, make_prompt_cache, trim_prompt_cache

        cached = self._cache_tokens
        common = 0
        for a, b in zip(cached, tokens):
            if a != b:
                break
            common += 1
        common = min(common, len(tokens) - 1)  # at least one token must run to produce logits
        if self._cache is not None and common > 0 and can_trim_prompt_cache(self._cache):
            trim_prompt_cache(self._cache, len(cached) - common)
            return self._cache, common
        self._cache = make_prompt_cache(self._require())
        return self._cache, 0

    def generate_tokens(
        self,
        tokens: list[int],
        sampling: SamplingSettings,
        cancel: CancelToken | None = None,
        *,
        prompt_text: str | None = None,
    ) -> Generator[GenerationChunk, None, GenerationResult]:
        """The token loop over mlx-lm's ``stream_generate``; holds back text that may start a stop string.

        ``prompt_text`` is what ``tokens`` encode, remembered with the answer for the next prompt.
        """
        import mlx.core as mx
        from mlx_lm.generate import stream_generate
        from mlx_lm.sample_utils import make_logits_processors, make_sampler

        model = self._require()
        n_ctx = self._n_ctx
        if not tokens:
            raise UserError("The prompt is empty")
        if len(tokens) >= n_ctx:
            raise UserError(
                f"The prompt is {len(tokens)} tokens; the context window holds {n_ctx}",
                hint="start a new chat or shorten the message",
            )
        mx.random.seed(sampling.seed if sampling.seed is not None else random.getrandbits(31))
        sampler = make_sampler(
            temp=max(sampling.temperature, 0.0),
            top_p=sampling.top_p,
            min_p=sampling.min_p,
            top_k=max(sampling.top_k, 0),
        )
        penalty = sampling.repeat_penalty if sampling.repeat_penalty and sampling.repeat_penalty != 1.0 else None
        processors = make_logits_processors(repetition_penalty=penalty, repetition_context_size=REPEAT_WINDOW)
        room = n_ctx - len(tokens)
        limit = min(sampling.max_tokens, room) if sampling.max_tokens > 0 else room
        stops = tuple(s for s in (*sampling.stop, *self._stop_strings) if s)
        hold = max((len(s) for s in stops), default=1) - 1

        cache, cached = self._reusable_cache(tokens)
        self._cache_tokens, self._history_text, self._history_tokens = [], "", []  # recorded when the answer ends
        started = time.perf_counter()
        first_at = started
        text, emitted = "", 0
        fed: list[int] = []  # tokens sampled (end-of-turn included): what the cache went on to see
        generated = 0
        finish: FinishReason = "length"
        cut_by_stop_string = False
        steps = stream_generate(
            model,
            self._require_tokenizer(),
            mx.array(tokens[cached:]),
            max_tokens=limit,
            sampler=sampler,
            logits_processors=processors,
            prompt_cache=cache,
        )
        try:
            for step in steps:
                if not fed:
                    first_at = time.perf_counter()
                fed.append(step.token)
                if step.finish_reason == "stop":  # an end-of-turn token: not part of the answer
                    text += step.text
                    finish = "stop"
                else:
                    generated += 1
                    text += step.text
                if stops:
                    window = max(0, emitted - hold)
                    found = [i for i in (text.find(s, window) for s in stops) if i >= 0]
                    if found:
                        text, finish, cut_by_stop_string = text[: min(found)], "stop", True
                        break
                if finish == "stop":
                    break
                safe = len(text) - hold if stops else len(text)
                if safe > emitted:
                    yield GenerationChunk(text[emitted:safe], generated, time.perf_counter() - first_at)
                    emitted = safe
                if generated >= limit:
                    finish = "length" if 0 < sampling.max_tokens <= generated else "context"
                    break
                if cancel is not None and cancel.cancelled:
                    finish = "cancelled"
                    break
        except BaseException:
            self._drop_cache()
            raise
        finally:
            steps.close()
        if len(text) > emitted:
            yield GenerationChunk(text[emitted:], generated, time.perf_counter() - first_at)
        ended = time.perf_counter()
        seen = tokens + fed
        offset = getattr(cache[0], "offset", None) if cache else None
        if isinstance(offset, int) and 0 < offset <= len(seen):
            self._cache_tokens = seen[:offset]
        else:
            self._drop_cache()
        if prompt_text is not None and not cut_by_stop_string:
            self._history_text, self._history_tokens = prompt_text + text, tokens + fed[:generated]
        return GenerationResult(
            text=text,
            finish_reason=finish,
            prompt_tokens=len(tokens),
            prompt_eval_tokens=len(tokens) - cached,
            completion_tokens=generated,
            prompt_s=first_at - started,
            generation_s=ended - first_at,
        )
