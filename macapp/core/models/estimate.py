"""How much memory a GGUF model needs at a given context, and whether it fits this Mac.

total = weights + KV cache + compute + overhead, each modelled on what llama.cpp (the version
pinned in pyproject) really allocates:

- weights: the tensor bytes in the file (Metal maps the whole file; nothing is left on disk).
- KV cache: per layer, cells x KV heads x (key + value length) x element size, where cells is
  n_ctx padded to 256, or the sliding window (+ ubatch) for SWA layers.
- compute: the graph's scratch buffer plus the CPU work buffer. On CPU this is what the process
  really touches (llama.cpp reserves logits for a whole ubatch but a chat computes one row); on
  Metal it is the buffer llama.cpp allocates. Coefficients come from measurements of llama.cpp
  on generated models (bench/estimate_accuracy.py checks them: max error within 5%).
- overhead: llama.cpp's tokenizer tables, graph metadata, thread pool, allocator slack.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from macapp.core.models.facts import ModelFacts

MiB = 1024 * 1024
CTX_PAD = 256  # llama.cpp pads n_ctx (and SWA cache sizes) to 256 cells
KV_BYTES_PER_ELEMENT = {"f16": 2.0, "q8_0": 34 / 32, "f32": 4.0, "q4_0": 18 / 32}
KV_TYPES = ("f16", "q8_0")  # the KV cache types the window and the CLI offer
TIGHT_MARGIN = 0.10  # "tight" = within 10% of the budget

# Calibrated on llama.cpp CPU runs (see bench/estimate_accuracy.py and the issue note).
_OVERHEAD_BASE = 2.4 * MiB
_OVERHEAD_PER_TOKEN = 165  # vocab tables, per token in the vocabulary
_OVERHEAD_PER_MERGE = 120  # BPE merge ranks
_OVERHEAD_PER_CELL = 2450  # per context cell up to 1024 (sampler/batch state)
_COMPUTE_BASE = 3.9 * MiB
_FFN_BUFFERS = 3.07  # live [n_ff, n_ubatch] f32 buffers in the FFN phase (gate, up, product)
_EMBD_BUFFERS = 3.03  # live [n_embd, n_ubatch] f32 buffers
_ATTN_EMBD_BUFFERS = 4.25  # [n_embd, n_ubatch] buffers live beside the KQ matrix (no flash attn)
_RESERVE_ATTN_EMBD_BUFFERS = 6.25  # the same in llama.cpp's reserved (logged) buffer
# ggml converts a matmul's activations to the weights' dot-product type in one shared work buffer:
# bytes per element of that type (q8_0 for legacy quants, q8_K for k- and i-quants; none for f32).
_VEC_DOT_BYTES = {
    "F32": 0.0,
    "F16": 2.0,
    "BF16": 2.0,
    "Q4_0": 34 / 32,
    "Q5_0": 34 / 32,
    "Q8_0": 34 / 32,
    "IQ4_NL": 34 / 32,
    "MXFP4": 34 / 32,
    "Q4_1": 36 / 32,
    "Q5_1": 36 / 32,
}
_VEC_DOT_DEFAULT = 292 / 256  # q8_K


@dataclass(frozen=True)
class RuntimeSettings:
    """How the engine will run the model; the estimate and the engine share these."""

    n_ctx: int = 8192
    n_batch: int = 512
    n_ubatch: int = 512
    kv_type: str = "f16"  # f16 | q8_0
    flash_attn: bool = True
    swa_full: bool = False
    gpu_layers: int = -1  # -1 = all layers on the GPU (Metal); ignored on CPU
    backend: str = "cpu"  # "metal" on Apple Silicon, "cpu" elsewhere


@dataclass(frozen=True)
class MemoryEstimate:
    """The estimate (bytes). JSON keys match ARCHITECTURE.md's ``estimate`` contract."""

    n_ctx: int
    weights_bytes: int
    kv_cache_bytes: int
    compute_bytes: int
    overhead_bytes: int
    total_bytes: int
    gpu_bytes: int  # the part that must fit Metal's working set (== total on full offload)
    budget_bytes: int | None
    verdict: str | None  # fits | tight | too_big (None without a budget)
    max_ctx_that_fits: int | None
    kv_type: str
    flash_attn: bool
    backend: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def fraction_of_budget(self) -> float | None:
        return self.gpu_bytes / self.budget_bytes if self.budget_bytes else None


def padded_ctx(n_ctx: int) -> int:
    return max(CTX_PAD, -(-n_ctx // CTX_PAD) * CTX_PAD)


def kv_cache_bytes(facts: ModelFacts, settings: RuntimeSettings, layers: range | None = None) -> int:
    """KV cache bytes for ``layers`` (default all): exact for llama.cpp's unified cache."""
    if settings.kv_type not in KV_BYTES_PER_ELEMENT:
        raise ValueError(f"unknown KV cache type {settings.kv_type!r}")
    element = KV_BYTES_PER_ELEMENT[settings.kv_type]
    cells = padded_ctx(settings.n_ctx)
    swa_cells = cells
    if facts.sliding_window and not settings.swa_full:
        swa_cells = min(cells, padded_ctx(facts.sliding_window + settings.n_ubatch))
    total = 0.0
    for il in layers if layers is not None else range(facts.n_layer):
        n_cells = swa_cells if facts.swa_layers[il] else cells
        total += n_cells * facts.n_head_kv_per_layer[il] * (facts.key_length + facts.value_length) * element
    return int(total)


def _ffn_width(facts: ModelFacts) -> int:
    return facts.n_ff * max(1, facts.n_expert_used) if facts.n_expert else facts.n_ff


def compute_bytes(facts: ModelFacts, settings: RuntimeSettings) -> int:
    """Compute scratch + work buffer for one ubatch attending to the full context."""
    t = min(settings.n_ubatch, padded_ctx(settings.n_ctx))
    k = padded_ctx(settings.n_ctx)
    et = facts.n_embd * t * 4
    ft = _ffn_width(facts) * t * 4
    h = max(1, facts.n_head)
    vec_dot = max((_VEC_DOT_BYTES.get(name, _VEC_DOT_DEFAULT) for name in facts.tensor_types), default=0.0)
    work = t * max(facts.n_embd, _ffn_width(facts)) * vec_dot
    if settings.backend == "metal":
        # Metal allocates the whole reserved buffer: the largest phase of the worst-case graph,
        # including logits for a full ubatch.
        mask: float = k * t * (2 if settings.flash_attn else 4)
        logits = facts.vocab_size * t * 4 + 2 * et
        ffn = _FFN_BUFFERS * ft + 4 * et + mask
        attn = mask + (4 * et if settings.flash_attn else k * t * 4 * h + _RESERVE_ATTN_EMBD_BUFFERS * et)
        return int(max(logits, ffn, attn))
    if settings.flash_attn:
        mask = k * t * 2 * 1.19
        return int(_COMPUTE_BASE + _EMBD_BUFFERS * et + _FFN_BUFFERS * ft + mask + work)
    # KQ (f32) + f32 mask + K and V of this ubatch; the f16 copy of KQ goes to the shared work buffer
    kv_cur = 2 * max(facts.n_head_kv_per_layer or [facts.n_head_kv]) * facts.key_length * t * 4
    attn = k * t * (4 * h + 4) + _ATTN_EMBD_BUFFERS * et + kv_cur
    ffn = _FFN_BUFFERS * ft + _EMBD_BUFFERS * et + k * t * 4
    return int(_COMPUTE_BASE + max(attn, ffn) + max(work, k * t * h * 2))


def overhead_bytes(facts: ModelFacts, settings: RuntimeSettings) -> int:
    return int(
        _OVERHEAD_BASE
        + _OVERHEAD_PER_TOKEN * facts.vocab_size
        + _OVERHEAD_PER_MERGE * facts.n_merges
        + _OVERHEAD_PER_CELL * min(padded_ctx(settings.n_ctx), 1024)
    )


def _gpu_share(facts: ModelFacts, settings: RuntimeSettings, total: int, compute: int) -> int:
    """Bytes on the GPU: everything on full offload (and on CPU, where the budget is RAM);
    with ``gpu_layers`` on Metal, the last layers' weights and KV plus the compute buffer
    (llama.cpp offloads the last layers first)."""
    if settings.backend != "metal" or settings.gpu_layers < 0 or settings.gpu_layers > facts.n_layer:
        return total
    layers = range(facts.n_layer - settings.gpu_layers, facts.n_layer)
    layer_weights = sum(facts.layer_bytes[i] for i in layers)
    return layer_weights + kv_cache_bytes(facts, settings, layers) + (compute if settings.gpu_layers else 0)


def _needs(facts: ModelFacts, settings: RuntimeSettings) -> tuple[int, int, int, int, int, int]:
    """(weights, kv, compute, overhead, total, gpu) in bytes."""
    weights = facts.weights_bytes
    kv = kv_cache_bytes(facts, settings)
    compute = compute_bytes(facts, settings)
    overhead = overhead_bytes(facts, settings)
    total = weights + kv + compute + overhead
    return weights, kv, compute, overhead, total, _gpu_share(facts, settings, total, compute)


def verdict_for(need: int, budget: int) -> str:
    if need > budget:
        return "too_big"
    if need > budget * (1 - TIGHT_MARGIN):
        return "tight"
    return "fits"


def estimate_memory(
    facts: ModelFacts, settings: RuntimeSettings | None = None, budget: int | None = None
) -> MemoryEstimate:
    """Estimate memory for ``facts`` run with ``settings``; with a budget, say whether it fits.

    Args:
        facts: the model's header facts.
        settings: context length, KV type, flash attention, GPU layers, backend.
        budget: bytes available to the model (``hardware.detect().budget_bytes``), or None.
    """
    settings = settings or RuntimeSettings(n_ctx=min(8192, facts.context_length))
    if settings.n_ctx <= 0:
        raise ValueError("context length must be positive")
    weights, kv, compute, overhead, total, gpu = _needs(facts, settings)
    verdict = verdict_for(gpu, budget) if budget is not None else None
    max_ctx = max_ctx_that_fits(facts, settings, budget) if budget is not None else None
    return MemoryEstimate(
        n_ctx=padded_ctx(settings.n_ctx),
        weights_bytes=weights,
        kv_cache_bytes=kv,
        compute_bytes=compute,
        overhead_bytes=overhead,
        total_bytes=total,
        gpu_bytes=gpu,
        budget_bytes=budget,
        verdict=verdict,
        max_ctx_that_fits=max_ctx,
        kv_type=settings.kv_type,
        flash_attn=settings.flash_attn,
        backend=settings.backend,
    )


def max_ctx_that_fits(facts: ModelFacts, settings: RuntimeSettings, budget: int) -> int:
    """The largest context (a multiple of 256, at most the trained length) that fits; 0 if none."""

    def need(ctx: int) -> int:
        return _needs(facts, replace(settings, n_ctx=ctx))[-1]

    lo, hi = 0, max(1, facts.context_length // CTX_PAD)  # in units of 256 cells
    if need(CTX_PAD) > budget:
        return 0
    lo = 1
    while lo < hi:  # need() grows with ctx: binary search the last unit that fits
        mid = (lo + hi + 1) // 2
        if need(mid * CTX_PAD) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return min(lo * CTX_PAD, facts.context_length)
