"""What goes into the Orchard bundle, deliberately listed: read by ``orchard.spec`` and by the tests.

PyInstaller follows static imports; everything here is what it cannot see (imports by name at
run time, data files read by path, package metadata read by ``importlib.metadata``) or what we
choose to leave out. ``macapp selftest`` imports and exercises the same list inside the bundle,
so a gap here fails ``make app-smoke`` rather than a user's first chat.
"""

from __future__ import annotations

import plistlib
import sys
from pathlib import Path

APP_NAME = "Orchard"
BUNDLE_ID = "org.orchardapp.Orchard"
MIN_MACOS = "13.5"  # mlx's minimum (Metal 3 on Apple Silicon); llama.cpp and Qt 6 ask less
ROOT = Path(__file__).resolve().parent.parent
ENTRY = ROOT / "packaging" / "orchard_main.py"
ENTITLEMENTS = ROOT / "packaging" / "entitlements.plist"
EMBEDDER = "resources/embedder/all-MiniLM-L6-v2.gguf"

# (source relative to the repo, folder inside the bundle). The code finds them with
# ``macapp.core.paths.app_root()`` (``sys._MEIPASS`` when frozen, the checkout otherwise).
DATA_FILES = [
    (EMBEDDER, "resources/embedder"),  # the bundled embedding model (built by `make setup`)
    ("resources/icon.svg", "resources"),  # window icon
    ("models/catalog.toml", "models"),  # the curated model list
    ("macapp/ui/style.qss", "macapp/ui"),  # the style sheet, read next to theme.py
    # the style sheet's icons (a tick, chevrons, a question mark), read from theme.ICONS
    *(
        (f"macapp/ui/icons/{name}", "macapp/ui/icons")
        for name in ("check.svg", "chevron-down.svg", "chevron-right.svg", "chevron-up.svg", "question.svg")
    ),
]

# Packages whose every submodule goes in: they import their parts by name at run time.
COLLECT_SUBMODULES = [
    "macapp",  # the tuning child runs as `Orchard -m macapp.core.tuning.runner`; pages load lazily
    "mlx",  # its extension imports mlx._reprlib_fix and friends from C++
    "mlx_lm",  # mlx_lm.models.<model_type> is imported from a model's config.json
    "chromadb",  # segment, API and telemetry implementations are named in its settings
    "tiktoken_ext",  # tokenizer back ends found by entry-point name (present with transformers)
]
# Single modules imported by name (lazily, inside functions); the selftest imports each in the bundle.
HIDDEN_IMPORTS = [
    "llama_cpp",
    "llama_cpp.llama_cpp",
    "mlx.core",
    "mlx.nn",
    "mlx.optimizers",
    "mlx_lm.tuner.trainer",
    "mlx_lm.tuner.utils",
    "mlx_lm.lora",
    "mlx_lm.fuse",
    "chromadb.api.rust",
    "chromadb.telemetry.product.posthog",
    "chromadb.segment.impl.metadata.sqlite",
    "chromadb_rust_bindings",
    "pypdfium2_raw",
    "uvicorn.logging",
    "uvicorn.loops.auto",
    "uvicorn.protocols.http.auto",
    "uvicorn.lifespan.on",
    "PySide6.QtSvg",
    "tokenizers",
]
# Package data files (non-Python files inside these packages).
COLLECT_DATA = ["chromadb", "mlx", "mlx_lm", "llama_cpp", "gguf", "pypdfium2_raw", "certifi"]
# Distributions whose metadata the code reads (versions in `doctor`, transformers' checks).
COPY_METADATA = [
    "macapp",
    "llama-cpp-python",
    "mlx",
    "mlx-lm",
    "gguf",
    "huggingface_hub",
    "chromadb",
    "PySide6-Essentials",
    "transformers",
    "tokenizers",
    "safetensors",
    "numpy",
    "tqdm",
    "regex",
    "requests",
    "packaging",
    "filelock",
    "pyyaml",
    "pypdfium2",
    "starlette",
    "uvicorn",
    "httpx",
]
# Native libraries, listed so nothing is left to chance: (package, why). The spec collects
# every shared library inside each with ``collect_dynamic_libs`` and checks one was found.
NATIVE_LIBRARIES = {
    "llama_cpp": "libllama + ggml (ggml-metal with its embedded metallib on a Mac, ggml-cpu elsewhere)",
    "mlx": "libmlx and, on a Mac, mlx.metallib (the Metal kernels)",
    "chromadb_rust_bindings": "chromadb's Rust core (the vector index and its SQLite)",
    "pypdfium2_raw": "PDFium",
    "tokenizers": "Hugging Face tokenizers (Rust), used by mlx-lm through transformers",
}
# OCR of scanned pages and images (macapp.core.docs.ocr): Vision through pyobjc on macOS (PyInstaller follows its
# imports); elsewhere RapidOCR, whose engine module is imported by name and whose models are package data, on
# ONNX Runtime, which macapp never imports itself.
if sys.platform != "darwin":
    HIDDEN_IMPORTS += ["rapidocr.main", "rapidocr.inference_engine.onnxruntime", "onnxruntime"]
    COLLECT_DATA += ["rapidocr"]  # its PP-OCR .onnx models and config.yaml files
    NATIVE_LIBRARIES["onnxruntime"] = "ONNX Runtime, which runs RapidOCR's models"

# Left out on purpose (megabytes that no code path of ours reaches).
EXCLUDES = [
    "torch",
    "tensorflow",
    "jax",
    "flax",  # transformers can use them; mlx-lm does not
    "tkinter",
    "matplotlib",
    "IPython",
    "pytest",
    "openai",
    "fpdf",
    "PySide6.QtQml",
    "PySide6.QtQuick",
    "PySide6.QtNetwork",
    "PySide6.QtOpenGL",
    "PySide6.QtDBus",
    "PySide6.QtPrintSupport",
    "PySide6.QtSql",
    "PySide6.QtTest",
    "PySide6.QtXml",
    "PySide6.QtConcurrent",
    "PySide6.QtDesigner",
    "PySide6.QtHelp",
    "PySide6.QtUiTools",
]
if sys.platform == "darwin":  # chromadb's default embedding function needs it, which we never call (68 MB);
    EXCLUDES.append("onnxruntime")  # on a Mac, OCR is Vision's: nothing else of ours runs ONNX models
# Qt plugins kept, by plugin folder; every other plugin the Qt hooks collect is dropped.
QT_PLUGINS = {
    "platforms": ["cocoa", "offscreen", "minimal", "xcb", "wayland"],  # macOS, the selftest, Linux desktops
    "imageformats": ["svg", "jpeg", "ico", "icns", "gif"],  # icons and pasted images (PNG is built into Qt)
    "iconengines": ["svgicon"],
    "styles": ["macstyle"],  # the native macOS look under our style sheet
    "platformthemes": ["xdgdesktopportal"],  # native file dialogs on Linux desktops (gtk3 needs GTK installed)
    "platforminputcontexts": ["composeplatforminputcontextplugin", "ibusplatforminputcontextplugin"],
    "xcbglintegrations": ["xcb-glx-integration", "xcb-egl-integration"],
    "wayland-shell-integration": ["xdg-shell"],
    "wayland-decoration-client": ["bradient"],
    "wayland-graphics-integration-client": ["shm-egl-server", "qt-egl-platform"],
}


def keep_qt_plugin(dest: str) -> bool:
    """Whether a collected file stays in the bundle: anything outside ``…/plugins/<folder>/<file>``
    does; a plugin does when ``QT_PLUGINS`` lists it (``libqxcb.so`` and ``libqcocoa.dylib`` are
    ``xcb`` and ``cocoa``)."""
    parts = Path(dest).parts
    if "plugins" not in parts or len(parts) < parts.index("plugins") + 3:
        return True
    i = parts.index("plugins")
    folder, name = parts[i + 1], parts[i + 2]
    stem = name.split(".")[0].removeprefix("lib")
    return any(stem in (keep, f"q{keep}") for keep in QT_PLUGINS.get(folder, []))


def info_plist(version: str) -> dict:
    """The bundle's Info.plist keys beyond those PyInstaller writes (CFBundleExecutable, …)."""
    return {
        "CFBundleName": APP_NAME,
        "CFBundleDisplayName": APP_NAME,
        "CFBundleIdentifier": BUNDLE_ID,
        "CFBundleShortVersionString": version,
        "CFBundleVersion": version,
        "CFBundlePackageType": "APPL",
        "CFBundleIconFile": "Orchard.icns",
        "LSMinimumSystemVersion": MIN_MACOS,
        "LSArchitecturePriority": ["arm64"],  # Apple Silicon only: Metal and mlx
        "LSRequiresNativeExecution": True,  # never under Rosetta
        "LSApplicationCategoryType": "public.app-category.productivity",
        "NSHighResolutionCapable": True,
        "NSRequiresAquaSystemAppearance": False,  # follow dark mode
        "NSSupportsAutomaticGraphicsSwitching": True,
        "NSHumanReadableCopyright": "Apache-2.0. Models keep their own licences.",
        "CFBundleDocumentTypes": [
            {
                "CFBundleTypeName": "PDF document",
                "CFBundleTypeRole": "Viewer",
                "LSHandlerRank": "Alternate",  # offered in "Open With", never the default for PDFs
                "LSItemContentTypes": ["com.adobe.pdf"],
            },
            {
                "CFBundleTypeName": "Image",  # scans and photos of text, read by OCR
                "CFBundleTypeRole": "Viewer",
                "LSHandlerRank": "Alternate",
                "LSItemContentTypes": ["public.png", "public.jpeg", "public.heic"],
            },
            {
                "CFBundleTypeName": "GGUF model",
                "CFBundleTypeRole": "Viewer",
                "LSHandlerRank": "Owner",
                "LSItemContentTypes": [f"{BUNDLE_ID}.gguf"],
                "CFBundleTypeExtensions": ["gguf"],
            },
        ],
        "UTExportedTypeDeclarations": [
            {
                "UTTypeIdentifier": f"{BUNDLE_ID}.gguf",
                "UTTypeDescription": "GGUF model",
                "UTTypeConformsTo": ["public.data"],
                "UTTypeTagSpecification": {"public.filename-extension": ["gguf"]},
            },
        ],
    }


def info_plist_bytes(version: str) -> bytes:
    return plistlib.dumps(info_plist(version))


def entitlements() -> dict:
    """The hardened-runtime entitlements in ``packaging/entitlements.plist``."""
    with ENTITLEMENTS.open("rb") as fh:
        return plistlib.load(fh)


def package_version() -> str:
    """The version in pyproject.toml (what ``macapp.__version__`` reports once installed)."""
    import re

    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
    if not match:
        raise ValueError("no version in pyproject.toml")
    return match.group(1)
