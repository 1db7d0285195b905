"""What the Tuning page says: a check's plan, training progress, a finished or stopped run and the adapters
list, as sentences (numbers with units, durations, verdicts). No widgets here; the CLI says these things
in its own, terser, words (``macapp tune``, ``macapp adapters``).
"""

from __future__ import annotations

from pathlib import Path

from macapp.core.tuning.adapters import AdapterInfo
from macapp.core.tuning.child import TrainProgress
from macapp.core.tuning.train import TrainPlan, TrainResult
from macapp.core.units import format_bytes

MAX_PROBLEMS_SHOWN = 200
VERDICTS = {"fits": "fits", "tight": "fits, but tightly", "too_big": "won't fit", None: "no budget known"}
ANSWERS_ONLY = "Learns from the answers only; the prompts are context, not targets."
PROMPTS_TOO = "Learns the prompts as well as the answers."
TEXT_ONLY = "Text data has no prompts to leave out: every token is learned."


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def progress_text(p: TrainProgress) -> str:
    parts = [f"Iteration {p.iteration} / {p.iters}"]
    if p.eta_seconds is not None:
        parts.append(f"ETA {duration_text(p.eta_seconds)}")
    if p.tokens_per_second is not None:
        parts.append(f"{p.tokens_per_second:,.0f} tokens/s")
    if p.peak_memory_bytes:
        parts.append(f"peak {format_bytes(p.peak_memory_bytes)}")
    return " · ".join(parts)


def plan_blocks_start(plan: TrainPlan) -> bool:
    """Whether the plan keeps Start disabled (problems in the data, no estimate yet, or too big to fit)."""
    if plan.problems or plan.estimate is None:
        return True
    return plan.options.check_memory and plan.estimate.verdict == "too_big"


def plan_summary(plan: TrainPlan) -> str:
    """Token statistics and the memory estimate, in words."""
    lines = []
    for report in plan.reports:
        text = f"{report.path.name}: {report.examples:,} examples"
        if report.format:
            text += f" ({report.format})"
        if report.tokens is not None:
            t = report.tokens
            spread = f"{t.min:,}" if t.min == t.max else f"{t.min:,}–{t.max:,}, mean {t.mean:,.0f}"
            text += f" · tokens per example {spread} · {t.total:,} in all" + (" (approx.)" if t.approx else "")
        lines.append(text)
    if plan.reports and plan.reports[0].format:
        lines.append(
            ANSWERS_ONLY if plan.options.mask_prompt else TEXT_ONLY if plan.reports[0].format == "text" else PROMPTS_TOO
        )
    est = plan.estimate
    if est is None:
        lines.append(
            "Choose a base model for exact token counts (approx. = 4 characters a token) and the memory estimate."
        )
        return "\n".join(lines)
    memory = f"Peak memory about {format_bytes(est.total_bytes)}"
    if est.budget_bytes:
        memory += f" of a {format_bytes(est.budget_bytes)} budget — {VERDICTS.get(est.verdict, est.verdict)}"
    lines.append(
        memory + f" (base weights {format_bytes(est.weights_bytes)}, "
        f"LoRA {est.lora_parameters:,} parameters, activations {format_bytes(est.activation_bytes)})"
    )
    if plan.suggestion is not None:
        lines.append(
            f"Suggestion: {', '.join(plan.suggestion.changes)} "
            f"(about {format_bytes(plan.suggestion.estimate.total_bytes)})"
        )
    return "\n".join(lines)


def plan_text(plan: TrainPlan) -> str:
    """The check's verdict first (problems to fix, fine, won't fit, ready), then ``plan_summary``."""
    problems = plan.problems
    summary = plan_summary(plan)
    if problems:
        # the list is under the whole summary, so no colon pointing at the summary's first line
        return (
            f"{len(problems)} problem{'s' if len(problems) != 1 else ''} to fix before training, listed below.\n"
            + summary
        )
    if plan.estimate is None:
        return "The dataset is fine.\n" + summary
    if plan_blocks_start(plan):
        return "This won't fit in memory with these settings.\n" + summary
    return "Ready to train.\n" + summary


def problem_lines(problems: list[str]) -> list[str]:
    """The problems the list shows: the first ``MAX_PROBLEMS_SHOWN``, then how many more there are."""
    lines = problems[:MAX_PROBLEMS_SHOWN]
    if len(problems) > MAX_PROBLEMS_SHOWN:
        lines.append(f"… and {len(problems) - MAX_PROBLEMS_SHOWN} more")
    return lines


def done_text(result: TrainResult) -> str:
    """``Done: 6 iterations in 12 s · train loss 1.234, validation loss 1.456``."""
    losses = []
    if result.train_loss is not None:
        losses.append(f"train loss {result.train_loss:.3f}")
    if result.val_loss is not None:
        losses.append(f"validation loss {result.val_loss:.3f}")
    return f"Done: {result.iterations} iterations in {duration_text(result.seconds)}" + (
        f" · {', '.join(losses)}" if losses else ""
    )


def stopped_text(resumable: bool) -> str:
    """What a cancelled run left behind."""
    if resumable:
        return "Stopped. The last checkpoint is kept — Resume continues from it."
    return "Stopped before the first checkpoint; nothing was kept."


def adapter_text(info: AdapterInfo) -> str:
    """One line of the adapters list: name, base, and how it went (or that it can be resumed)."""
    text = f"{info.name} — {Path(info.base_path).name}"
    if info.status != "complete":
        return text + " · unfinished (resumable)"
    text += f" · {info.iterations} iterations"
    if info.settings.get("mask_prompt") is not None:
        text += " · learned the answers" if info.settings["mask_prompt"] else " · learned everything"
    if info.val_loss is not None:
        text += f" · validation loss {info.val_loss:.3f}"
    return text + f" · {format_bytes(info.size_bytes)}"
