"""LoRA training with mlx-lm in a child process, streamed as progress; cancel at once, resume later.

``plan_training`` checks everything before a run: the dataset (every problem with its line), the base
model and the memory estimate against this Mac's budget. ``train_lora`` then runs
``python -m macapp.core.tuning.runner`` (see runner.py for the JSON-lines protocol) so an
out-of-memory or a crash in mlx ends the child, never the app; it yields ``TrainProgress`` and returns
``TrainResult`` once the adapter is registered. Cancelling terminates the child at once: the last
checkpoint stays, and ``resume=True`` continues from it to the target iterations.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from macapp.core import paths
from macapp.core.digest import file_sha256
from macapp.core.errors import UserError
from macapp.core.hardware import machine_noun
from macapp.core.progress import CancelToken
from macapp.core.tuning import adapters, datasets
from macapp.core.tuning.child import ChildStream, TrainProgress, failure_error, stop_child
from macapp.core.tuning.estimate import (
    BaseFacts,
    Suggestion,
    TrainEstimate,
    estimate_training,
    read_base,
    suggest_settings,
    trained_layers,
)

RUNNER = [sys.executable, "-m", "macapp.core.tuning.runner"]  # tests may point this at a scripted child
CHECKPOINT = "checkpoint.json"  # in the adapter folder: {"iteration": N, "file": the weights}, by runner.py


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class TrainOptions:
    """A LoRA training run. Defaults follow ``mlx_lm lora``; ``estimate.default_settings`` adapts them to a Mac."""

    base: Path | None = field(
        metadata=_help(
            "mlx-lm model folder (config.json + *.safetensors; 4-bit means QLoRA); None checks the dataset alone"
        )
    )
    data: Path = field(
        metadata=_help("a JSONL file (split into train/valid) or a folder with train.jsonl and optionally valid.jsonl")
    )
    name: str = field(metadata=_help("adapter name in the registry"))
    rank: int = field(default=8, metadata=_help("LoRA rank: capacity of the adapter"))
    layers: int = field(default=16, metadata=_help("how many of the last transformer blocks get LoRA (-1 = all)"))
    learning_rate: float = field(default=1e-5, metadata=_help("Adam learning rate"))
    iters: int = field(default=1000, metadata=_help("training iterations (batches) in total"))
    batch_size: int = field(default=4, metadata=_help("examples per iteration"))
    max_seq_length: int = field(default=2048, metadata=_help("tokens per example; longer ones are cut off"))
    mask_prompt: bool | None = field(
        default=None,
        metadata=_help(
            "learn from the answers only, not the prompts; None (the default): answers only for chat and "
            "prompt/completion data, everything for text (which has no prompt to leave out)"
        ),
    )
    grad_checkpoint: bool = field(default=False, metadata=_help("recompute activations: less memory, ~30% slower"))
    steps_per_report: int = field(default=10, metadata=_help("iterations between training-loss reports"))
    steps_per_eval: int = field(default=200, metadata=_help("iterations between validation-loss reports"))
    save_every: int = field(default=100, metadata=_help("iterations between checkpoints (at a report)"))
    val_batches: int = field(default=25, metadata=_help("validation batches per evaluation (-1 = all)"))
    valid_fraction: float = field(default=0.1, metadata=_help("share of a single file kept for validation"))
    seed: int = field(default=0, metadata=_help("random seed (data order and LoRA initialisation)"))
    scale: float = field(default=20.0, metadata=_help("LoRA scale (mlx-lm's alpha / rank)"))
    dropout: float = field(default=0.0, metadata=_help("LoRA dropout"))
    resume: bool = field(default=False, metadata=_help("continue the run with this name from its last checkpoint"))
    check_memory: bool = field(default=True, metadata=_help("refuse settings whose estimate exceeds the budget"))

    def settings(self) -> dict[str, Any]:
        """The settings recorded with the adapter."""
        skip = {"base", "data", "name", "resume", "check_memory"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


@dataclass
class TrainResult:
    adapter: adapters.AdapterInfo
    iterations: int
    train_loss: float | None
    val_loss: float | None
    seconds: float
    peak_memory_bytes: int | None
    tokens_per_second: float | None
    log_path: Path

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["adapter"] = self.adapter.to_json()
        data["log_path"] = str(self.log_path)
        return data


@dataclass
class TrainPlan:
    """What a run would do: dataset reports, the base model's facts, the memory estimate (and a suggestion)."""

    options: TrainOptions  # as run: ``mask_prompt`` decided for the dataset's format
    reports: list[datasets.DatasetReport]
    base: BaseFacts | None  # None: the dataset was checked without a base (approximate token counts)
    estimate: TrainEstimate | None
    suggestion: Suggestion | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [f"{r.path.name} {p}" if len(self.reports) > 1 else str(p) for r in self.reports for p in r.problems]

    def raise_for_problems(self) -> None:
        for report in self.reports:
            if not report.ok:
                raise datasets.DatasetError(report)
        if self.estimate is None:
            raise UserError("Choose a base model to train", hint="an MLX model folder")
        if self.options.check_memory and self.estimate.verdict == "too_big":
            gib = 1024**3
            hint = "no smaller settings fit; pick a smaller (4-bit) base model"
            if self.suggestion is not None:
                hint = (
                    f"try {', '.join(self.suggestion.changes)} "
                    f"(about {self.suggestion.estimate.total_bytes / gib:.1f} GiB)"
                )
            raise UserError(
                f"Training needs about {self.estimate.total_bytes / gib:.1f} GiB but {machine_noun()} can give it "
                f"{(self.estimate.budget_bytes or 0) / gib:.1f} GiB",
                hint=hint,
            )


def load_tokenizer(base_dir: str | Path) -> Any:
    """The base model's tokenizer (mlx-lm's wrapper), for token counts in the dataset check."""
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")  # not "PyTorch was not found" on every run
    from mlx_lm.utils import load_tokenizer as mlx_load_tokenizer

    try:
        return mlx_load_tokenizer(Path(base_dir))
    except Exception as exc:  # noqa: BLE001 - transformers raises many types for a damaged folder
        raise UserError(f"Can't read the tokenizer in {base_dir}: {exc}") from None


@dataclass(frozen=True)
class Checkpoint:
    """Where a stopped run continues from: the iteration it reached and the weights saved then."""

    iteration: int
    file: Path


def last_checkpoint(folder: Path) -> Checkpoint | None:
    """The last checkpoint of the run in ``folder`` (named by ``checkpoint.json``, which the trainer replaces
    atomically); None before the first one."""
    mark_file = folder / CHECKPOINT
    if not mark_file.is_file():
        return None
    mark = json.loads(mark_file.read_text(encoding="utf-8"))
    return Checkpoint(int(mark["iteration"]), folder / mark["file"])


def can_resume(name: str) -> bool:
    """Whether the run named ``name`` kept a checkpoint to continue from (``resume=True``: ``macapp tune
    --resume``, the Tuning page's Resume). A name that can't be an adapter's has none."""
    try:
        return (adapters.adapter_path(name) / CHECKPOINT).is_file()
    except (UserError, OSError):
        return False


def dataset_files(data: str | Path) -> tuple[Path, Path | None]:
    """(train file, valid file or None) for a JSONL file or an mlx-lm data folder."""
    data = Path(data)
    if data.is_dir():
        train = data / "train.jsonl"
        if not train.is_file():
            raise UserError(f"{data} has no train.jsonl", hint="give a .jsonl file or a folder with train.jsonl")
        valid = data / "valid.jsonl"
        return train, valid if valid.is_file() else None
    if not data.is_file():
        raise UserError(f"No such dataset: {data}")
    return data, None


def plan_training(options: TrainOptions, budget_bytes: int | None = None, tokenizer: Any = None) -> TrainPlan:
    """Check the data (with the base's tokenizer), read the base and estimate memory; nothing is written.

    Without a base (``options.base`` None) only the data is checked, with approximate token counts.
    """
    base = read_base(options.base) if options.base is not None else None
    if tokenizer is None and options.base is not None:
        tokenizer = load_tokenizer(options.base)
    train_file, valid_file = dataset_files(options.data)
    reports = [
        datasets.validate_dataset(f, tokenizer, options.max_seq_length, options.mask_prompt, approximate=True)
        for f in (train_file, valid_file)
        if f is not None
    ]
    if len(reports) == 2 and reports[0].format and reports[1].format and reports[0].format != reports[1].format:
        reports[1].problems.append(
            datasets.DatasetProblem(
                None, f"valid.jsonl is {reports[1].format!r} but train.jsonl is {reports[0].format!r}"
            )
        )
    mask, note = datasets.resolve_mask(options.mask_prompt, reports[0].format)
    options = replace(options, mask_prompt=mask)
    notes = [note] if note else []
    if base is None:
        return TrainPlan(options, reports, None, None, notes=notes)
    if budget_bytes is None:
        from macapp.core.hardware import detect

        budget_bytes = detect().budget_bytes
    estimate = estimate_training(base, options, budget_bytes)
    suggestion = suggest_settings(base, options, budget_bytes) if estimate.verdict == "too_big" else None
    return TrainPlan(options, reports, base, estimate, suggestion, notes)


def _dataset_sha(options: TrainOptions) -> str:
    train_file, valid_file = dataset_files(options.data)
    if valid_file is None:
        return file_sha256(train_file)
    return hashlib.sha256((file_sha256(train_file) + file_sha256(valid_file)).encode()).hexdigest()


def _prepare_folder(options: TrainOptions, base_dir: Path) -> tuple[Path, dict[str, Any], int, str | None]:
    """The adapter folder with its data and run.json; returns (folder, recorded run, start iteration, resume file)."""
    folder = adapters.adapter_path(options.name)
    base_id = adapters.base_identity(base_dir)
    dataset_sha = _dataset_sha(options)
    if options.resume:
        if not (folder / adapters.RUN_FILE).is_file():
            raise UserError(f"Nothing to resume: no run named {options.name!r}", hint="start it without --resume")
        run = json.loads((folder / adapters.RUN_FILE).read_text(encoding="utf-8"))
        if run.get("base_identity", {}).get("fingerprint") != base_id["fingerprint"]:
            raise UserError(f"{options.name!r} was trained on another base model ({run.get('base')})")
        if run.get("dataset_sha256") != dataset_sha:
            raise UserError(f"The dataset changed since {options.name!r} started", hint="train under a new name")
        checkpoint = last_checkpoint(folder)
        start, resume_file = (checkpoint.iteration, str(checkpoint.file)) if checkpoint else (0, None)
        if start >= options.iters:
            raise UserError(
                f"{options.name!r} has already trained {start} iterations",
                hint=f"ask for more than {start} iterations to continue",
            )
        (folder / adapters.MANIFEST).unlink(missing_ok=True)  # a continued adapter is unfinished until it ends
        return folder, run, start, resume_file
    if folder.exists() and any(folder.iterdir()):
        try:
            info = adapters.get_adapter(options.name, include_incomplete=True)
        except adapters.AdapterNotFound:
            raise UserError(
                f"{folder} exists but is not an adapter", hint="move it aside or choose another name"
            ) from None
        if info.status == "complete":
            raise UserError(
                f"An adapter named {options.name!r} already exists",
                hint="choose another name, continue it with --resume and more iterations, or delete it",
            )
        raise UserError(
            f"An unfinished run named {options.name!r} exists",
            hint="resume it (--resume) or delete it (its checkpoint is kept until then)",
        )
    folder.mkdir(parents=True, exist_ok=True)
    try:
        _write_data(options, folder / "data")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # nothing was trained: leave no unfinished run behind
        raise
    run = {
        "base": str(Path(base_dir).resolve()),
        "base_identity": base_id,
        "dataset_sha256": dataset_sha,
        "dataset_path": str(Path(options.data).resolve()),
        "settings": options.settings(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (folder / adapters.RUN_FILE).write_text(json.dumps(run, indent=2), encoding="utf-8")
    return folder, run, 0, None


def _write_data(options: TrainOptions, data_dir: Path) -> None:
    """train.jsonl and valid.jsonl for mlx-lm: a file is split; a folder's files are copied without blank lines."""
    train_file, valid_file = dataset_files(options.data)
    if valid_file is None:
        datasets.split_dataset(
            train_file,
            data_dir,
            options.valid_fraction,
            min_valid=options.batch_size,
            min_train=options.batch_size,
            seed=options.seed,
        )
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    for src, name in ((train_file, "train.jsonl"), (valid_file, "valid.jsonl")):
        lines = [line.rstrip("\r\n") for _, line in datasets.read_records(src)]
        if len(lines) < options.batch_size:  # mlx-lm needs a full batch in each
            raise UserError(
                f"{src.name} has {len(lines)} example{'s' if len(lines) != 1 else ''}; batch size "
                f"{options.batch_size} needs at least that many",
                hint="lower the batch size or add examples",
            )
        datasets.write_lines(data_dir / name, lines)


def _runner_config(
    folder: Path, run: dict[str, Any], options: TrainOptions, base: BaseFacts, start: int, resume_file: str | None
) -> Path:
    settings = {**run["settings"], "iters": options.iters} if options.resume else options.settings()
    config = {
        **settings,
        "base": run["base"],
        "data_dir": str(folder / "data"),
        "adapter_dir": str(folder),
        "layers": trained_layers(base, settings["layers"]),
        "start_iteration": start,
        "resume_adapter_file": resume_file,
    }
    path = folder / "runner.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


def train_lora(
    options: TrainOptions,
    cancel: CancelToken | None = None,
    plan: TrainPlan | None = None,
    budget_bytes: int | None = None,
) -> Generator[TrainProgress, None, TrainResult]:
    """Train a LoRA adapter and register it under ``options.name``.

    Yields:
        ``TrainProgress`` at start, at every report (train loss, tokens/s, peak memory, ETA), at every
        validation and checkpoint.
    Returns:
        ``TrainResult`` with the registered adapter. Raises ``DatasetError`` (every problem with its
        line) or ``UserError`` before anything runs, ``UserError`` if the child fails (out of memory,
        crash), ``Cancelled`` when ``cancel`` is set (the child is terminated; the checkpoint stays).
    """
    cancel = cancel or CancelToken()
    plan = plan or plan_training(options, budget_bytes)
    plan.raise_for_problems()
    if options.mask_prompt is None:
        options = replace(options, mask_prompt=plan.options.mask_prompt)
    base, base_dir = plan.base, options.base
    if base is None or base_dir is None:  # raise_for_problems refuses a plan without a base
        raise UserError("Choose a base model to train", hint="an MLX model folder")
    folder, run, start, resume_file = _prepare_folder(options, base_dir)
    config = _runner_config(folder, run, options, base, start, resume_file)
    cancel.raise_if_cancelled()
    log_path = paths.logs_dir() / f"tune-{options.name}.log"
    started = time.monotonic()
    try:
        with open(log_path, "ab") as log_file:
            child = subprocess.Popen(
                [*RUNNER, str(config)],
                stdout=subprocess.PIPE,
                stderr=log_file,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                stream = ChildStream(child, start, options.iters, started)
                yield from stream.follow(cancel)
            finally:
                stop_child(child)
        if stream.error or child.returncode != 0 or not stream.done:
            raise failure_error(stream.error, child.returncode, log_path)
    except BaseException:
        if not can_resume(options.name):  # nothing to resume: leave no unfinished run behind
            shutil.rmtree(folder, ignore_errors=True)
        raise
    settings = {**run["settings"], "iters": options.iters}
    info = adapters.write_manifest(
        options.name,
        base_path=run["base"],
        base_id=run["base_identity"],
        dataset_sha256=run["dataset_sha256"],
        settings=settings,
        train_loss=stream.train_loss,
        val_loss=stream.val_loss,
        iterations=options.iters,
    )
    return TrainResult(
        info,
        options.iters,
        stream.train_loss,
        stream.val_loss,
        round(time.monotonic() - started, 2),
        stream.peak_memory,
        stream.mean_tokens_per_second,
        log_path,
    )
