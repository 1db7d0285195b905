"""``macapp doctor``: the report a user pastes into an issue.

Orchard and Python versions, how Orchard runs (source or a frozen bundle), this machine, its memory
budget, whether Metal is active for llama.cpp and mlx, backends, data paths, the model library, and a
short generation speed test on the smallest installed model (``macapp.core.doctor.speedtest``). The text
report is Markdown (a heading and a fenced block); progress goes to stderr so stdout stays pasteable.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from macapp.cli.output import print_json
from macapp.cli.progress import BarState, follow
from macapp.core.doctor.diagnostics import report
from macapp.core.hardware import machine_noun
from macapp.core.units import format_bytes


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


_positive_seconds.__name__ = "number"  # argparse names the type in its "invalid ... value" message


def register(sub: argparse._SubParsersAction) -> None:
    from macapp.core.doctor.speedtest import DEFAULT_SECONDS

    p = sub.add_parser(
        "doctor",
        help=f"a report on {machine_noun()} for bug reports, with a short speed test",
        description="Report Orchard and Python versions, the OS, chip, memory, the GPU/Metal budget "
        "a model must fit in, whether Metal is active (llama.cpp, mlx), backend versions, "
        "data paths, installed models, and a generation speed test on the smallest "
        "installed model. The text report is Markdown: paste it into an issue as it is. "
        "Progress goes to stderr.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document (speed test included)")
    p.add_argument("--no-speed-test", action="store_true", help="skip the generation speed test")
    p.add_argument(
        "--seconds",
        type=_positive_seconds,
        default=DEFAULT_SECONDS,
        metavar="N",
        help=f"generation time of the speed test in seconds (default: {DEFAULT_SECONDS:g})",
    )
    p.set_defaults(handler=run)


def speed_test_report(entries: list, seconds: float) -> dict[str, Any]:
    """The speed test's JSON: results, ``{"skipped": why}`` or ``{"error": what}``; progress on stderr."""
    from macapp.core.doctor.speedtest import smallest_model, speed_test_smallest
    from macapp.core.errors import UserError

    stream = speed_test_smallest(entries, seconds=seconds)
    entry = smallest_model(entries)
    try:
        result = _with_progress(stream, entry.name if entry else "", seconds)
    except UserError as exc:
        return {"model": entry.id if entry else None, "error": str(exc)}
    return result.to_json()


def _with_progress(stream, name: str, seconds: float):
    """Drive the speed test, showing progress on stderr (a bar on a terminal, one line otherwise)."""

    def bar(step) -> BarState:
        fraction = step.fraction or 0.0
        if step.stage == "loading":
            return BarState(fraction, 1.0, f"Speed test: loading {name}", f"{fraction:.0%}")
        return BarState(fraction, 1.0, f"Speed test: {name}", f"{step.tokens} tokens")

    def line(step) -> str | None:  # one line when the generation starts; nothing per token
        return f"speed test: {name}, {seconds:g} s of generation..." if name else None

    return follow(stream, f"Speed test: loading {name}", line=line, bar=bar, columns="detail", every=float("inf"))


# -- output ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from macapp.core.models.library import list_library

    entries = list_library()
    data = report(entries)
    if not args.no_speed_test:
        data["speed_test"] = speed_test_report(entries, args.seconds)
    if args.json:
        print_json(data)
    else:
        sys.stdout.write(render_text(data))
    return 0


def render_text(data: dict[str, Any]) -> str:
    """The Markdown report: a heading and one fenced block of aligned ``key  value`` lines."""
    rows = _rows(data)
    width = max(len(key) for key, _ in rows) + 2
    lines = [f"{key:<{width}}{value}".rstrip() for key, value in rows]
    return "### Orchard doctor\n\n```text\n" + "\n".join(lines) + "\n```\n"


def _rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    app = data["orchard"]
    if app["app_path"]:
        how = f"app bundle {app['app_path']}"
    elif app["frozen"]:
        how = f"frozen bundle {app['meipass'] or app['executable']}"
    else:
        how = "from source (not frozen)"
    rows = [
        ("Orchard", f"{app['version']}, {how}"),
        ("Python", f"{app['python']} ({app['python_implementation']}, {app['executable']})"),
        ("OS", f"{data['os']} ({data['machine']})"),
        ("Chip", f"{data['chip']}, {data['cpu_count']} cores"),
        ("Memory", f"{format_bytes(data['total_bytes'])} total, {format_bytes(data['available_bytes'])} available"),
        ("GPU", "Metal (all layers on the GPU)" if data["gpu"] == "metal" else "none: llama.cpp runs on the CPU"),
    ]
    ws = data["gpu_working_set_bytes"]
    if ws:
        rows.append(
            (
                "Metal working set",
                format_bytes(ws)
                + (f" (iogpu.wired_limit_mb={data['wired_limit_mb']})" if data["wired_limit_mb"] else ""),
            )
        )
    rows.append(("Model budget", f"{format_bytes(data['budget_bytes'])} = {data['budget_rule']}"))
    for name, status in data["metal"].items():
        rows.append((f"Metal active ({name})", status))
    for name, version in data["backends"].items():
        rows.append((name, version or "not installed"))
    for name, path in data["paths"].items():
        if path:
            rows.append((f"{name} dir", path))
    models = data["models"]
    rows.append(
        (
            "Models installed",
            f"{models['installed']}" + (f" ({models['unreadable']} unreadable)" if models["unreadable"] else ""),
        )
    )
    if "speed_test" in data:
        rows += _speed_rows(data["speed_test"])
    return rows


def _speed_rows(test: dict[str, Any]) -> list[tuple[str, str]]:
    if "skipped" in test:
        return [("Speed test", f"skipped: {test['skipped']}")]
    if "error" in test:
        return [("Speed test", f"failed: {test['error']}")]
    return [
        ("Speed test model", f"{_model_name(test)} ({test['quantization']}, {format_bytes(test['file_size'])})"),
        ("Context used", f"{test['n_ctx']:,} tokens ({test['backend']})"),
        ("Load time", f"{test['load_s']:.2f} s"),
        ("Prompt processing", f"{test['prompt_tokens_per_s']:,.1f} tokens/s ({test['prompt_tokens']} tokens)"),
        (
            "Generation",
            f"{test['tokens_per_s']:,.1f} tokens/s ({test['tokens']:,} tokens in "
            f"{test['generation_s']:.2f} s, stopped by {test['stopped_by']})",
        ),
    ]


def _model_name(test: dict[str, Any]) -> str:
    """The model's library id and its file name (``smollm2-135m-instruct-q4_1 · SmolLM2-135M-Instruct.Q4_1.gguf``)."""
    return f"{test['model']} · {test['file_name']}" if test["model"] != test["file_name"] else test["file_name"]
