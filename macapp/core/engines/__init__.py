"""Inference engines behind one protocol (``base.Engine``): llama.cpp, MLX and remote servers.

``open_engine`` turns what a user picked (a path or library id, a context length) into an engine
configured the way the memory estimate assumes, and refuses up front a model that won't fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from macapp.core.engines.base import AdapterFiles, Engine
from macapp.core.errors import UserError
from macapp.core.models.estimate import MemoryEstimate, RuntimeSettings


@dataclass(frozen=True)
class LoadPlan:
    """The file, how it will run, and the estimate that says it fits."""

    path: Path
    runtime: RuntimeSettings
    estimate: MemoryEstimate


def plan_load(
    ref: str,
    *,
    n_ctx: int | None = None,
    kv_type: str | None = None,
    flash_attn: bool = True,
    budget: int | None = None,
    check_memory: bool = True,
) -> LoadPlan:
    """Resolve ``ref`` and choose runtime settings: context = ``n_ctx`` or the user's default, within the model's.

    Raises ``UserError`` when the model is too big for ``budget`` (this Mac's, by default), naming
    the largest context that would fit.
    """
    from macapp.core import hardware
    from macapp.core.models.estimate import estimate_memory
    from macapp.core.models.library import model_facts, resolve_model
    from macapp.core.settings import Settings

    settings = Settings.load()
    path = resolve_model(ref)
    facts = model_facts(path)
    ctx = n_ctx or settings.default_ctx
    if ctx <= 0:
        raise UserError(f"the context length must be positive (got {ctx})")
    runtime = RuntimeSettings(
        n_ctx=min(ctx, facts.context_length),
        kv_type=kv_type or settings.kv_type,
        flash_attn=flash_attn,
        backend=hardware.default_backend(),
    )
    if budget is None:
        budget = hardware.detect().budget_bytes
    est = estimate_memory(facts, runtime, budget)
    if check_memory and est.verdict == "too_big":
        from macapp.core.units import format_bytes

        hint = (
            f"the largest context that fits is {est.max_ctx_that_fits:,} tokens"
            if est.max_ctx_that_fits
            else "pick a smaller model or a smaller quantization"
        )
        raise UserError(
            f"{path.name} needs {format_bytes(est.gpu_bytes)} at {runtime.n_ctx:,} tokens of context; "
            f"{hardware.machine_noun()} can give it {format_bytes(budget)}",
            hint=hint,
        )
    return LoadPlan(path, runtime, est)


def cpu_threads(asked: int | None = None) -> int | None:
    """llama.cpp's CPU threads: ``asked`` (``--threads``), else the user's setting, else None (automatic)."""
    if asked:
        return asked
    from macapp.core.settings import Settings

    return Settings.load().cpu_threads or None


def open_engine(
    ref: str, *, adapter: AdapterFiles | None = None, n_threads: int | None = None, **plan_options
) -> Engine:
    """An unloaded engine for ``ref`` (call ``load()`` on it); options as for ``plan_load``. The one place
    an engine is chosen: the CLI, the server and the window all open theirs here.

    ``ref`` is a GGUF (llama.cpp), an mlx-lm model folder (``MlxEngine``) or ``remote:NAME/MODEL``.
    ``adapter`` is a tuned adapter (``tuning.adapters.engine_adapter`` resolves a name or folder into
    one); llama.cpp gets it as a GGUF LoRA, MLX uses its folder as it is. ``n_threads`` is llama.cpp's CPU
    threads (None: its default; the window leaves a core to the GUI on the CPU backend).
    """
    if ref.startswith("remote:"):  # a model on another server: engines/remote.py
        from macapp.core.engines.remote import open_remote

        if adapter:
            raise UserError("A remote model can't take a local adapter")
        return open_remote(ref, **plan_options)
    folder = Path(ref).expanduser()
    if folder.is_dir() and (folder / "config.json").is_file():
        from macapp.core.engines.mlx_engine import MlxEngine

        return MlxEngine(folder, adapter.folder() if adapter else None, model_id=ref, n_ctx=plan_options.get("n_ctx"))
    from macapp.core.engines.llama_engine import LlamaCppEngine

    plan = plan_load(ref, **plan_options)
    lora = adapter.gguf_lora() if adapter else None
    return LlamaCppEngine(plan.path, plan.runtime, model_id=ref, n_threads=n_threads, adapter=lora)
