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
from collections.abc import Iterator
from typing import Any

from macapp.core.models.estimate import RuntimeSettings

_PATCH_LOCK = threading.Lock()
KV_TYPES = {"f16": 1, "q8_0": 8, "f32": 0}  # GGML_TYPE_* ids


def use_extra_buffer_types() -> bool:
    return platform.system() == "Darwin" and platform.machine() == "arm64"


@contextlib.contextmanager
def _model_defaults(extra_bufts: bool) -> Iterator[None]:
    import llama_cpp.llama_cpp as low

    original = low.llama_model_default_params

    def defaults() -> Any:
        params = original()
        params.use_extra_bufts = extra_bufts
        return params

    with _PATCH_LOCK:
        low.llama_model_default_params = defaults
        try:
            yield
        finally:
            low.llama_model_default_params = original


def llama_kwargs(settings: RuntimeSettings) -> dict[str, Any]:
    """Keyword arguments for ``llama_cpp.Llama`` that match ``settings``."""
    return {
        "n_ctx": settings.n_ctx,
        "n_batch": settings.n_batch,
        "n_ubatch": settings.n_ubatch,
        "flash_attn": settings.flash_attn,
        "type_k": KV_TYPES[settings.kv_type],
        "type_v": KV_TYPES[settings.kv_type],
        "swa_full": settings.swa_full,
        "n_gpu_layers": settings.gpu_layers if settings.backend == "metal" else 0,
    }


def open_llama(path: str, settings: RuntimeSettings, **extra: Any):
    """Load ``path`` with llama.cpp configured as ``settings`` says (``extra`` passes through)."""
    from llama_cpp import Llama

    kwargs = llama_kwargs(settings) | extra
    with _model_defaults(use_extra_buffer_types()):
        return Llama(model_path=str(path), **kwargs)
