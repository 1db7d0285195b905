"""What Orchard knows about where it runs: the facts ``macapp doctor`` prints and Help > Copy
Diagnostic Report copies (everything but the speed test, which is ``macapp.core.doctor.speedtest``)."""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any

from macapp.core import hardware, paths


def app_info() -> dict[str, Any]:
    """Orchard's version, the Python running it, and whether it runs from a frozen bundle (PyInstaller)."""
    import macapp

    meipass = getattr(sys, "_MEIPASS", None)
    return {
        "version": macapp.__version__,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "frozen": bool(getattr(sys, "frozen", False)),
        "meipass": meipass,
        "app_path": _app_bundle(Path(sys.executable), Path(meipass) if meipass else None),
    }


def _app_bundle(*candidates: Path | None) -> str | None:
    """The ``….app`` folder when one of ``candidates`` lies inside ``….app/Contents/``."""
    for path in candidates:
        if path is None:
            continue
        parts = path.parts
        for i, part in enumerate(parts[:-1]):
            if part.endswith(".app") and parts[i + 1] == "Contents":
                return str(Path(*parts[: i + 1]))
    return None


def metal_status() -> dict[str, str]:
    """Whether llama.cpp and mlx run on Metal, in their own words; a missing or broken backend is said as text."""
    return {"llama.cpp": _llama_metal(), "mlx": _mlx_metal()}


def _llama_metal() -> str:
    try:
        import llama_cpp
    except ImportError:
        return "not installed"
    except Exception as exc:  # noqa: BLE001 - a broken native library is what the report is for
        return f"error: {exc}"
    try:
        offload = bool(llama_cpp.llama_supports_gpu_offload())
    except Exception as exc:  # noqa: BLE001
        return f"error: {exc}"
    if not offload:
        return "no (CPU)"
    return "yes" if sys.platform == "darwin" else "no (GPU offload, not Metal)"


def _mlx_metal() -> str:
    try:
        import mlx.core as mx
    except ImportError:
        return "not installed"
    except Exception as exc:  # noqa: BLE001
        return f"error: {exc}"
    try:
        metal = getattr(mx, "metal", None)
        if metal is not None and hasattr(metal, "is_available"):
            available = bool(metal.is_available())
        else:  # newer mlx: ask about the GPU device
            available = bool(mx.is_available(mx.gpu)) and sys.platform == "darwin"
    except Exception as exc:  # noqa: BLE001
        return f"error: {exc}"
    return "yes" if available else "no (CPU)"


def data_paths() -> dict[str, str]:
    return {
        "data": str(paths.data_dir()),
        "logs": str(paths.logs_dir()),
        "hf_cache": str(paths.hf_hub_cache()),
        "lm_studio": str(paths.lm_studio_models_dir() or ""),
        "adapters": str(paths.adapters_dir()),
        "index": str(paths.index_dir()),
    }


def report(entries: list | None = None) -> dict[str, Any]:
    """Everything but the speed test; ``entries`` is the library (scanned when not given)."""
    from macapp.core.models.library import list_library

    entries = list_library() if entries is None else entries
    hw = hardware.detect()
    return {
        "orchard": app_info(),
        **hw.to_json(),
        "metal": metal_status(),
        "backends": hardware.backend_versions(),
        "paths": data_paths(),
        "models": {"installed": len(entries), "unreadable": sum(1 for e in entries if e.facts is None)},
    }
