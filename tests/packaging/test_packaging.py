"""The bundle's build settings: what the spec collects, Info.plist, entitlements, icons, the entry point.

The freeze itself runs in ``make app-smoke`` (a separate CI step: ~75 s to build, ~5 s to selftest);
these tests check, without building, that the spec lists what the selftest needs and that the
macOS settings are well formed.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import plistlib
import subprocess
import sys
from pathlib import Path

import pytest

import macapp
from macapp import selftest
from macapp.core import paths
from macapp.core.docs.embedder import bundled_embedder_path
from macapp.core.models.catalog import catalog_path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "packaging"))
import icons  # noqa: E402
import manifest  # noqa: E402


def _static_imports() -> set[str]:
    """Every module an ``import`` statement in macapp names (PyInstaller follows these, even inside
    functions); ``importlib.import_module("…")`` strings are invisible to it."""
    found = set()
    for path in (ROOT / "macapp").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _covered(module: str, static: set[str]) -> bool:
    """Collected by the spec: imported by a statement, listed as a hidden import, or inside a
    package collected whole."""
    return (
        module in static
        or any(name.startswith(module + ".") for name in static)  # `import a.b` loads a
        or module in manifest.HIDDEN_IMPORTS
        or any(module.startswith(pkg + ".") or module == pkg for pkg in manifest.COLLECT_SUBMODULES)
    )


def test_every_module_the_selftest_imports_is_collected_and_none_is_excluded():
    static = _static_imports()
    assert [m for m in selftest.BACKEND_MODULES if not _covered(m, static)] == []
    assert not _covered("mlx_lm_fake.nothing", static)  # the rule can fail
    excluded = set(manifest.EXCLUDES)
    assert not [m for m in selftest.BACKEND_MODULES if m in excluded or m.split(".")[0] in excluded]
    for module in manifest.HIDDEN_IMPORTS:  # a typo in the list would be silently skipped by PyInstaller
        assert importlib.util.find_spec(module) is not None, module


def test_the_spec_reads_every_list_of_the_manifest():
    spec = (ROOT / "packaging" / "orchard.spec").read_text(encoding="utf-8")
    for name in (
        "DATA_FILES",
        "COLLECT_DATA",
        "COPY_METADATA",
        "NATIVE_LIBRARIES",
        "HIDDEN_IMPORTS",
        "COLLECT_SUBMODULES",
        "EXCLUDES",
        "keep_qt_plugin",
        "info_plist(",
        "ENTITLEMENTS",
        "BUNDLE_ID",
    ):
        assert f"manifest.{name}" in spec, name
    assert "exclude_binaries=True" in spec and "COLLECT(" in spec  # onedir: COLLECT holds the binaries


def test_data_files_are_where_the_code_looks_for_them_in_a_bundle():
    placed = {Path(dest) / Path(src).name for src, dest in manifest.DATA_FILES}
    root = paths.app_root()
    for found in (
        bundled_embedder_path(),
        catalog_path(),
        root / "macapp" / "ui" / "style.qss",
        root / "resources" / "icon.svg",
    ):
        assert found.relative_to(root) in placed, found
        assert found.is_file(), f"{found} is missing (make setup builds the embedder)"


def test_native_libraries_are_present_in_this_environment():
    for package in manifest.NATIVE_LIBRARIES:
        spec = importlib.util.find_spec(package)
        assert spec is not None, package
        folder = Path(spec.origin).parent if spec.origin else Path(next(iter(spec.submodule_search_locations)))
        libs = [p for p in folder.rglob("*") if p.suffix in (".so", ".dylib", ".pyd") or ".so." in p.name]
        assert libs, f"no shared library under {folder}"


def test_qt_plugins_are_trimmed_to_what_the_app_uses():
    keep = manifest.keep_qt_plugin
    assert keep("PySide6/Qt/plugins/platforms/libqoffscreen.so")  # the selftest
    assert keep("PySide6/Qt/plugins/platforms/libqcocoa.dylib")  # macOS
    assert keep("PySide6/Qt/plugins/platforms/libqxcb.so")
    assert keep("PySide6/Qt/plugins/imageformats/libqsvg.dylib")
    assert keep("PySide6/Qt/lib/libQt6Widgets.so.6")  # libraries are not plugins
    assert not keep("PySide6/Qt/plugins/platforms/libqvnc.so")
    assert not keep("PySide6/Qt/plugins/sqldrivers/libqsqlite.so")
    assert not keep("PySide6/Qt/plugins/tls/libqopensslbackend.so")


def test_info_plist_is_valid_and_says_what_the_mac_needs():
    version = manifest.package_version()
    assert version == macapp.__version__
    data = plistlib.loads(manifest.info_plist_bytes(version))  # what plistlib writes, it must read back
    assert data["CFBundleIdentifier"] == manifest.BUNDLE_ID and "." in manifest.BUNDLE_ID
    assert data["CFBundleShortVersionString"] == version and data["CFBundlePackageType"] == "APPL"
    assert tuple(int(x) for x in data["LSMinimumSystemVersion"].split(".")) >= (13, 5)  # mlx's minimum
    assert data["LSArchitecturePriority"] == ["arm64"] and data["LSRequiresNativeExecution"] is True
    assert data["NSHighResolutionCapable"] is True and data["NSRequiresAquaSystemAppearance"] is False
    assert data["CFBundleIconFile"] == "Orchard.icns"
    types = {t["CFBundleTypeName"]: t for t in data["CFBundleDocumentTypes"]}
    assert types["PDF document"]["LSItemContentTypes"] == ["com.adobe.pdf"]
    assert types["Image"]["LSHandlerRank"] == "Alternate" and "public.heic" in types["Image"]["LSItemContentTypes"]
    assert types["PDF document"]["LSHandlerRank"] == "Alternate"  # never steals PDFs from Preview
    gguf_uti = types["GGUF model"]["LSItemContentTypes"][0]
    exported = {t["UTTypeIdentifier"]: t for t in data["UTExportedTypeDeclarations"]}
    assert exported[gguf_uti]["UTTypeTagSpecification"]["public.filename-extension"] == ["gguf"]


def test_entitlements_allow_what_ctypes_and_mlx_need_and_nothing_sandboxed():
    ent = manifest.entitlements()
    assert ent["com.apple.security.cs.allow-unsigned-executable-memory"] is True
    assert ent["com.apple.security.cs.allow-jit"] is True
    assert all(value is True for value in ent.values())
    assert "com.apple.security.app-sandbox" not in ent  # models live wherever the user keeps them


def test_icns_has_every_size_as_a_png_of_that_size(qapp, tmp_path):
    # qapp: the test session's QApplication (icons.py would otherwise make a QGuiApplication, after
    # which no widget test could run in this process)
    icns_path, png_path = icons.build(tmp_path)
    entries = icons.unpack_icns(icns_path.read_bytes())
    assert set(entries) == set(icons.ICNS_TYPES)
    for code, png in entries.items():
        size = icons.ICNS_TYPES[code]
        assert icons.png_size(png) == (size, size), code
    assert icons.png_size(png_path.read_bytes()) == (512, 512)
    damaged = icns_path.read_bytes()[:-10]
    with pytest.raises(ValueError):
        icons.unpack_icns(damaged)


def _entry(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run(
        [sys.executable, str(manifest.ENTRY), *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT
    )


def test_entry_point_runs_only_orchards_own_modules():
    refused = _entry("-m", "http.server")
    assert refused.returncode == 2 and "only its own modules" in refused.stderr
    version = _entry("--version")
    assert version.returncode == 0 and macapp.__version__ in version.stdout


@pytest.mark.slow
def test_selftest_passes_through_the_bundle_entry_point():
    result = _entry("--selftest", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    steps = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("ok ")]
    assert steps == list(selftest.STEPS)
    assert "selftest ok" in result.stdout


def test_a_failing_step_is_reported_the_others_still_run_and_the_exit_code_says_so():
    script = (
        "import sys\n"
        "from macapp import selftest\n"
        "def broken(tmp):\n"
        "    raise ImportError('No module named mlx._reprlib_fix')\n"
        "selftest.STEPS = {'imports': selftest.step_imports, 'broken': broken, 'embed': selftest.step_embed}\n"
        "sys.exit(selftest.run())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith("FAIL  broken") and "mlx._reprlib_fix" in line for line in lines)
    assert any(line.startswith("ok    embed") for line in lines)  # the step after the failure ran
    assert lines[-1].startswith("selftest FAILED: broken")
