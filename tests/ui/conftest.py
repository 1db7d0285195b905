"""UI tests run offscreen with a private data dir, HF cache and home (never the real ones)."""

from __future__ import annotations

import gc
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from macapp.core.models.tiny_gguf import write_tiny_gguf  # noqa: E402


@pytest.fixture(autouse=True)
def private_user_home(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """On top of the root isolation (data dir, HF cache and home, closed Hub port): a private $HOME,
    so the real user's LM Studio folder is never scanned."""
    home = isolated_home / "user"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def collect_on_the_gui_thread():
    """Garbage of earlier tests (Qt wrappers in reference cycles) is collected here, on the GUI thread: a collection
    that a worker thread happens to trigger would delete those Qt objects off their thread, and Qt crashes
    (seen once: a segfault while the Tuning page's worker loaded a tokenizer)."""
    gc.collect()
    yield


@pytest.fixture(autouse=True)
def no_stray_workers(qtbot):
    """Every test's background work ends (and its signals are delivered) before widgets go."""
    yield
    from PySide6.QtCore import QCoreApplication

    from macapp.ui.worker import all_pools

    for pool in all_pools():  # the global pool and the named ones (indexing)
        pool.waitForDone(10_000)
    QCoreApplication.processEvents()


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A folder of three tiny models of different shapes."""
    folder = tmp_path / "models"
    write_tiny_gguf(folder / "tiny-mha-f32.gguf")
    write_tiny_gguf(folder / "tiny-gqa-f16.gguf", n_head=4, n_head_kv=1, qtype="f16", ctx=4096, vocab_size=1000)
    write_tiny_gguf(folder / "nested" / "tiny-chat-q8_0.gguf", qtype="q8_0", n_embd=128, n_layer=3, finetune="Chat")
    return folder


@pytest.fixture
def window_factory(qtbot):
    """Open a MainWindow and wait until its first library scan has finished.

    The windows stay referenced until their background work has ended, so no queued signal
    reaches a window that is already gone.
    """
    from PySide6.QtCore import QCoreApplication

    from macapp.ui.main_window import MainWindow
    from macapp.ui.worker import all_pools

    windows: list[MainWindow] = []

    def open_window() -> MainWindow:
        window = MainWindow()
        qtbot.addWidget(window)
        windows.append(window)
        with qtbot.waitSignal(window.models_page.scanFinished, timeout=15_000):
            window.show()
        return window

    yield open_window
    for pool in all_pools():
        pool.waitForDone(10_000)
    QCoreApplication.processEvents()
    for window in windows:
        window.close()
