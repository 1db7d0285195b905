"""Open a GGUF with llama-cpp-python using the same ``RuntimeSettings`` the memory estimate uses.

One place decides how llama.cpp is configured, so what the estimate assumes is what runs:
context (padded by llama.cpp to 256), batch sizes, flash attention, KV type, GPU layers.

Off Apple Silicon, llama.cpp's "extra" CPU buffer types (weight repacking, Intel AMX) are turned
off: ggml's AMX matmul kernel crashes the process (SIGSEGV) on q8_0 weights on the x86 VMs we
test on, and a Mac has no such path. llama-cpp-python exposes no argument for it, so the model
defaults are adjusted while the model loads.
"""

from __future__ import annotations

import contextlib
import platform
import threading
from collections.abc import Callable, Iterator
from typing import Any

from macapp.core.models.estimate import RuntimeSettings

_PATCH_LOCK = threading.Lock()
GGML_KV_TYPE_IDS = {"f16": 1, "q8_0": 8, "f32": 0}  # GGML_TYPE_* ids of the KV cache types


def use_extra_buffer_types() -> bool:
    return platform.system() == "Darwin" and platform.machine() == "arm64"


ProgressFn = Callable[[float], bool]  # fraction loaded -> keep going?


@contextlib.contextmanager
def _model_defaults(extra_bufts: bool, progress: ProgressFn | None = None) -> Iterator[None]:
    import llama_cpp.llama_cpp as low

    original = low.llama_model_default_params
    callback = None
    if progress is not None:  # a C callback: keep it referenced until loading ends
        callback = low.llama_progress_callback(lambda fraction, _user: bool(progress(float(fraction))))

    def defaults() -> Any:
        params = original()
        params.use_extra_bufts = extra_bufts
        if callback is not None:
            params.progress_callback = callback
        return params

    with _PATCH_LOCK:
        low.llama_model_default_params = defaults
        try:
            yield
        finally:
            low.llama_model_default_params = original


@contextlib.contextmanager
def _no_fd_redirect() -> Iterator[None]:
    """Stop llama-cpp-python from pointing the process's stdout/stderr at /dev/null while it loads.

    With ``verbose=False`` it dup2()s file descriptors 1 and 2 for the whole process, which hides
    other threads' output (a CLI progress bar); llama.cpp's log goes to ``llama_log`` instead.
    """
    import llama_cpp._internals as internals
    import llama_cpp.llama as high

    # Monkeypatching llama-cpp-python's class on purpose (mypy rightly refuses assigning to a class).
    saved = internals.suppress_stdout_stderr, high.suppress_stdout_stderr
    internals.suppress_stdout_stderr = high.suppress_stdout_stderr = _no_suppress  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        internals.suppress_stdout_stderr, high.suppress_stdout_stderr = saved  # type: ignore[misc]


def _no_suppress(disable: bool = True) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext()


class _UnusedChatFormatter:
    """Stands in for llama-cpp-python's template compiler while a model loads.

    It compiles every chat template in the file at load time and a broken one fails the whole
    load; Orchard renders templates itself (``core.engines.templates``), sandboxed, with a fallback.
    """

    def __init__(self, **_kwargs: Any) -> None:
        pass

    def to_chat_handler(self) -> None:
        return None


@contextlib.contextmanager
def _no_template_compile() -> Iterator[None]:
    import llama_cpp.llama_chat_format as formats

    # Monkeypatching llama-cpp-python's class on purpose (mypy rightly refuses assigning to a class).
    saved = formats.Jinja2ChatFormatter
    formats.Jinja2ChatFormatter = _UnusedChatFormatter  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        formats.Jinja2ChatFormatter = saved  # type: ignore[misc]


def llama_kwargs(settings: RuntimeSettings) -> dict[str, Any]:
    """Keyword arguments for ``llama_cpp.Llama`` that match ``settings``."""
    return {
        "n_ctx": settings.n_ctx,
        "n_batch": settings.n_batch,
        "n_ubatch": settings.n_ubatch,
        "flash_attn": settings.flash_attn,
        "type_k": GGML_KV_TYPE_IDS[settings.kv_type],
        "type_v": GGML_KV_TYPE_IDS[settings.kv_type],
        "swa_full": settings.swa_full,
        "n_gpu_layers": settings.gpu_layers if settings.backend == "metal" else 0,
    }


def open_llama(path: str, settings: RuntimeSettings, progress: ProgressFn | None = None, **extra: Any):
    """Load ``path`` with llama.cpp configured as ``settings`` says (``extra`` passes through).

    ``progress(fraction)`` is called from the loading thread; returning False aborts the load.
    Pass ``verbose=False`` to keep llama-cpp-python quiet without redirecting the process's output.
    llama-cpp-python's own chat handlers are not built (``Llama.create_chat_completion`` is unused).
    """
    from llama_cpp import Llama

    kwargs = llama_kwargs(settings) | extra
    redirect_guard = contextlib.nullcontext() if kwargs.get("verbose", True) else _no_fd_redirect()
    with _model_defaults(use_extra_buffer_types(), progress), redirect_guard, _no_template_compile():
        return Llama(model_path=str(path), **kwargs)
