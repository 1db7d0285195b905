"""The training child process: ``python -m macapp.core.tuning.runner RUN.json``.

It runs mlx-lm's tuner (``linear_to_lora_layers`` + ``train``) as ``mlx_lm lora`` does and writes
one JSON object per line on stdout, each with an ``"event"``:

- ``start``: ``iteration`` (where this run starts), ``iters``, ``trainable_parameters``,
  ``total_parameters``, ``train_examples``, ``valid_examples``
- ``train``: ``iteration``, ``train_loss``, ``learning_rate``, ``tokens_per_second``,
  ``iterations_per_second``, ``trained_tokens``, ``peak_memory_bytes``
- ``val``: ``iteration``, ``val_loss``, ``val_time``
- ``checkpoint``: ``iteration``, ``path`` (also copied to ``adapters.safetensors``)
- ``done``: ``iteration``, ``adapter_file``, ``peak_memory_bytes``
- ``error``: ``kind`` (``oom`` | ``model`` | ``data`` | ``internal``), ``message``

Everything else the libraries print goes to stderr. Iterations are absolute: a resumed run starts at
the checkpoint's iteration. A checkpoint is written atomically (temporary file + rename), so killing
this process at any moment leaves the previous one intact; ``checkpoint.json`` names the latest.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

_PROTOCOL = sys.stdout


def emit(event: str, **fields: Any) -> None:
    _PROTOCOL.write(json.dumps({"event": event, **fields}) + "\n")
    _PROTOCOL.flush()


def _take_stdout() -> None:
    """Keep the real stdout for the protocol; point fd 1 (and ``sys.stdout``) at stderr for everyone else."""
    global _PROTOCOL
    _PROTOCOL = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr


def save_checkpoint(model: Any, adapter_dir: Path, iteration: int) -> Path:
    """Write the trainable weights as ``checkpoints/NNNNNNN_adapters.safetensors`` and ``adapters.safetensors``."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    weights = dict(tree_flatten(model.trainable_parameters()))
    folder = adapter_dir / "checkpoints"
    folder.mkdir(exist_ok=True)
    path = folder / f"{iteration:07d}_adapters.safetensors"
    for target in (path, adapter_dir / "adapters.safetensors"):
        tmp = target.with_name(f".partial-{target.name}")
        mx.save_safetensors(str(tmp), weights)
        os.replace(tmp, target)
    marker = adapter_dir / ".checkpoint.json.partial"
    marker.write_text(json.dumps({"iteration": iteration, "file": str(path.relative_to(adapter_dir))}))
    os.replace(marker, adapter_dir / "checkpoint.json")
    for old in folder.glob("*_adapters.safetensors"):
        if old != path:
            old.unlink(missing_ok=True)
    return path


def _callback(model: Any, run: dict[str, Any]):
    from mlx_lm.tuner.callbacks import TrainingCallback

    start, adapter_dir, every = run["start_iteration"], Path(run["adapter_dir"]), run["save_every"]

    class JsonLines(TrainingCallback):
        last_saved = start

        def on_train_loss_report(self, info: dict) -> None:
            iteration = start + info["iteration"]
            emit(
                "train",
                iteration=iteration,
                train_loss=info["train_loss"],
                learning_rate=info["learning_rate"],
                tokens_per_second=info["tokens_per_second"],
                iterations_per_second=info["iterations_per_second"],
                trained_tokens=info["trained_tokens"],
                peak_memory_bytes=int(info["peak_memory"] * 1e9),
            )
            if every and iteration - self.last_saved >= every and iteration < run["iters"]:
                path = save_checkpoint(model, adapter_dir, iteration)
                self.last_saved = iteration
                emit("checkpoint", iteration=iteration, path=str(path))

        def on_val_loss_report(self, info: dict) -> None:
            emit("val", iteration=start + info["iteration"], val_loss=info["val_loss"], val_time=info["val_time"])

    return JsonLines()


def train(run: dict[str, Any]) -> None:
    """Load the base and the data, add LoRA layers, and train (mirrors ``mlx_lm.lora.train_model``)."""
    import types

    import mlx.core as mx
    import mlx.optimizers as optim
    import numpy as np
    from mlx.utils import tree_flatten
    from mlx_lm import load
    from mlx_lm.tuner import TrainingArgs, linear_to_lora_layers
    from mlx_lm.tuner import train as mlx_train
    from mlx_lm.tuner.datasets import CacheDataset, load_local_dataset

    adapter_dir = Path(run["adapter_dir"])
    np.random.seed(run["seed"])
    try:
        model, tokenizer = load(run["base"])  # type: ignore[misc]  # mlx-lm types it as a 2- or 3-tuple
    except Exception as exc:  # noqa: BLE001 - mlx-lm and transformers raise many types: not a usable model
        emit("error", kind="model", message=f"can't load the base model from {run['base']}: {exc}")
        raise SystemExit(3) from None
    try:
        train_set, valid_set, _ = load_local_dataset(
            Path(run["data_dir"]),
            tokenizer,  # type: ignore[arg-type]  # mlx-lm asks for a PreTrainedTokenizer, uses its wrapper's API
            types.SimpleNamespace(mask_prompt=run["mask_prompt"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        emit("error", kind="data", message=f"the dataset can't be used: {exc}")
        raise SystemExit(3) from None

    mx.random.seed(run["seed"])
    model.freeze()
    lora = {"rank": run["rank"], "scale": run["scale"], "dropout": run["dropout"]}
    linear_to_lora_layers(model, run["layers"], lora)
    if run.get("resume_adapter_file"):
        model.load_weights(run["resume_adapter_file"], strict=False)
    adapter_config = {
        "fine_tune_type": "lora",
        "num_layers": run["layers"],
        "lora_parameters": lora,
        "model": run["base"],
        **{
            k: run[k]
            for k in ("learning_rate", "batch_size", "max_seq_length", "mask_prompt", "grad_checkpoint", "seed")
        },
    }
    (adapter_dir / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))

    # mlx types tree_flatten as list or dict; a list of (key, value) unless given a dict destination
    trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))  # type: ignore[str-unpack,union-attr]
    total = sum(v.size for _, v in tree_flatten(model.parameters()))  # type: ignore[str-unpack,union-attr]
    start, iters = run["start_iteration"], run["iters"]
    emit(
        "start",
        iteration=start,
        iters=iters,
        trainable_parameters=trainable,
        total_parameters=total,
        train_examples=len(train_set),
        valid_examples=len(valid_set),
    )
    adapter_file = adapter_dir / "adapters.safetensors"
    if iters > start:
        args = TrainingArgs(
            batch_size=run["batch_size"],
            iters=iters - start,
            val_batches=run["val_batches"],
            steps_per_report=run["steps_per_report"],
            steps_per_eval=run["steps_per_eval"],
            steps_per_save=iters + 1,  # checkpoints are ours: absolute numbers, written atomically
            adapter_file=str(adapter_file),
            max_seq_length=run["max_seq_length"],
            grad_checkpoint=run["grad_checkpoint"],
        )
        mlx_train(
            model=model,
            optimizer=optim.Adam(learning_rate=run["learning_rate"]),
            train_dataset=CacheDataset(train_set),
            val_dataset=CacheDataset(valid_set) if len(valid_set) else None,
            args=args,
            training_callback=_callback(model, run),
        )
    (adapter_dir / "checkpoint.json").write_text(json.dumps({"iteration": iters, "file": "adapters.safetensors"}))
    emit("done", iteration=iters, adapter_file=str(adapter_file), peak_memory_bytes=int(mx.get_peak_memory()))


def _is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or any(
        s in text for s in ("out of memory", "attempting to allocate", "maximum allowed buffer", "insufficient memory")
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _take_stdout()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")  # as `mlx_lm lora` does
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    try:
        run = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
        started = time.perf_counter()
        train(run)
        print(f"training took {time.perf_counter() - started:.1f} s", file=sys.stderr)
        return 0
    except SystemExit as exc:
        return int(exc.code or 0)
    except BaseException as exc:  # noqa: BLE001 - the child process's boundary: the parent says it in one line
        traceback.print_exc()
        kind = "oom" if _is_oom(exc) else "internal"
        emit("error", kind=kind, message=f"{type(exc).__name__}: {exc}".strip())
        return 4


if __name__ == "__main__":
    sys.exit(main())
