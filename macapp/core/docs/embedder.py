"""Sentence embeddings from a GGUF embedding model run by llama.cpp (Metal on a Mac, CPU elsewhere).

The bundled model is all-MiniLM-L6-v2, built by ``make setup`` into ``resources/embedder/`` (an app
resource, not user data: an empty ``MACAPP_HOME`` still embeds offline). Its vectors match
sentence-transformers' (cosine > 0.9999). A user may pick another GGUF embedder in settings
(``Settings.embedder_path``); ``LlamaEmbedder.name`` includes a hash of the file's bytes, so
vectors of different models (or different builds) never share a collection.

Texts are packed many to a llama.cpp batch (one sequence each, shortest first): on CPU that
embeds short texts ~1.4x faster than one call per text, and far faster when other work competes
for the cores (each call pays llama.cpp's thread synchronisation). An embedder is used by one thread at
a time (see ``load_embedder``). A ``CancelToken`` passed to ``embed`` aborts llama.cpp inside its graph
(checked after every node), so a cancel lands within milliseconds even when one batch takes seconds.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from macapp.core.digest import file_sha256
from macapp.core.errors import Cancelled, UserError
from macapp.core.progress import CancelToken

BUNDLED_NAME = "all-MiniLM-L6-v2.gguf"
MAX_TOKENS_KEY = "orchard.embedder.max_tokens"  # written by models/embedder/convert_minilm.py
# Tokens per llama.cpp batch. Every token of a batch attends over the whole batch (masked), so on
# CPU bigger batches stop paying: with flash attention, 256-512 tokens embed short texts ~1.4x
# faster than one call per text; without it, batching is slower than no batching at all.
BATCH_TOKENS = 512
MAX_SEQUENCE = 8192  # the longest input read from a user's embedder, whatever its context claims
_POOLING_MEAN = 1
_SEQUENCE_POOLING = {1, 2, 3}  # llama_pooling_type MEAN, CLS, LAST (NONE 0 and RANK 4 make no sentence vector)


def bundled_embedder_path() -> Path:
    """Where the app's own embedder lives: inside the frozen app, else ``resources/`` of the checkout."""
    from macapp.core.paths import app_root

    return app_root() / "resources" / "embedder" / BUNDLED_NAME


def _check_embedding_gguf(path: Path) -> tuple[int, int]:
    """Refuse, before llama.cpp sees it, a file that is not a usable embedding GGUF.

    Returns the pooling type to run with and the longest input to read, in tokens.
    """
    from macapp.core.engines.llama_engine import check_loadable
    from macapp.core.models.facts import facts_from_header
    from macapp.core.models.gguf_header import read_header_from_path

    header = read_header_from_path(path)  # GGUFError (a UserError) for anything unreadable
    facts = facts_from_header(header, str(path), path.name)
    check_loadable(facts)
    arch = header.get("general.architecture")
    pooling = header.get(f"{arch}.pooling_type")
    if not isinstance(pooling, int) or pooling not in _SEQUENCE_POOLING:
        if header.get(f"{arch}.attention.causal") is False:
            pooling = _POOLING_MEAN  # an encoder converted without a pooling key: mean is the common choice
        else:
            raise UserError(
                f"{path.name} is not an embedding model",
                hint="it declares no sentence pooling; pick a GGUF made for embeddings",
            )
    limit = header.get(MAX_TOKENS_KEY)  # our converter records MiniLM's trained 256 (it has 512 positions)
    if not isinstance(limit, int) or limit < 2:
        limit = facts.context_length
    return pooling, min(limit, facts.context_length, MAX_SEQUENCE)


class LlamaEmbedder:
    """An ``EmbeddingModel`` over a GGUF embedder. Safe to share between threads: calls are serialised by a
    lock (the window's indexing and the chat's retrieval use the one cached instance).

    Args:
        path: the .gguf file.
        batch_tokens: tokens per llama.cpp batch (several texts share one).
        n_threads: CPU threads (default: the physical cores).
    """

    def __init__(self, path: str | Path, *, batch_tokens: int = BATCH_TOKENS, n_threads: int | None = None) -> None:
        from macapp.core import hardware
        from macapp.core.engines import llama_log
        from macapp.core.engines.llama_engine import default_threads
        from macapp.core.engines.llama_loader import open_llama
        from macapp.core.models.estimate import RuntimeSettings

        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise UserError(f"The embedding model is missing: {self.path}", hint="pick it again in settings")
        pooling, self.max_tokens = _check_embedding_gguf(self.path)
        batch_tokens = max(batch_tokens, self.max_tokens)  # a whole input must fit one batch
        threads = n_threads or default_threads()
        settings = RuntimeSettings(
            n_ctx=batch_tokens,
            n_batch=batch_tokens,
            n_ubatch=batch_tokens,
            flash_attn=True,
            backend=hardware.default_backend(),
        )
        with llama_log.capture() as lines:
            try:
                self._llm = open_llama(
                    str(self.path),
                    settings,
                    verbose=False,
                    embedding=True,
                    pooling_type=pooling,
                    n_threads=threads,
                    n_threads_batch=threads,
                )
            except Exception as exc:  # noqa: BLE001 - llama-cpp-python says only "failed to load"
                reason = llama_log.load_failure_reason(list(lines)) or str(exc)
                raise UserError(f"{self.path.name} could not be loaded as an embedder: {reason}") from exc
        llm = self._llm
        self._batch_tokens = batch_tokens
        self._n_seq_max = max(1, int(llm.context_params.n_seq_max))
        self.dim = int(llm.n_embd())
        import llama_cpp

        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self._keeps_last = bool(llama_cpp.llama_vocab_get_add_sep(vocab) or llama_cpp.llama_vocab_get_add_eos(vocab))
        base = str(llm.metadata.get("general.name") or self.path.stem).strip() or self.path.stem
        self.name = f"{base}@{file_sha256(self.path)[:12]}"
        self._lock = threading.Lock()

    # -- EmbeddingModel ----------------------------------------------------------------------

    def tokens(self, text: str) -> list[int]:
        """The model's tokens for ``text``, with its own start/end markers (e.g. [CLS] … [SEP])."""
        with self._lock:
            return self._llm.tokenize(text.encode("utf-8", "replace"), add_bos=True, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokens(text))

    def _truncated(self, text: str) -> list[int]:
        tokens = self.tokens(text)
        if not tokens:  # "" with a vocabulary that adds no markers: a sequence needs one token
            tokens = [max(self._llm.token_eos(), 0)]
        if len(tokens) <= self.max_tokens:
            return tokens
        if self._keeps_last:  # keep the closing [SEP]/EOS, as sentence-transformers does
            return tokens[: self.max_tokens - 1] + tokens[-1:]
        return tokens[: self.max_tokens]

    def embed(self, texts: Sequence[str], cancel: CancelToken | None = None) -> np.ndarray:
        """Shape (len(texts), dim), float32, rows L2-normalised; longer texts read their first ``max_tokens``.

        ``cancel`` raises ``Cancelled`` within one step of llama.cpp's graph (the model stays usable).
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encoded = [self._truncated(text) for text in texts]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))  # similar lengths share a batch
        batch: list[int] = []
        used = 0
        with self._lock, self._aborted_by(cancel):
            for i in order:
                if batch and (used + len(encoded[i]) > self._batch_tokens or len(batch) >= self._n_seq_max):
                    self._run(batch, encoded, out, cancel)
                    batch, used = [], 0
                batch.append(i)
                used += len(encoded[i])
            self._run(batch, encoded, out, cancel)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1)

    @contextmanager
    def _aborted_by(self, cancel: CancelToken | None) -> Iterator[None]:
        """While inside, llama.cpp asks ``cancel`` after each graph node and aborts the batch when it is set
        (installed per call, under the lock: another caller's embedding is never aborted by this token)."""
        if cancel is None:
            yield
            return
        import llama_cpp

        def aborted(_data) -> bool:
            try:
                return cancel.cancelled
            except BaseException:  # noqa: BLE001 - a KeyboardInterrupt landing here can't propagate: stop instead
                cancel.cancel()
                return True

        callback = llama_cpp.ggml_abort_callback(aborted)  # referenced here until llama.cpp lets go of it
        llama_cpp.llama_set_abort_callback(self._llm._ctx.ctx, callback, None)
        try:
            yield
        finally:
            llama_cpp.llama_set_abort_callback(self._llm._ctx.ctx, llama_cpp.ggml_abort_callback(), None)

    def _run(self, rows: list[int], encoded: list[list[int]], out: np.ndarray, cancel: CancelToken | None) -> None:
        """One llama.cpp batch, one sequence per row (the path ``Llama.embed`` takes, minus its
        truncation that drops [SEP] and its lists of Python floats)."""
        import llama_cpp

        from macapp.core.engines import llama_log

        if cancel is not None:
            cancel.raise_if_cancelled()
        llm = self._llm
        llm._batch.reset()
        for seq_id, row in enumerate(rows):
            llm._batch.add_sequence(encoded[row], seq_id, True)
        llm._ctx.kv_cache_clear()  # causal embedders keep a KV cache; encoders have none
        with llama_log.capture() as lines:
            try:
                llm._ctx.decode(llm._batch)
            except RuntimeError as exc:
                if cancel is not None and cancel.cancelled:  # aborted by the callback (llama_decode returns 2)
                    llm._batch.reset()
                    raise Cancelled() from exc
                reason = llama_log.load_failure_reason(list(lines)) or str(exc)
                raise UserError(f"{self.path.name} failed to embed: {reason}") from exc
        for seq_id, row in enumerate(rows):
            ptr = llama_cpp.llama_get_embeddings_seq(llm._ctx.ctx, seq_id)
            if not ptr:
                raise UserError(f"{self.path.name} produced no sentence embedding", hint="pick an embedding model")
            out[row] = np.ctypeslib.as_array(ptr, shape=(self.dim,))
        llm._batch.reset()

    def close(self) -> None:
        with self._lock:
            self._llm.close()


_loaded: dict[tuple[str, int, int], LlamaEmbedder] = {}
_load_lock = threading.Lock()


@atexit.register
def _close_loaded() -> None:
    """Free cached embedders while llama.cpp is still there (its finalizers fail during interpreter teardown)."""
    with _load_lock:
        for embedder in _loaded.values():
            embedder.close()
        _loaded.clear()


def load_embedder(path: str | None = None) -> LlamaEmbedder:
    """The embedder at ``path`` (None: the user's choice in settings, else the bundled one), cached.

    Loading costs; one instance per file (and version of it) is kept for the process. The instance
    is shared, so callers serialise its use (one thread at a time, like any loaded model).
    """
    if path is None:
        from macapp.core.settings import Settings

        path = Settings.load().embedder_path or None
    if path is None:
        target = bundled_embedder_path()
        if not target.is_file():
            raise UserError("The bundled embedding model is not built", hint="run `make setup` in the project folder")
    else:
        target = Path(path).expanduser()
        if not target.is_file():
            raise UserError(f"The embedding model is missing: {target}", hint="pick it again in settings")
    stat = target.stat()
    key = (str(target.resolve()), stat.st_size, stat.st_mtime_ns)
    with _load_lock:
        embedder = _loaded.get(key)
        if embedder is None:
            for stale in [k for k in _loaded if k[0] == key[0]]:  # the file was rebuilt or replaced
                del _loaded[stale]  # freed once its last user lets go
            embedder = _loaded[key] = LlamaEmbedder(target)
        return embedder
