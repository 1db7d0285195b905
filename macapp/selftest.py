"""``Orchard --selftest`` / ``macapp selftest``: prove that this install (or frozen bundle) works.

Every step runs whatever happens to the ones before it, and prints one line: ``ok`` or ``FAIL``,
its seconds and what it saw. The steps import every backend and touch its native library
(llama.cpp, mlx and its metallib or CPU kernels, chromadb's Rust core, PDFium, Qt), build a tiny
random llama model in a temporary folder and generate a few tokens from it through the app's
engine and through the OpenAI-compatible server, embed a sentence with the bundled embedder,
index a PDF it writes (pages, chunks, vectors, keywords) and query it, read a picture of a page by OCR
(Vision on a Mac, RapidOCR's models on ONNX Runtime elsewhere),
train a few LoRA steps on a tiny mlx-lm model in the training child process, and open the main
window offscreen and wait for its first paint. The exit code is 0 only when every step passed:
``make app-smoke`` runs it inside the PyInstaller bundle, so a module or data file the freeze
missed fails here.

Nothing of the user's is touched: ``MACAPP_HOME`` and the Hugging Face cache point into the
temporary folder, the Hub is offline, and the window is offscreen unless ``--visible``.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

# Imported by name, as the app imports them (several lazily, so a freeze can miss them).
BACKEND_MODULES = (
    "numpy",
    "psutil",
    "platformdirs",
    "rich",
    "jinja2",
    "gguf",
    "llama_cpp",
    "mlx.core",
    "mlx.nn",
    "mlx_lm",
    "mlx_lm.models.llama",
    "mlx_lm.tuner.trainer",
    "mlx_lm.tuner.utils",
    "mlx_lm.lora",
    "mlx_lm.fuse",
    "transformers",
    "pypdfium2",
    "chromadb",
    "huggingface_hub",
    "starlette.applications",
    "uvicorn",
    "httpx",
    "PySide6.QtCore",
    "PySide6.QtGui",
    "PySide6.QtWidgets",
    "PySide6.QtSvg",
    "PIL.Image",
    "keyring",
    "macapp.core.secrets",
    "macapp.core.docs.scan",
    *(("Vision", "objc") if sys.platform == "darwin" else ("rapidocr", "onnxruntime")),
    "macapp.core.engines.llama_engine",
    "macapp.core.engines.mlx_engine",
    "macapp.core.docs.ingest",
    "macapp.core.docs.retrieve",
    "macapp.core.tuning.train",
    "macapp.core.tuning.runner",
    "macapp.core.tuning.export",
    "macapp.core.server.app",
    "macapp.ui.main_window",
)

Step = Callable[[Path], str]


def step_imports(_tmp: Path) -> str:
    missing = []
    for name in BACKEND_MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, not only ImportError
            missing.append(f"{name} ({type(exc).__name__}: {exc})")
    if missing:
        raise RuntimeError("could not import " + "; ".join(missing))
    return f"{len(BACKEND_MODULES)} modules"


def step_natives(tmp: Path) -> str:
    """Each native library does one real thing."""
    import chromadb
    import llama_cpp
    import mlx.core as mx
    import pypdfium2 as pdfium
    from chromadb.config import Settings as ChromaSettings

    total = mx.array([1.0, 2.0, 3.0]).sum()
    mx.eval(total)
    if total.item() != 6.0:
        raise RuntimeError(f"mlx computed {total.item()} for 1+2+3")
    system_info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")

    pdf = pdfium.PdfDocument.new()
    pdf.new_page(200, 300)
    pdf.new_page(200, 300)
    pdf_path = tmp / "blank.pdf"
    pdf.save(str(pdf_path))
    pdf.close()
    pages = len(pdfium.PdfDocument(str(pdf_path)))
    if pages != 2:
        raise RuntimeError(f"PDFium read {pages} pages back from a 2-page PDF")

    client = chromadb.PersistentClient(path=str(tmp / "chroma"), settings=ChromaSettings(anonymized_telemetry=False))
    col = client.get_or_create_collection("selftest", embedding_function=None, metadata={"hnsw:space": "cosine"})
    col.add(ids=["a", "b"], embeddings=[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], documents=["apple", "pear"])
    hit = col.query(query_embeddings=[[0.9, 0.1, 0.0]], n_results=1)["ids"][0][0]
    if hit != "a":
        raise RuntimeError(f"chromadb returned {hit!r} as the nearest vector")
    mlx_device = str(mx.default_device())
    return f"mlx on {mlx_device}; PDFium; chromadb; llama.cpp [{system_info.strip()[:60]}…]"


def step_generate(tmp: Path) -> str:
    from macapp.core.engines import open_engine
    from macapp.core.engines.base import SamplingSettings
    from macapp.core.models.tiny_gguf import write_tiny_gguf
    from macapp.core.progress import CancelToken, drain

    path = write_tiny_gguf(tmp / "models" / "tiny-selftest.gguf")
    engine = open_engine(str(path), n_ctx=256)
    cancel = CancelToken()
    drain(engine.load(cancel))
    try:
        _, result = drain(
            engine.stream_chat([{"role": "user", "content": "hello"}], SamplingSettings(max_tokens=8, seed=1), cancel)
        )
    finally:
        engine.unload()
    if not result.completion_tokens:
        raise RuntimeError("the tiny model generated no tokens")
    return f"{result.completion_tokens} tokens ({result.finish_reason}) from a tiny llama model"


def step_embed(_tmp: Path) -> str:
    import numpy as np

    from macapp.core.docs.embedder import bundled_embedder_path, load_embedder

    path = bundled_embedder_path()
    if not path.is_file():
        raise RuntimeError(f"the bundled embedder is missing: {path}")
    vectors = load_embedder(str(path)).embed(["Orchard runs open-weight models on a Mac."])
    norm = float(np.linalg.norm(vectors[0]))
    if vectors.shape[0] != 1 or abs(norm - 1.0) > 1e-3:
        raise RuntimeError(f"bad sentence vector: shape {vectors.shape}, norm {norm:.4f}")
    return f"{vectors.shape[1]}-d vector from {path.name}"


def _write_text_pdf(path: Path, pages: list[list[str]]) -> Path:
    """A PDF with a real text layer, one Helvetica line per string, written with PDFium itself."""
    import ctypes

    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    pdf = pdfium.PdfDocument.new()
    for lines in pages:
        page = pdf.new_page(612, 792)
        for row, line in enumerate(lines):
            obj = raw.FPDFPageObj_NewTextObj(pdf.raw, b"Helvetica", ctypes.c_float(12))
            text = ctypes.create_string_buffer((line + "\0").encode("utf-16-le"))
            raw.FPDFText_SetText(obj, ctypes.cast(text, ctypes.POINTER(raw.FPDF_WCHAR)))
            raw.FPDFPageObj_Transform(obj, 1, 0, 0, 1, 72, 720 - 18 * row)
            raw.FPDFPage_InsertObject(page.raw, obj)
        raw.FPDFPage_GenerateContent(page.raw)
        page.close()
    pdf.save(str(path))
    pdf.close()
    return path


def step_documents(tmp: Path) -> str:
    """A PDF through the whole documents path: pages, chunks, the embedder, chromadb and FTS5, a hybrid query."""
    from macapp.core.docs.embedder import load_embedder
    from macapp.core.docs.ingest import add_files
    from macapp.core.docs.retrieve import query
    from macapp.core.progress import drain

    pdf = _write_text_pdf(
        tmp / "orchard-care.pdf",
        [
            ["Apple trees are pruned in late winter, before the buds open.", "Cut crossing branches first."],
            ["Pears are picked hard and ripen off the tree, in a cool room."],
        ],
    )
    embedder = load_embedder()
    _, outcomes = drain(add_files("selftest", [pdf], embedder))
    if [o.status for o in outcomes] != ["added"]:
        raise RuntimeError(f"the PDF was not added: {outcomes}")
    best = query("selftest", "when do pears ripen?", k=1, embedder=embedder)
    if not best or not best[0].page <= 2 <= best[0].page_end or "ripen off the tree" not in best[0].text:
        raise RuntimeError(f"the question found {best[:1]} instead of the passage on page 2")
    hit = best[0]
    pages = f"pp. {hit.page}-{hit.page_end}" if hit.page_end != hit.page else f"p. {hit.page}"
    return f"{pdf.name}: 2 pages indexed; the question found its passage [{hit.file}, {pages}]"


def step_ocr(tmp: Path) -> str:
    """A picture of a page (a PNG rendered from a PDF it writes) read by this platform's OCR engine."""
    from macapp.core.docs.render import encode_png, page_images
    from macapp.core.docs.scan import read_document
    from macapp.core.progress import drain

    pdf = _write_text_pdf(tmp / "label.pdf", [["Quince jelly from the orchard shop"]])
    ((_, pixels, _),) = page_images(pdf, [1], 1200)
    picture = tmp / "label.png"
    picture.write_bytes(encode_png(pixels[: pixels.shape[0] // 4]))  # the top of the page, where the line is
    started = time.monotonic()
    _, (page,) = drain(read_document(picture))
    if page.source != "ocr" or "quince jelly" not in page.text.lower():
        raise RuntimeError(f"OCR read {page.text!r} from a picture of 'Quince jelly from the orchard shop'")
    from macapp.core.docs.ocr import default_engine

    return f"{default_engine().name} read {page.text!r} in {time.monotonic() - started:.1f} s"


def step_serve(tmp: Path) -> str:
    """The OpenAI-compatible server (uvicorn + starlette) on a free loopback port answers a chat."""
    import httpx

    from macapp.core.models.model_ids import short_name
    from macapp.core.models.tiny_gguf import write_tiny_gguf
    from macapp.core.server.launch import ServerOptions, start_server
    from macapp.core.settings import Settings

    model = write_tiny_gguf(tmp / "served" / "tiny-served.gguf")
    Settings(model_files=[str(model)]).save()
    with start_server(ServerOptions(port=0, n_ctx=256, idle_unload_s=0)) as server:
        ids = [m["id"] for m in httpx.get(f"{server.url}/models", timeout=30).json()["data"]]
        served = next((i for i in ids if i == short_name(model.name)), None)  # the library's short id
        if served is None:
            raise RuntimeError(f"/v1/models does not list the tiny model: {ids}")
        reply = httpx.post(
            f"{server.url}/chat/completions",
            timeout=60,
            json={"model": served, "max_tokens": 4, "messages": [{"role": "user", "content": "hello"}]},
        )
        reply.raise_for_status()
        usage = reply.json()["usage"]
    if not usage.get("completion_tokens"):
        raise RuntimeError(f"the server generated nothing: {reply.text[:200]}")
    return f"{server.url}: /models and a chat answer of {usage['completion_tokens']} tokens"


def step_tune(tmp: Path) -> str:
    """A few LoRA iterations on a tiny mlx-lm model, in the training child (``-m`` in a bundle)."""
    import json

    from macapp.core.progress import drain
    from macapp.core.tuning.tiny_mlx import write_tiny_mlx
    from macapp.core.tuning.train import TrainOptions, train_lora

    base = write_tiny_mlx(tmp / "mlx-base")
    data = tmp / "tune.jsonl"
    with data.open("w", encoding="utf-8") as fh:
        for question in ("what colour is the sky?", "name a colour.", "which colour is the sea?", "pick a colour."):
            fh.write(
                json.dumps(
                    {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": "blue"}]}
                )
                + "\n"
            )
    options = TrainOptions(
        base=base,
        data=data,
        name="selftest",
        rank=4,
        layers=-1,
        iters=4,
        batch_size=2,
        max_seq_length=64,
        steps_per_report=2,
        steps_per_eval=4,
        save_every=4,
        val_batches=1,
        valid_fraction=0.25,
        check_memory=False,
    )
    _, result = drain(train_lora(options))
    if result.iterations != options.iters or result.train_loss is None:
        raise RuntimeError(f"training stopped at {result.iterations} iterations (loss {result.train_loss})")
    return f"{result.iterations} LoRA iterations, loss {result.train_loss:.2f}, adapter {result.adapter.name!r}"


def step_window(_tmp: Path) -> str:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from macapp import APP_NAME
    from macapp.ui.main_window import MainWindow
    from macapp.ui.theme import apply_theme
    from macapp.ui.worker import shutdown_workers

    app = QApplication.instance() or QApplication([APP_NAME])
    apply_theme(app)
    painted: list[float] = []
    started = time.monotonic()

    def on_paint() -> None:
        painted.append(time.monotonic() - started)
        QTimer.singleShot(0, app.quit)

    window = MainWindow(on_first_paint=on_paint)
    window.show()
    QTimer.singleShot(30_000, app.quit)  # a window that never paints fails, not hangs
    app.exec()
    size = window.grab().size()
    window.close()
    shutdown_workers()
    if not painted:
        raise RuntimeError("the main window did not paint within 30 s")
    return f"{app.platformName()} window {size.width()}x{size.height()} painted in {painted[0]:.2f} s"


def step_keychain(_tmp: Path) -> str:
    """keyring finds its backends (found through package metadata, which a freeze can miss); nothing is stored."""
    import keyring

    from macapp.core.secrets import keychain_problem

    problem = keychain_problem()
    if problem is None:
        backend = keyring.get_keyring()
        return f"{type(backend).__module__}.{type(backend).__name__}"
    if sys.platform == "darwin" and not os.environ.get("PYTHON_KEYRING_BACKEND"):
        raise RuntimeError(f"{problem}: a Mac always has its Keychain, so the freeze missed keyring's backends")
    return f"none: {problem}"  # not a failure: keys can still come from environment variables


STEPS: dict[str, Step] = {
    "imports": step_imports,
    "natives": step_natives,
    "keychain": step_keychain,
    "generate": step_generate,
    "embed": step_embed,
    "documents": step_documents,
    "ocr": step_ocr,
    "serve": step_serve,
    "tune": step_tune,
    "window": step_window,
}


def run(visible: bool = False, out=None) -> int:
    """Run every step; 0 when all passed."""
    out = out or sys.stdout
    tmp = Path(tempfile.mkdtemp(prefix="orchard-selftest-"))
    os.environ["MACAPP_HOME"] = str(tmp / "home")
    os.environ["HF_HUB_CACHE"] = str(tmp / "hf")
    os.environ["HF_HUB_OFFLINE"] = "1"
    if not visible:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    frozen = "frozen bundle" if getattr(sys, "frozen", False) else "source install"
    print(f"Orchard selftest ({frozen}, {sys.executable})", file=out, flush=True)
    failed = []
    began = time.monotonic()
    for name, step in STEPS.items():
        t0 = time.monotonic()
        try:
            detail = step(tmp)
            print(f"ok    {name:<9} {time.monotonic() - t0:6.2f} s  {detail}", file=out, flush=True)
        except Exception as exc:  # noqa: BLE001 - a failed step is reported and the next one runs
            failed.append(name)
            print(f"FAIL  {name:<9} {time.monotonic() - t0:6.2f} s  {type(exc).__name__}: {exc}", file=out, flush=True)
            traceback.print_exc(file=sys.stderr)
    total = time.monotonic() - began
    if failed:
        print(f"selftest FAILED: {', '.join(failed)} ({total:.1f} s)", file=out, flush=True)
        return 1
    print(f"selftest ok: {len(STEPS)} steps in {total:.1f} s", file=out, flush=True)
    return 0
