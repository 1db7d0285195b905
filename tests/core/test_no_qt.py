"""The core (and the CLI commands built on it) work where PySide6 cannot be imported."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import macapp.core


def test_core_imports_and_runs_without_pyside6(tiny_models):
    modules = [m.name for m in pkgutil.walk_packages(macapp.core.__path__, "macapp.core.")]
    script = f"""
import sys
sys.modules["PySide6"] = None  # any import of PySide6 now raises ImportError
import importlib
for name in {modules!r}:
    importlib.import_module(name)
from macapp.cli.main import main
sys.exit(main(["estimate", {str(tiny_models["mha_f32"])!r}, "--budget", "1G", "--json"]))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert '"verdict": "fits"' in run.stdout
    assert len(modules) >= 10
