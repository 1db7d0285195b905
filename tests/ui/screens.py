"""Every page of the window in a state worth looking at, and the checks that find what is cut or spills over.

Shared by ``scripts/screens.py`` (``make screens``: PNGs of every scene at every size, light and dark) and
``tests/ui/test_screens.py`` (the checks, in ``make test``). Nothing here touches the real user's data: the
caller points ``MACAPP_HOME``, ``HOME`` and the Hugging Face variables at a temporary folder first, and
``seed_home`` fills it (models, a document collection, a conversation with citations).

A scene is one state of one window (or one dialog): ``Scenes`` builds the window once and walks it through
them in order, and ``look`` resizes it to each size and runs the checks there (a scene is built once and
seen at every size, as a person resizing the window sees it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QPalette, QTextDocument
from PySide6.QtGui import Qt as GuiQt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractScrollArea,
    QApplication,
    QCheckBox,
    QComboBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QStyle,
    QStyleOptionComboBox,
    QTableView,
    QTextEdit,
    QToolButton,
    QTreeView,
    QWidget,
)

SIZES: tuple[tuple[int, int], ...] = ((1180, 760), (900, 600), (1440, 900))  # the default size first
DEFAULT_SIZE = (1180, 760)
THEMES = ("light", "dark")
ELIDES = "elides"  # a widget with this property set to True may elide or cut its text (it shows it elsewhere)

MODEL_NAME = "SmolLM2-135M-Instruct-Q4_K_M.gguf"  # as long as the names people really have
QUESTION = "How do I read a CSV file in Python and sum one column? Keep it short."
ANSWER = (
    "Here is a small, dependable way to do it with the standard library only — no pandas needed.\n\n"
    '1. Open the file with `newline=""` so the csv module handles line endings itself.\n'
    "2. Read rows as dictionaries with `csv.DictReader`, so columns are found by their header.\n"
    "3. Convert each value before adding it up; empty cells are skipped.\n\n"
    "```python\n"
    "import csv\n"
    "from pathlib import Path\n\n"
    "def column_total(path: Path, column: str) -> float:\n"
    "    total = 0.0\n"
    '    with path.open(newline="", encoding="utf-8") as handle:\n'
    "        for row in csv.DictReader(handle):\n"
    "            value = (row.get(column) or '').strip()\n"
    "            if value:  # an empty cell is not a zero: it is skipped, and a bad number raises a ValueError\n"
    "                total += float(value)\n"
    "    return total\n\n"
    'print(column_total(Path("sales.csv"), "amount"))\n'
    "```\n\n"
    'If the file uses semicolons (common in European exports), pass `delimiter=";"` to `DictReader`. '
    "For very large files this still works well: it reads one row at a time, so memory stays flat whatever "
    "the file's size. When you need grouping or several columns at once, pandas' `read_csv` followed by "
    "`groupby` is shorter, at the cost of a large dependency.\n\n"
    "**Summary:** `csv.DictReader` plus a running total is enough for one column; reach for pandas when the "
    "questions get bigger."
)
HUB_REPO = "bartowski/Llama-3.2-3B-Instruct-GGUF"
CITED_QUESTION = "Why do beekeepers use smoke?"
CITED_ANSWER = (
    "Smoke masks the alarm scent the guard bees release, so the colony stays calm while the frames are lifted "
    "out [bees.pdf, p. 1]. A swarm, by contrast, leaves the hive in spring with the old queen [bees.pdf, p. 2]."
)
BEES = [
    "# Beekeeping\nBeekeepers puff smoke at the hive entrance to calm the colony before lifting out "
    "frames of honey. The smoke masks the alarm scent of the guard bees.",
    "# Swarms\nA swarm leaves the hive in spring with the old queen and settles on a branch nearby.",
]


# --- the data the scenes show ------------------------------------------------------------------------------
@dataclass
class Seed:
    """What ``seed_home`` put in the temporary home."""

    home: Path
    model: Path
    pdf: Path
    work: Path  # the folder the agent may write in
    conversation: int


def private_environment(home: Path) -> dict[str, str]:
    """The variables that keep the app inside ``home`` and off the network (as the tests' fixtures set them)."""
    return {
        "MACAPP_HOME": str(home / "orchard"),
        "HOME": str(home / "user"),
        "HF_HUB_CACHE": str(home / "hf-cache"),
        "HF_HOME": str(home / "hf-home"),
        "HF_ENDPOINT": "http://127.0.0.1:9",  # a closed port: Discover shows the curated catalog offline
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }


def _citation(number: int, page: int, text: str, pdf: Path) -> dict:
    from macapp.core.docs.answer import Citation

    return Citation(number, pdf.name, page, page, text, path=str(pdf), quote=text.split(". ")[0]).to_json()


def seed_home(home: Path) -> Seed:
    """Models (one with a long real-world name), a collection of one small PDF, and a conversation whose answer
    cites it. The environment must already point at ``home`` (``private_environment``)."""
    from macapp.core.chat.store import ChatStore
    from macapp.core.docs.embedder import load_embedder
    from macapp.core.docs.ingest import add_files
    from macapp.core.models.tiny_gguf import write_tiny_gguf
    from macapp.core.settings import Settings
    from tests.fixtures.pdfs import make_pdf

    (home / "user").mkdir(parents=True, exist_ok=True)
    models = home / "models"
    model = write_tiny_gguf(models / MODEL_NAME, ctx=8192, finetune="Instruct")
    write_tiny_gguf(models / "Qwen2.5-Coder-1.5B-Instruct-Q8_0.gguf", n_head=4, n_head_kv=1, qtype="f16", ctx=32768)
    write_tiny_gguf(models / "tiny-mha-f32.gguf")
    Settings(model_dirs=[str(models)], welcome_done=True).save()
    (home / "pdfs").mkdir(exist_ok=True)
    pdf = make_pdf(home / "pdfs" / "bees.pdf", BEES)
    for _ in add_files("Beekeeping notes", [pdf], load_embedder()):
        pass
    work = home / "work"
    work.mkdir(exist_ok=True)
    with ChatStore() as store:
        conv = store.create_conversation("Beekeeping and CSV files")
        question = store.add_message(conv.id, "user", CITED_QUESTION)
        reply = store.begin_message(conv.id, parent_id=question.id)
        store.append_text(reply.id, CITED_ANSWER)
        citations = [_citation(1, 1, BEES[0].split("\n", 1)[1], pdf), _citation(2, 2, BEES[1].split("\n", 1)[1], pdf)]
        store.finish_message(reply.id, finish_reason="stop", citations=citations)
    return Seed(home, model, pdf, work, conv.id)


# --- themes ------------------------------------------------------------------------------------------------
def set_theme(app: QApplication, theme: str) -> None:
    """The app's style sheet for ``theme``, over a palette like the one the system gives in that appearance."""
    from macapp.ui import theme as themes

    colors = themes.DARK if theme == "dark" else themes.LIGHT
    palette = QPalette()
    for role, name in (
        (QPalette.ColorRole.Window, "window"),
        (QPalette.ColorRole.Base, "card"),
        (QPalette.ColorRole.AlternateBase, "alt"),
        (QPalette.ColorRole.Button, "card"),
        (QPalette.ColorRole.WindowText, "text"),
        (QPalette.ColorRole.Text, "text"),
        (QPalette.ColorRole.ButtonText, "text"),
        (QPalette.ColorRole.PlaceholderText, "muted"),
        (QPalette.ColorRole.Highlight, "accent"),
        (QPalette.ColorRole.ToolTipBase, "card"),
        (QPalette.ColorRole.ToolTipText, "text"),
    ):
        palette.setColor(role, QColor(colors[name]))
    palette.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    app.setPalette(palette)
    app.setStyleSheet(themes.style_sheet(theme == "dark"))


# --- waiting without pytest-qt -----------------------------------------------------------------------------
def settle(ms: int = 60) -> None:
    """Let queued events, layouts and deferred timers run for ``ms``."""
    end = time.monotonic() + ms / 1000
    while True:
        QApplication.processEvents()
        if time.monotonic() >= end:
            return
        time.sleep(0.005)


def wait_until(condition: Callable[[], object], timeout_s: float = 20.0, what: str = "") -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {what or condition}")
        QApplication.processEvents()
        time.sleep(0.005)


# --- the scenes --------------------------------------------------------------------------------------------
@dataclass
class Shot:
    """One scene at one size: the widget looked at, and the problems the checks found in it."""

    scene: str
    size: tuple[int, int]
    widget: QWidget
    problems: dict[str, list[str]] = field(default_factory=dict)


class Scenes:
    """One window over the seeded home, walked through every scene. ``shots()`` yields each scene at each size."""

    ORDER = (
        "models",
        "models_too_big",
        "discover",
        "discover_search",
        "discover_repo",
        "chat",
        "chat_settings",
        "approval",
        "agent_steps",
        "chat_error",
        "documents",
        "documents_ingest",
        "page_viewer",
        "tuning",
        "tuning_problems",
        "welcome",
        "settings",
        "remote_servers",
        "about",
        "models_empty",
        "chat_empty",
    )

    def __init__(self, seed: Seed, sizes=SIZES):
        from macapp.core.engines.fake import FakeEngine
        from macapp.core.progress import drain
        from macapp.ui.main_window import MainWindow

        self.seed, self.sizes = seed, sizes
        self.window = MainWindow()
        self.window.resize(*sizes[0])
        self.window.show()
        wait_until(lambda: self.window.models_page.table_model.rowCount() == 3, what="the library scan")
        wait_until(lambda: not self.window.models_page.scanning, what="the library scan to end")
        self.engine = FakeEngine(MODEL_NAME, n_ctx=8192, chunk_delay_s=0.004)  # a speed a model could have
        drain(self.engine.load())
        self.engine.label = MODEL_NAME  # what the header shows for a loaded model
        self.resized: QWidget = self.window  # the window the sizes apply to (another one for the empty states)
        self.hub = None  # the fake Hub, started by the first scene that searches
        self.empty_window = None  # a second window over an empty home
        self._environ: dict[str, str | None] = {}  # variables a scene changed, restored by close()

    def close(self) -> None:
        from macapp.ui.worker import all_pools

        for name in ("settings_dialog", "about_dialog"):
            dialog = getattr(self.window.app_menu, name)
            if dialog is not None:
                dialog.close()
        self.window.close()
        if self.empty_window is not None:
            self.empty_window.close()
        for pool in all_pools():
            pool.waitForDone(10_000)
        QApplication.processEvents()
        if self.hub is not None:
            self.hub.stop()
        for name, value in self._environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def _setenv(self, name: str, value: str) -> None:
        self._environ.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def shots(self, scenes=ORDER) -> Iterator[Shot]:
        for scene in scenes:
            widget = getattr(self, f"scene_{scene}")()
            for size in self.sizes:
                self.resized.resize(*size)
                settle()
                problems = look(widget)
                if any(problems.values()):  # a layout still catching up on a busy machine is not a problem: again
                    settle(300)
                    problems = look(widget)
                yield Shot(scene, size, widget, problems)
            getattr(self, f"leave_{scene}", lambda: None)()

    # Each scene_* puts the window in its state and returns the widget to look at (the window or a dialog).
    def scene_models(self) -> QWidget:
        page = self.window.models_page
        self.window.show_page("Models")
        page.select_row(page.table_model.row_of_path(str(self.seed.model)))
        return self.window

    def scene_discover(self) -> QWidget:
        page = self.window.discover_page
        self.window.show_page("Discover")
        wait_until(lambda: bool(page.recommended.rows), what="Discover's recommendations")
        return self.window

    def scene_chat(self) -> QWidget:
        page = self.window.chat_page
        self.window.show_page("Chat")
        page.header.picker.select_path(str(self.seed.model))
        page.host.engine = self.engine  # as a finished load leaves it
        page.host.loaded.emit(self.engine)
        page.host.loadEnded.emit()
        page.open_conversation(self.seed.conversation)
        self.engine.enqueue(_chunks(ANSWER))
        done = []
        page.turnFinished.connect(done.append)
        page.send_message(QUESTION)
        wait_until(lambda: done and not page.busy, what="the streamed answer")
        page.turnFinished.disconnect(done.append)
        return self.window

    def _chat_ready(self) -> None:
        """The chat scene's state (the fake model loaded, an answer streamed), for a scene asked for without it."""
        if self.window.chat_page.engine is None:
            self.scene_chat()
        self.window.show_page("Chat")

    def scene_chat_settings(self) -> QWidget:
        self._chat_ready()
        self.window.chat_page.header.gear.setChecked(True)
        return self.window

    def leave_chat_settings(self) -> None:
        self.window.chat_page.header.gear.setChecked(False)

    def scene_approval(self) -> QWidget:
        self._chat_ready()
        page = self.window.chat_page
        page.new_chat()
        page.composer_box.tools_button.click()
        tools = page.drawer.tools
        tools.add_folder(str(self.seed.work))
        for name, box in tools.tool_boxes.items():
            box.setChecked(name in ("read_file", "list_folder", "write_file"))
        self.engine.enqueue_call("write_file", {"path": "notes/summary.txt", "content": "Bees dance.\n" * 3})
        self.engine.enqueue(["Not written."])
        page.send_message("Write a summary of the notes to notes/summary.txt")
        wait_until(lambda: bool(self._pending_cards()), what="the approval card")
        return self.window

    def _pending_cards(self):
        stream = self.window.chat_page.transcript.stream
        return stream.steps.pending_cards() if stream is not None and stream.steps is not None else []

    def leave_approval(self) -> None:
        page = self.window.chat_page
        self._pending_cards()[0].decide("deny")
        wait_until(lambda: not page.busy, what="the agent to end")
        page.composer_box.tools_button.click()

    def scene_documents(self) -> QWidget:
        page = self.window.documents_page
        self.window.show_page("Documents")
        wait_until(lambda: page.collection_list.count() > 0, what="the collections")
        page.collection_list.setCurrentRow(0)
        wait_until(lambda: page.files_table.rowCount() > 0, what="the collection's files")
        return self.window

    def scene_tuning(self) -> QWidget:
        from macapp.core.tuning.child import TrainProgress

        page = self.window.tuning_page
        self.window.show_page("Tuning")
        iters = 200
        page.plot.clear(iters)
        page.plot.iters = iters
        page.progress_bar.setRange(0, iters)
        page._set_state("training")  # as a run in progress shows it (no trainer behind it here)
        for i in range(1, 121):
            loss = 2.6 * (0.985**i) + 0.35 + 0.08 * ((i * 7919) % 13) / 13
            page._on_progress(
                TrainProgress(
                    "training",
                    i,
                    iters,
                    iteration=i,
                    iters=iters,
                    train_loss=loss,
                    eta_seconds=95.0,
                    tokens_per_second=1834.0,
                    peak_memory_bytes=1_250_000_000,
                )
            )
            if i % 20 == 0:
                page._on_progress(TrainProgress("validating", i, iters, iteration=i, iters=iters, val_loss=loss + 0.12))
        return self.window

    def leave_tuning(self) -> None:
        self.window.tuning_page._set_state("idle")

    def scene_welcome(self) -> QWidget:
        self.window.show_welcome()
        wait_until(lambda: self.window.welcome_visible, what="the welcome")
        return self.window

    def leave_welcome(self) -> None:
        self.window.show_page("Models")

    def scene_settings(self) -> QWidget:
        dialog = self.window.app_menu.open_settings()
        settle()
        return dialog

    def leave_settings(self) -> None:
        self.window.app_menu.settings_dialog.close()

    def scene_about(self) -> QWidget:
        dialog = self.window.app_menu.open_about()
        settle()
        return dialog

    def leave_about(self) -> None:
        self.window.app_menu.about_dialog.close()

    # --- the states and dialogs a person meets besides the pages' usual look --------------------------------
    def scene_models_too_big(self) -> QWidget:
        """A budget too small for the largest model: its row and its details read "Too big", in red."""
        from dataclasses import replace

        page = self.window.models_page
        self.window.show_page("Models")
        self._hardware = page.hardware
        totals = {
            e.path: est.total_bytes for e in page.table_model.entries() if (est := page.table_model.estimate(e.id))
        }
        biggest = max(totals, key=totals.__getitem__)
        if self._hardware is not None:
            budget = (min(totals.values()) + totals[biggest]) // 2
            page.apply_hardware(replace(self._hardware, budget_bytes=budget))
        page.select_row(page.table_model.row_of_path(biggest))
        return self.window

    def leave_models_too_big(self) -> None:
        if self._hardware is not None:
            self.window.models_page.apply_hardware(self._hardware)

    def _start_hub(self) -> None:
        """The fake Hub with a few GGUF repositories (tiny real headers under real-world names)."""
        if self.hub is not None:
            return
        from macapp.core.models.tiny_gguf import write_tiny_gguf
        from tests.fixtures.fake_hub import FakeHub

        files = self.seed.home / "hub-files"
        hub = self.hub = FakeHub().start()
        hub.add_repo(HUB_REPO, downloads=184_211, likes=312)
        for quant, layers, qtype in (
            ("Q4_K_M", 2, "q8_0"),
            ("Q5_K_M", 3, "q8_0"),
            ("Q8_0", 4, "q8_0"),
            ("F16", 6, "f16"),
        ):
            path = write_tiny_gguf(files / f"{quant}.gguf", n_layer=layers, qtype=qtype, ctx=32768)
            hub.add_file(HUB_REPO, f"Llama-3.2-3B-Instruct-{quant}.gguf", path)
        hub.add_file(HUB_REPO, "Llama-3.2-3B-Instruct-IQ2_XXS.gguf", b"not a model " * 100)
        hub.add_file(HUB_REPO, "README.md", b"# Llama 3.2 3B Instruct\n", lfs=False)
        for repo, downloads in (
            ("lmstudio-community/Llama-3.2-1B-Instruct-GGUF", 95_120),
            ("unsloth/Meta-Llama-3.1-8B-Instruct-GGUF", 61_004),
            ("someone-with-a-long-name/llama-3.2-3b-instruct-abliterated-uncensored-imatrix-GGUF", 12),
        ):
            hub.add_repo(repo, downloads=downloads, likes=downloads // 400)
            hub.add_file(repo, "model-Q4_K_M.gguf", files / "Q4_K_M.gguf")
        self._setenv("HF_ENDPOINT", hub.url)

    def scene_discover_search(self) -> QWidget:
        """Hub search results, and the downloads panel with a running, a paused and a failed download."""
        from macapp.core.models.download_queue import DownloadJob

        page = self.window.discover_page
        self.window.show_page("Discover")
        self._start_hub()
        done: list = []
        page.searchFinished.connect(lambda: done.append(True))
        page.search_box.setText("llama")
        page.search("llama")
        wait_until(lambda: done, what="the Hub search")
        self.jobs = [
            DownloadJob(
                9001,
                HUB_REPO,
                ["Llama-3.2-3B-Instruct-Q4_K_M.gguf"],
                state="running",
                done=812_000_000,
                total=2_019_000_000,
                speed=14_200_000.0,
                eta=85.0,
            ),
            DownloadJob(
                9002,
                "lmstudio-community/Llama-3.2-1B-Instruct-GGUF",
                ["Llama-3.2-1B-Instruct-Q8_0.gguf"],
                state="paused",
                done=310_000_000,
                total=1_321_000_000,
            ),
            DownloadJob(
                9003,
                "unsloth/Meta-Llama-3.1-8B-Instruct-GGUF",
                ["Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"],
                state="failed",
                done=1_200_000_000,
                total=4_920_000_000,
                error="Could not reach huggingface.co (the connection was reset). Retry continues where it stopped.",
            ),
        ]
        for job in self.jobs:  # as the queue reports them (no transfer behind them here)
            page.downloads._on_job(job)
        return self.window

    def scene_discover_repo(self) -> QWidget:
        """A repository's files: several quantizations, one that fits, one tight, one too big, one unreadable."""
        page = self.window.discover_page
        if self.hub is None:
            self.scene_discover_search()
        done: list = []
        page.repo_files.estimatesFinished.connect(lambda: done.append(True))
        page.select_repo(next(i for i, r in enumerate(page.repo_model.repos()) if r.id == HUB_REPO))
        wait_until(lambda: done, what="the repository's headers")
        totals = sorted(r.estimate.total_bytes for r in page.files.rows if r.estimate is not None)
        page.repo_files.reestimate(int(totals[-2] / 0.95), page.backend)  # the largest too big, the next tight
        return self.window

    def leave_discover_repo(self) -> None:
        page = self.window.discover_page
        for job in getattr(self, "jobs", []):
            page.downloads._drop_row(job)
        page.search_box.clear()

    def scene_agent_steps(self) -> QWidget:
        """A finished agent run: its steps (a listing and a file read) opened, with their results."""
        from macapp.ui.chat.agent_steps import StepsPanel

        self._chat_ready()
        page = self.window.chat_page
        notes = self.seed.work / "notes"
        notes.mkdir(exist_ok=True)
        (notes / "inspection-2024-05-hive-2-queenless.txt").write_text(
            "Hive 1: strong, two supers.\nHive 2: queenless — requeen in May.\n"
        )
        (notes / "swarms.txt").write_text("Swarm caught 14 May on the apple tree.\n")
        page.new_chat()
        page.composer_box.tools_button.click()
        tools = page.drawer.tools
        tools.add_folder(str(self.seed.work))
        for name, box in tools.tool_boxes.items():
            box.setChecked(name in ("read_file", "list_folder"))
        self.engine.enqueue_call(
            "list_folder", {"path": "notes"}, ("read_file", {"path": "notes/inspection-2024-05-hive-2-queenless.txt"})
        )
        self.engine.enqueue(_chunks("Hive 2 has no queen: your notes say to requeen it in May. Hive 1 is strong."))
        done: list = []
        page.agentFinished.connect(done.append)
        page.send_message("Which of my hives needs attention? The notes are in the notes folder.")
        wait_until(lambda: done and not page.busy, what="the agent run")
        page.agentFinished.disconnect(done.append)
        for panel in self.window.findChildren(StepsPanel):
            for row in panel.rows.values():
                row.set_expanded(True)
        return self.window

    def leave_agent_steps(self) -> None:
        self.window.chat_page.composer_box.tools_button.click()

    def scene_chat_error(self) -> QWidget:
        """The notice a failed model load leaves above the conversation."""
        from macapp.core.errors import UserError

        self._chat_ready()
        page = self.window.chat_page
        page.open_conversation(self.seed.conversation)
        page.host.loadFailed.emit(
            UserError(
                f"{MODEL_NAME} could not be loaded: failed to allocate a 4.2 GB buffer for the model's weights",
                hint="close other apps or pick a smaller quantization",
            )
        )
        return self.window

    def leave_chat_error(self) -> None:
        self.window.chat_page.notice.hide()

    def scene_documents_ingest(self) -> QWidget:
        """PDFs being added: one done, one read by OCR, one that failed, one waiting."""
        from macapp.core.docs.ingest import FileOutcome, IngestProgress
        from macapp.core.docs.pdf import PdfError, _check_file
        from macapp.ui.widgets.ingest_panel import _Batch, ocr_detail
        from macapp.ui.worker import Worker

        self.scene_documents()
        panel = self.window.documents_page.panel
        home = self.seed.home / "pdfs"
        done = panel._add_row("bees.pdf", str(self.seed.pdf))
        done.finish(FileOutcome(self.seed.pdf, "bees.pdf", "added", pages=2, chunks=2))
        scanned = panel._add_row("Apiary inspection records 2023 (scanned, all colonies).pdf")
        step = IngestProgress("ocr", 1.4, 4, page=19, pages=48, eta_seconds=75)
        scanned.show_step("ocr", 0.4, ocr_detail(step))
        not_pdf = home / "invoice.docx.pdf"
        not_pdf.write_bytes(b"PK\x03\x04 a renamed Word file")
        try:
            _check_file(not_pdf)  # the product's own words for it
        except PdfError as exc:
            bad = panel._add_row(not_pdf.name)
            bad.finish(FileOutcome(not_pdf, not_pdf.name, "failed", kind=exc.kind, message=exc.message, hint=exc.hint))
        panel._add_row("Swarm control.pdf")
        panel._batches.append(_Batch("add", "Beekeeping notes", list(panel.rows), Worker(lambda: None)))
        panel._update()
        return self.window

    def leave_documents_ingest(self) -> None:
        panel = self.window.documents_page.panel
        panel._batches.clear()
        panel._update()
        panel.clear()

    def scene_page_viewer(self) -> QWidget:
        """A cited page, its quote highlighted (the viewer is its own window: it takes the sizes)."""
        citation = _citation(1, 1, BEES[0].split("\n", 1)[1], self.seed.pdf)
        viewer = self.window.chat_page.documents.open_citation(citation)
        wait_until(lambda: viewer.pages and "rendering" not in viewer.page_label.text(), what="the cited page")
        self.resized = viewer
        return viewer

    def leave_page_viewer(self) -> None:
        self.resized.close()
        self.resized = self.window

    def scene_tuning_problems(self) -> QWidget:
        """A dataset with problems (their list under the plan) and the adapters list filled."""
        from macapp.core.tuning.adapters import AdapterInfo

        page = self.window.tuning_page
        self.window.show_page("Tuning")
        data = self.seed.home / "data" / "beekeeping-questions.jsonl"
        data.parent.mkdir(exist_ok=True)
        good = (
            '{"messages": [{"role": "user", "content": "Why smoke?"}, {"role": "assistant", "content": "It calms."}]}'
        )
        data.write_text(
            "\n".join(
                [good, '{"messages": [{"role": "user", "content": "unfinished"}', good, '{"text": 12}', "[]", good]
            )
            + "\n"
        )
        page.data_edit.setText(str(data))
        page.check()
        wait_until(lambda: page.state == "idle" and page.plan is not None, what="the dataset check")
        base = str(self.seed.home / "mlx" / "Qwen2.5-0.5B-Instruct-bf16")
        page.adapter_list._show(
            [
                AdapterInfo(
                    "beekeeping-answers-v2",
                    self.seed.home / "a1",
                    "complete",
                    base,
                    iterations=600,
                    settings={"mask_prompt": True},
                    val_loss=1.284,
                    size_bytes=23_400_000,
                ),
                AdapterInfo("csv-helper", self.seed.home / "a2", "incomplete", base, iterations=140),
                AdapterInfo(
                    "support-tone-with-a-name-long-enough-to-need-the-whole-row-and-more",
                    self.seed.home / "a3",
                    "complete",
                    base,
                    iterations=200,
                    settings={"mask_prompt": False},
                    size_bytes=11_700_000,
                ),
            ]
        )
        return self.window

    def leave_tuning_problems(self) -> None:
        page = self.window.tuning_page
        page.data_edit.clear()
        page.problem_list.hide()

    def scene_remote_servers(self) -> QWidget:
        """The Remote servers dialog with one server listed and selected."""
        dialog = self.remote_dialog = self.window.server_panel.open_remote_dialog()
        dialog.add_endpoint("gpu-box", "http://192.168.1.20:8000/v1")
        dialog.list.setCurrentRow(0)
        settle()
        return dialog

    def leave_remote_servers(self) -> None:
        self.remote_dialog.close()

    def _empty(self) -> QWidget:
        """A second window over an empty home: no models, no chats (the first run after the welcome)."""
        if self.empty_window is None:
            from macapp.core.settings import Settings
            from macapp.ui.main_window import MainWindow

            home = self.seed.home / "empty"
            for name, value in private_environment(home).items():
                self._setenv(name, value)
            (home / "user").mkdir(parents=True, exist_ok=True)
            Settings(welcome_done=True).save()
            window = self.empty_window = MainWindow()
            window.resize(*self.sizes[0])
            window.show()
            wait_until(lambda: not window.models_page.scanning, what="the empty library scan")
            self.window.hide()
        self.resized = self.empty_window
        return self.empty_window

    def scene_models_empty(self) -> QWidget:
        window = self._empty()
        window.show_page("Models")
        settle()
        return window

    def scene_chat_empty(self) -> QWidget:
        window = self._empty()
        window.show_page("Chat")
        settle()
        return window


def _chunks(text: str, size: int = 12) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


# --- the checks --------------------------------------------------------------------------------------------
def look(root: QWidget) -> dict[str, list[str]]:
    """Every problem in ``root`` as it is on screen now, by kind: ``cut`` (text elided or clipped), ``overflow``
    (a widget outside its parent), ``hscroll`` (a table or tree that scrolls sideways), ``nested`` (a scroll
    area scrolling inside another one, the same way)."""
    widgets = [w for w in [root, *root.findChildren(QWidget)] if w.isVisible() and not _hidden_away(w, root)]
    return {
        "cut": [p for w in widgets if (p := cut_text(w))],
        "overflow": [p for w in widgets if (p := overflow(w, root))],
        "hscroll": [p for w in widgets if (p := sideways_scroll(w))],
        "nested": [p for w in widgets if (p := nested_scroll(w, root))],
    }


def name_of(widget: QWidget) -> str:
    parts = []
    w = widget
    while w is not None and len(parts) < 3:
        parts.append(w.objectName() or type(w).__name__)
        w = w.parentWidget()
    return "/".join(reversed(parts))


def _hidden_away(widget: QWidget, root: QWidget) -> bool:
    """Covered by the welcome screen, or a zero-size widget: nothing of it is on screen."""
    if widget.width() <= 0 or widget.height() <= 0:
        return True
    return widget.visibleRegion().isEmpty()


def _marked(widget: QWidget) -> bool:
    return bool(widget.property(ELIDES))


def _line_width(fm, text: str) -> int:
    return max((fm.horizontalAdvance(line) for line in text.split("\n")), default=0)


def cut_text(widget: QWidget) -> str | None:
    """What of the widget's own text does not fit, if anything."""
    if _marked(widget):
        return None
    from macapp.ui.widgets.elided import ElidedLabel

    if isinstance(widget, ElidedLabel):
        full = widget.full_text()
        if widget.text() != full and full not in widget.toolTip():
            return f"{name_of(widget)}: {full!r} elided to {widget.text()!r}, its tooltip does not hold it"
        return None
    if callable(getattr(widget, "is_elided", None)) and callable(getattr(widget, "shown_tooltip", None)):
        # EllipsisLabel, ElidingComboBox: they paint "…" and their tooltip then holds the whole text
        full = widget.currentText() if isinstance(widget, QComboBox) else widget.text()
        if widget.is_elided() and full not in widget.shown_tooltip():
            return f"{name_of(widget)}: {full!r} is elided and its tooltip does not hold it"
        return None
    if isinstance(widget, QLabel):
        return _cut_label(widget)
    if isinstance(widget, (QCheckBox, QRadioButton, QPushButton, QToolButton)):
        return _cut_button(widget)
    if isinstance(widget, QComboBox):
        return _cut_combo(widget)
    if isinstance(widget, (QTableView, QTreeView)):
        return _cut_cells(widget)
    if isinstance(widget, (QPlainTextEdit, QTextEdit)):
        return _cut_document(widget)
    return None


def _cut_document(edit: QPlainTextEdit | QTextEdit) -> str | None:
    """A text view sized to its text (no vertical scroll bar) whose last lines do not fit."""
    if edit.verticalScrollBarPolicy() != Qt.ScrollBarPolicy.ScrollBarAlwaysOff or not edit.isReadOnly():
        return None
    doc = edit.document()
    if isinstance(edit, QPlainTextEdit):
        layout, block, height = doc.documentLayout(), doc.firstBlock(), 0.0
        while block.isValid():
            height += layout.blockBoundingRect(block).height()
            block = block.next()
    else:
        height = doc.size().height()
    room = edit.viewport().height()
    if height > room + 1:
        return f"{name_of(edit)}: {height:.0f}px of text in {room}px ({doc.toPlainText()[:40]!r})"
    return None


def _cut_label(label: QLabel) -> str | None:
    text = label.text()
    if not text or label.pixmap() is not None and not label.pixmap().isNull():
        return None
    rect = label.contentsRect()
    indent = max(label.indent(), 0) if label.indent() >= 0 else 0
    room = rect.width() - 2 * label.margin() - indent
    rich = label.textFormat() == Qt.TextFormat.RichText or (
        label.textFormat() == Qt.TextFormat.AutoText and GuiQt.mightBeRichText(text)
    )
    if label.wordWrap():
        need = label.heightForWidth(label.width())
        if need > label.height() + 2:
            return f"{name_of(label)}: {text[:60]!r} needs {need}px of height, has {label.height()}px"
        return None
    if rich:
        doc = QTextDocument()
        doc.setDefaultFont(label.font())
        doc.setDocumentMargin(0)
        doc.setHtml(text)
        width = doc.idealWidth()
        text = doc.toPlainText()
    else:
        width = _line_width(label.fontMetrics(), text)
    if width > room + 1:
        return f"{name_of(label)}: {text[:60]!r} is {width:.0f}px wide in {room}px"
    lines = text.count("\n") + 1
    if label.fontMetrics().lineSpacing() * lines > rect.height() + 4 and not rich:
        return f"{name_of(label)}: {lines} lines of {text[:40]!r} in {rect.height()}px of height"
    return None


def _cut_button(button: QAbstractButton) -> str | None:
    if not button.text():
        return None
    hint = button.sizeHint()
    if button.width() + 1 < hint.width():
        return f"{name_of(button)}: {button.text()!r} needs {hint.width()}px, has {button.width()}px"
    return None


def _cut_combo(combo: QComboBox) -> str | None:
    text = combo.currentText()
    if not text:
        return None
    option = QStyleOptionComboBox()
    combo.initStyleOption(option)
    field_rect = combo.style().subControlRect(
        QStyle.ComplexControl.CC_ComboBox, option, QStyle.SubControl.SC_ComboBoxEditField, combo
    )
    room = field_rect.width()
    if not combo.itemIcon(combo.currentIndex()).isNull():
        room -= combo.iconSize().width() + 4
    width = combo.fontMetrics().horizontalAdvance(text)
    if width > room:
        return f"{name_of(combo)}: {text!r} is {width}px wide in {room}px"
    return None


def _cut_cells(view: QAbstractItemView) -> str | None:
    """Header titles and the cells of the first rows that the view elides (a cell with a tooltip may, a little)."""
    model = view.model()
    if model is None:
        return None
    header = view.horizontalHeader() if isinstance(view, QTableView) else view.header()
    fm = view.fontMetrics()
    cut = []
    for column in range(model.columnCount()):
        if header.isSectionHidden(column) or header.sectionSize(column) <= 0:
            continue
        room = header.sectionSize(column)
        title = str(model.headerData(column, Qt.Orientation.Horizontal) or "")
        if title and header.fontMetrics().horizontalAdvance(title) + 12 > room:
            cut.append(f"header {title!r} in {room}px")
        for row in range(min(model.rowCount(), 8)):
            index = model.index(row, column)
            text = index.data(Qt.ItemDataRole.DisplayRole)
            if not isinstance(text, str) or not text:
                continue
            decoration = 20 if index.data(Qt.ItemDataRole.DecorationRole) is not None else 0
            # a cell with a tooltip may elide, but not to a stub: four characters and "…" at least ("be…" is not a name)
            shown = text if not index.data(Qt.ItemDataRole.ToolTipRole) else text[:4] + "…"
            if fm.horizontalAdvance(shown) + decoration + 8 > room:
                cut.append(f"{text!r} in {room}px")
    return f"{name_of(view)}: " + "; ".join(cut) if cut else None


def _scrolls(widget: QWidget) -> bool:
    """The widget is the content of a scroll area (or its viewport), which shows what does not fit."""
    parent = widget.parentWidget()
    if parent is None:
        return False
    area = parent.parentWidget()
    return isinstance(area, QAbstractScrollArea) and area.viewport() is parent


def overflow(widget: QWidget, root: QWidget) -> str | None:
    parent = widget.parentWidget()
    if widget is root or widget.isWindow() or parent is None or _scrolls(widget):
        return None
    if isinstance(parent, QAbstractScrollArea):  # its scroll bars and corner widgets are placed by the area
        return None
    inside = QRect(parent.rect()).adjusted(-1, -1, 1, 1)
    if not inside.contains(widget.geometry()):
        g = widget.geometry()
        return (
            f"{name_of(widget)} at {g.x()},{g.y()} {g.width()}x{g.height()} "
            f"outside its parent's {parent.width()}x{parent.height()}"
        )
    return None


def sideways_scroll(widget: QWidget) -> str | None:
    if isinstance(widget, QAbstractItemView) and widget.horizontalScrollBar().maximum() > 0:
        bar = widget.horizontalScrollBar()
        return f"{name_of(widget)} scrolls sideways by {bar.maximum()}px (viewport {widget.viewport().width()}px)"
    return None


def nested_scroll(widget: QWidget, root: QWidget) -> str | None:
    """A scroll area showing a vertical scroll bar inside another that shows one too."""
    if not isinstance(widget, QAbstractScrollArea) or not widget.verticalScrollBar().isVisible():
        return None
    outer = widget.parentWidget()
    while outer is not None and outer is not root:
        if isinstance(outer, QAbstractScrollArea) and outer.verticalScrollBar().isVisible():
            return f"{name_of(widget)} scrolls inside {name_of(outer)}"
        outer = outer.parentWidget()
    return None
