"""This machine: OS, chip, memory and the budget a model must fit in (``macapp doctor``)."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from typing import Any

from macapp.core.hardware import apple

BACKENDS = ("llama-cpp-python", "mlx", "mlx-lm", "gguf", "huggingface_hub", "chromadb", "PySide6-Essentials")


@dataclass(frozen=True)
class Hardware:
    os: str
    machine: str
    chip: str
    cpu_count: int
    total_bytes: int
    available_bytes: int
    gpu: str  # "metal" on Apple Silicon, "cpu" elsewhere
    gpu_working_set_bytes: int | None
    wired_limit_mb: int | None
    budget_bytes: int  # what a model (weights + KV + compute) may use
    budget_rule: str  # how the budget was chosen, in words

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def place(self) -> str:
        """How text names this machine: "this Mac" on a Mac, "this computer" elsewhere."""
        return machine_noun("Darwin" if self.gpu == "metal" else self.os)


def machine_noun(system: str | None = None, capital: bool = False) -> str:
    """How text names the machine Orchard runs on: "this Mac" on macOS, "this computer" elsewhere.

    ``system`` is ``platform.system()`` by default ("Darwin", "Linux", "Windows"; a Hardware's os string such as
    "macOS 15.1" counts too); ``capital`` starts the words a sentence: "This Mac".
    """
    system = platform.system() if system is None else system
    noun = "this Mac" if system == "Darwin" or system.startswith(("macOS", "Mac OS")) else "this computer"
    return noun[0].upper() + noun[1:] if capital else noun


def is_apple_silicon() -> bool:
    return platform.system() == "Darwin" and platform.machine() == "arm64"


def default_backend() -> str:
    """Where llama.cpp runs here: "metal" on Apple Silicon, "cpu" elsewhere (RuntimeSettings.backend)."""
    return "metal" if is_apple_silicon() else "cpu"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def mac_hardware(mem: apple.MacMemory, os_name: str = "macOS", cpu_count: int = 8) -> Hardware:
    """The Hardware of an Apple Silicon Mac from supplied values (pure: builds an 8 GB Mac on Linux too).

    The budget is min(GPU working set, available memory), as ``apple.gpu_budget`` decides it.
    """
    return Hardware(
        os=os_name,
        machine="arm64",
        chip=mem.chip,
        cpu_count=cpu_count,
        total_bytes=mem.total_bytes,
        available_bytes=mem.available_bytes,
        gpu="metal",
        gpu_working_set_bytes=apple.gpu_working_set(mem),
        wired_limit_mb=mem.wired_limit_mb,
        budget_bytes=apple.gpu_budget(mem),
        budget_rule="min(Metal working set, available memory)",
    )


def detect() -> Hardware:
    """Probe this machine (a few milliseconds; sysctl and mlx only on a Mac)."""
    import psutil

    vm = psutil.virtual_memory()
    cpu_count = os.cpu_count() or 1
    if is_apple_silicon():
        mac = apple.probe_mac(vm.available)
        if not mac.total_bytes:  # sysctl said nothing useful: psutil still knows the RAM
            mac = replace(mac, total_bytes=vm.total)
        return mac_hardware(mac, os_name=f"macOS {platform.mac_ver()[0]}", cpu_count=cpu_count)
    return Hardware(
        os=f"{platform.system()} {platform.release()}",
        machine=platform.machine(),
        chip=_cpu_name(),
        cpu_count=cpu_count,
        total_bytes=vm.total,
        available_bytes=vm.available,
        gpu="cpu",
        gpu_working_set_bytes=None,
        wired_limit_mb=None,
        budget_bytes=vm.available,
        budget_rule="available memory (no Metal here)",
    )


def backend_versions() -> dict[str, str | None]:
    """Installed versions of the heavy backends, read from package metadata (nothing imported)."""
    out: dict[str, str | None] = {}
    for name in BACKENDS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
