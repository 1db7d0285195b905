"""``macapp doctor``: this machine, its memory budget, backends and data paths."""

from __future__ import annotations

import argparse

from macapp.cli.output import key_values, print_json
from macapp.core import hardware, paths
from macapp.core.units import format_bytes


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="this Mac's memory budget, backends and data paths",
                       description="Report OS, chip, memory, the GPU/Metal budget a model must fit in, "
                                   "backend versions and data paths (paste it into an issue).")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=run)


def report() -> dict:
    hw = hardware.detect()
    return {
        **hw.to_json(),
        "backends": hardware.backend_versions(),
        "paths": {"data": str(paths.data_dir()), "logs": str(paths.logs_dir()),
                  "hf_cache": str(paths.hf_hub_cache()),
                  "lm_studio": str(paths.lm_studio_models_dir() or "")},
    }


def run(args: argparse.Namespace) -> int:
    data = report()
    if args.json:
        print_json(data)
        return 0
    ws = data["gpu_working_set_bytes"]
    rows = [
        ("OS", f"{data['os']} ({data['machine']})"),
        ("Chip", f"{data['chip']}, {data['cpu_count']} cores"),
        ("Memory", f"{format_bytes(data['total_bytes'])} total, {format_bytes(data['available_bytes'])} available"),
        ("GPU", "Metal (all layers on the GPU)" if data["gpu"] == "metal" else "none: llama.cpp runs on the CPU"),
    ]
    if ws:
        rows.append(("Metal working set", format_bytes(ws)
                     + (f" (iogpu.wired_limit_mb={data['wired_limit_mb']})" if data["wired_limit_mb"] else "")))
    rows.append(("Model budget", f"{format_bytes(data['budget_bytes'])} = {data['budget_rule']}"))
    for name, version in data["backends"].items():
        rows.append((name, version or "not installed"))
    for name, path in data["paths"].items():
        if path:
            rows.append((f"{name} dir", path))
    key_values("Orchard doctor", rows)
    return 0
