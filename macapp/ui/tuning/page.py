"""The Tuning page: LoRA-tune an mlx-lm base model on a JSONL dataset (or saved chats), watching the loss.

Flow: choose a base model folder and a dataset, name the adapter, adjust the settings, then **Check**
(``plan_training`` in a Worker: every dataset problem with its line, token statistics, the memory
estimate with its verdict and a suggestion). Check works on the dataset alone before a base is chosen
(token counts are then approximate and labelled so). Chat and prompt/completion data learn from the
answers only unless "Train on prompts too" is ticked; for text data that box is disabled with the
reason. A GGUF chosen as base is named as such, with a button that downloads the catalog's MLX twin.
**Start** is enabled only by a clean check of the settings on screen; any change asks for a new check.
Training (``train_lora``) runs on the "tuning" pool — the child process does the work, so a crash
can't take the app down — and streams progress into the loss plot and the progress line. **Cancel**
terminates the child; the last checkpoint stays and **Resume** continues from it. When done, **Try in
chat** emits ``tryInChat(name)``. Existing adapters are listed below (read in a Worker when the page is
shown and after each run).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from macapp.core.errors import UserError
from macapp.core.models.mlx_fetch import fetch_mlx_model
from macapp.core.progress import CancelToken, Progress
from macapp.core.tuning.base_model import NotAnMlxModel, require_mlx_folder
from macapp.core.tuning.child import TrainProgress
from macapp.core.tuning.datasets import sniff_format, write_chat_dataset
from macapp.core.tuning.estimate import default_settings
from macapp.core.tuning.train import TrainOptions, TrainPlan, TrainResult, can_resume, plan_training, train_lora
from macapp.core.units import format_bytes
from macapp.ui.tuning.adapter_list import AdapterList
from macapp.ui.tuning.chat_picker import ChatPicker, read_conversations
from macapp.ui.tuning.loss_plot import LossPlot
from macapp.ui.tuning.texts import (
    ANSWERS_ONLY,
    PROMPTS_TOO,
    TEXT_ONLY,
    done_text,
    plan_blocks_start,
    plan_text,
    problem_lines,
    progress_text,
    stopped_text,
)
from macapp.ui.widgets.notice import Notice
from macapp.ui.widgets.page_header import PageHeader
from macapp.ui.worker import Latest, Worker, error_text, named_pool

log = logging.getLogger(__name__)


def tuning_pool():
    """One training at a time, on a pool of its own (it never waits behind other work)."""
    return named_pool("tuning", 1)


class TuningPage(QWidget):
    """Choose, check, train (with a live loss curve), cancel/resume, and try the adapter in chat."""

    tryInChat = Signal(str)
    planned = Signal(object)  # the TrainPlan shown (tests wait for it)
    trainingEnded = Signal(str)  # "done", "cancelled" or "failed"
    adaptersListed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.budget_bytes: int | None = None  # from the hardware probe; None = detect when checking
        self.extra_options: dict[str, Any] = {}  # TrainOptions fields the form doesn't show (tests, advanced)
        self.plan: TrainPlan | None = None
        self.check_worker: Worker | None = None
        self.train_worker: Worker | None = None
        self.fetch_worker: Worker | None = None
        self.data_format: str | None = None  # of the dataset's first line, for the prompt option
        self.last_options: TrainOptions | None = None
        self.trained_name: str | None = None
        self._checks = Latest()  # a newer Check makes an older check's answer stale
        self._defaults_applied = False

        root = QVBoxLayout(self)
        root.setContentsMargins(24, 18, 24, 18)
        root.setSpacing(10)
        root.addWidget(PageHeader("Tuning", "LoRA-tune an MLX model on your own examples"))
        self.notice = Notice()
        root.addWidget(self.notice)

        body = QHBoxLayout()
        body.setSpacing(18)
        left = QVBoxLayout()
        left.addWidget(self._build_form())
        left.addStretch(1)
        body.addLayout(left, 0)
        body.addLayout(self._build_right(), 1)
        root.addLayout(body, 1)
        self._connect_invalidation()
        self._set_state("idle")

    # --- building -------------------------------------------------------------------------------
    def _build_form(self) -> QWidget:
        box = QFrame()
        box.setObjectName("tuningForm")
        box.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        box.setMaximumWidth(420)
        form = QFormLayout(box)
        form.setContentsMargins(14, 12, 14, 12)
        form.setVerticalSpacing(7)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)

        self.base_edit = QLineEdit()
        self.base_edit.setPlaceholderText("an mlx-lm model folder")
        self.base_edit.setToolTip(TrainOptions.__dataclass_fields__["base"].metadata["help"])
        base_browse = QPushButton("Browse…")
        base_browse.clicked.connect(self._browse_base)
        form.addRow("Base model", self._row(self.base_edit, base_browse))

        self.data_edit = QLineEdit()
        self.data_edit.setPlaceholderText("a .jsonl file")
        self.data_edit.setToolTip(TrainOptions.__dataclass_fields__["data"].metadata["help"])
        data_browse = QPushButton("Browse…")
        data_browse.clicked.connect(self._browse_data)
        self.chats_button = QPushButton("From chats…")
        self.chats_button.setToolTip("Build a dataset from saved conversations")
        self.chats_button.clicked.connect(self._choose_chats)
        form.addRow("Dataset", self._row(self.data_edit, data_browse))
        form.addRow("", self._row(self.chats_button, stretch=True))

        self.name_edit = QLineEdit("my-adapter")
        self.name_edit.setToolTip(TrainOptions.__dataclass_fields__["name"].metadata["help"])
        form.addRow("Adapter name", self.name_edit)

        defaults = TrainOptions(base=Path(), data=Path(), name="x")
        self.iters_spin = self._spin(1, 1_000_000, defaults.iters, "iters")
        self.rank_spin = self._spin(1, 512, defaults.rank, "rank")
        self.layers_spin = self._spin(-1, 512, defaults.layers, "layers")
        self.lr_edit = QLineEdit(f"{defaults.learning_rate:g}")
        self.lr_edit.setToolTip(TrainOptions.__dataclass_fields__["learning_rate"].metadata["help"])
        self.batch_spin = self._spin(1, 1024, defaults.batch_size, "batch_size")
        self.seq_spin = self._spin(16, 1_000_000, defaults.max_seq_length, "max_seq_length")
        self.seq_spin.setSingleStep(256)
        self.prompt_check = QCheckBox("Train on prompts too")
        self.prompt_check.setToolTip("Also learn the prompts (user and system messages), not only the answers")
        self.learn_label = QLabel(ANSWERS_ONLY)
        self.learn_label.setObjectName("muted")
        self.learn_label.setWordWrap(True)
        self.checkpoint_check = QCheckBox("Gradient checkpointing")
        self.checkpoint_check.setToolTip(TrainOptions.__dataclass_fields__["grad_checkpoint"].metadata["help"])
        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        for row, pairs in enumerate(
            (
                ("Iterations", self.iters_spin, "Rank", self.rank_spin),
                ("Layers", self.layers_spin, "Learning rate", self.lr_edit),
                ("Batch", self.batch_spin, "Max tokens", self.seq_spin),
            )
        ):
            for col, item in enumerate(pairs):
                grid.addWidget(QLabel(item) if isinstance(item, str) else item, row, col)
        form.addRow(grid)
        form.addRow(self.prompt_check)
        form.addRow(self.learn_label)
        form.addRow(self.checkpoint_check)

        self.check_button = QPushButton("Check")
        self.check_button.setToolTip("Validate the dataset and estimate memory before training")
        self.check_button.clicked.connect(self.check)
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("primary")
        self.start_button.clicked.connect(lambda: self.start(resume=False))
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the stopped run from its last checkpoint")
        self.resume_button.clicked.connect(lambda: self.start(resume=True))
        form.addRow(
            self._row(self.check_button, self.start_button, self.cancel_button, self.resume_button, stretch=True)
        )
        return box

    def _build_right(self) -> QVBoxLayout:
        right = QVBoxLayout()
        right.setSpacing(8)
        self.plan_label = QLabel("Choose a dataset (and a base model), then Check.")
        self.plan_label.setObjectName("muted")
        self.plan_label.setWordWrap(True)
        self.plan_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        right.addWidget(self.plan_label)
        self.problem_list = QListWidget()
        self.problem_list.setObjectName("problemList")
        self.problem_list.setMaximumHeight(120)
        self.problem_list.setWordWrap(True)
        self.problem_list.hide()
        right.addWidget(self.problem_list)
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setMaximumHeight(6)
        right.addWidget(self.progress_bar)
        status = QHBoxLayout()
        self.progress_label = QLabel("")
        self.progress_label.setObjectName("muted")
        self.try_button = QPushButton("Try in chat")
        self.try_button.setObjectName("primary")
        self.try_button.clicked.connect(lambda: self.trained_name and self.tryInChat.emit(self.trained_name))
        status.addWidget(self.progress_label, 1)
        status.addWidget(self.try_button)
        right.addLayout(status)
        self.plot = LossPlot()
        right.addWidget(self.plot, 3)
        adapters_title = QLabel("Adapters")
        adapters_title.setObjectName("strong")
        right.addWidget(adapters_title)
        self.adapter_list = AdapterList()
        self.adapter_list.listed.connect(self.adaptersListed)
        right.addWidget(self.adapter_list, 1)
        return right

    @staticmethod
    def _row(*widgets: QWidget, stretch: bool = False) -> QWidget:
        row = QWidget()
        lay = QHBoxLayout(row)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(6)
        for w in widgets:
            lay.addWidget(w, 1 if isinstance(w, QLineEdit) else 0)
        if stretch:
            lay.addStretch(1)
        return row

    @staticmethod
    def _spin(lo: int, hi: int, value: int, field_name: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(lo, hi)
        spin.setValue(value)
        spin.setToolTip(TrainOptions.__dataclass_fields__[field_name].metadata["help"])
        spin.setMinimumWidth(70)
        return spin

    def _connect_invalidation(self) -> None:
        for edit in (self.base_edit, self.data_edit, self.name_edit, self.lr_edit):
            edit.textChanged.connect(self._invalidate)
        for spin in (self.iters_spin, self.rank_spin, self.layers_spin, self.batch_spin, self.seq_spin):
            spin.valueChanged.connect(self._invalidate)
        for box in (self.prompt_check, self.checkpoint_check):
            box.toggled.connect(self._invalidate)
        self.data_edit.textChanged.connect(self._data_changed)
        self.prompt_check.toggled.connect(self._show_learning)
        self.base_edit.editingFinished.connect(self._base_chosen)

    # --- state ----------------------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        """idle | checking | training | cancelling | downloading (the base's MLX twin)."""
        self.state = state
        busy = state in ("training", "cancelling", "downloading")
        for w in (
            self.base_edit,
            self.data_edit,
            self.name_edit,
            self.chats_button,
            self.iters_spin,
            self.rank_spin,
            self.layers_spin,
            self.lr_edit,
            self.batch_spin,
            self.seq_spin,
            self.checkpoint_check,
        ):
            w.setEnabled(not busy)
        self.prompt_check.setEnabled(not busy and self.data_format != "text")
        self.check_button.setEnabled(state == "idle")
        self.start_button.setEnabled(state == "idle" and self.plan is not None and not plan_blocks_start(self.plan))
        self.cancel_button.setVisible(busy)
        self.cancel_button.setEnabled(state in ("training", "downloading"))
        self.resume_button.setVisible(state == "idle" and self._resumable())
        self.try_button.setVisible(state == "idle" and self.trained_name is not None)
        self.progress_bar.setVisible(busy)

    def _resumable(self) -> bool:
        opts = self.last_options
        return opts is not None and self.trained_name != opts.name and can_resume(opts.name)

    def _invalidate(self, *_args) -> None:
        if self.plan is not None:
            self.plan = None
            self.plan_label.setText("Settings changed — Check again before starting.")
        if self.state == "idle":
            self._set_state("idle")

    def apply_hardware(self, hw) -> None:
        """The hardware probe's budget for estimates and, once, settings suited to this Mac."""
        self.budget_bytes = hw.budget_bytes
        if not self._defaults_applied:
            self._defaults_applied = True
            d = default_settings(hw.total_bytes)
            self.batch_spin.setValue(d["batch_size"])
            self.seq_spin.setValue(d["max_seq_length"])
            self.layers_spin.setValue(d["layers"])
            self.rank_spin.setValue(d["rank"])
            self.checkpoint_check.setChecked(d["grad_checkpoint"])

    def options(self, need_base: bool = True) -> TrainOptions:
        """The form as TrainOptions (``base`` None when not chosen and not ``need_base``); raises ValueError
        for a field that can't be read."""
        base, data, name = self.base_edit.text().strip(), self.data_edit.text().strip(), self.name_edit.text().strip()
        if not data:
            raise ValueError("Choose a dataset first.")
        if (need_base and not base) or not name:
            raise ValueError("Choose a base model, a dataset and an adapter name first.")
        try:
            lr = float(self.lr_edit.text())
        except ValueError:
            raise ValueError(f"The learning rate {self.lr_edit.text()!r} is not a number.") from None
        if lr <= 0:
            raise ValueError("The learning rate must be above zero.")
        prompts_too = self.prompt_check.isChecked() and self.data_format != "text"
        options = TrainOptions(
            base=Path(base).expanduser() if base else None,
            data=Path(data).expanduser(),
            name=name,
            iters=self.iters_spin.value(),
            rank=self.rank_spin.value(),
            layers=self.layers_spin.value(),
            learning_rate=lr,
            batch_size=self.batch_spin.value(),
            max_seq_length=self.seq_spin.value(),
            mask_prompt=False if prompts_too else None,
            grad_checkpoint=self.checkpoint_check.isChecked(),
        )
        return replace(options, **self.extra_options)

    # --- choosing -------------------------------------------------------------------------------
    def _browse_base(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Base model folder (mlx-lm)", self.base_edit.text())
        if folder:
            self.base_edit.setText(folder)

    def _data_changed(self, text: str) -> None:
        """Enable the prompt option for data that has prompts; disable it, with the reason, for text."""
        path = Path(text.strip()).expanduser()
        self.data_format = sniff_format(path) if text.strip() and path.is_file() else None
        if self.state == "idle":
            self.prompt_check.setEnabled(self.data_format != "text")
        self._show_learning()

    def _show_learning(self, *_args) -> None:
        if self.data_format == "text":
            self.learn_label.setText(TEXT_ONLY)
            self.prompt_check.setToolTip(TEXT_ONLY)
            return
        self.prompt_check.setToolTip("Also learn the prompts (user and system messages), not only the answers")
        self.learn_label.setText(PROMPTS_TOO if self.prompt_check.isChecked() else ANSWERS_ONLY)

    def _base_chosen(self) -> None:
        """A GGUF typed or dropped as base is named at once, with its MLX twin offered."""
        text = self.base_edit.text().strip()
        if text.lower().endswith(".gguf"):
            try:
                require_mlx_folder(text)
            except UserError as exc:
                self._show_error(exc)

    def _show_error(self, exc: BaseException) -> None:
        if isinstance(exc, NotAnMlxModel) and exc.twin:
            self.notice.show_message(
                f"{exc.message}. The catalog's MLX version of this model is {exc.twin}.",
                action="Download the MLX version",
                on_action=lambda: self.fetch_base(exc.twin),
            )
        else:
            self.notice.show_message(error_text(exc))

    def fetch_base(self, repo: str) -> None:
        """Download an MLX model (the GGUF's twin) and choose it as the base."""
        if self.state != "idle":
            return
        self.progress_label.setText(f"Downloading {repo}…")
        self.progress_bar.setRange(0, 0)
        token = CancelToken()
        worker = self.fetch_worker = Worker(fetch_mlx_model, repo, cancel=token, token=token)
        worker.signals.yielded.connect(self._on_fetch_progress)
        worker.signals.returned.connect(self._on_fetched)
        worker.signals.aborted.connect(lambda: self._fetch_ended("Download cancelled."))
        worker.signals.errored.connect(self._on_fetch_failed)
        self._set_state("downloading")
        worker.start()

    def _on_fetch_progress(self, p: Progress) -> None:
        if p.total:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(int(1000 * p.done / p.total))
            self.progress_label.setText(f"Downloading: {format_bytes(p.done)} of {format_bytes(p.total)}")

    def _on_fetched(self, folder: Path) -> None:
        self._fetch_ended(f"Downloaded; the base model is now {Path(folder).name}.")
        self.base_edit.setText(str(folder))

    def _on_fetch_failed(self, exc: BaseException) -> None:
        self._fetch_ended("The download stopped with an error.")
        self.notice.show_message(error_text(exc))

    def _fetch_ended(self, text: str) -> None:
        self.fetch_worker = None
        self.progress_label.setText(text)
        self._set_state("idle")

    def _browse_data(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Dataset", self.data_edit.text(), "JSON lines (*.jsonl)")
        if path:
            self.data_edit.setText(path)

    def _choose_chats(self) -> None:
        self.chats_button.setEnabled(False)
        worker = Worker(read_conversations)
        worker.signals.returned.connect(self._pick_chats)
        worker.signals.errored.connect(lambda exc: self.notice.show_message(error_text(exc)))
        worker.signals.finished.connect(lambda: self.chats_button.setEnabled(self.state == "idle"))
        worker.start()

    def _pick_chats(self, conversations: list[tuple[int, str]]) -> None:
        if not conversations:
            self.notice.show_message("There are no saved conversations yet.")
            return
        dialog = ChatPicker(conversations, self)
        if dialog.exec() != QDialog.DialogCode.Accepted or not dialog.chosen():
            return
        worker = Worker(write_chat_dataset, dialog.chosen())
        worker.signals.returned.connect(self._chats_built)
        worker.signals.errored.connect(lambda exc: self.notice.show_message(error_text(exc)))
        worker.start()

    def _chats_built(self, result: tuple[Path, int]) -> None:
        path, count = result
        self.data_edit.setText(str(path))
        self.notice.show_message(f"Built a dataset of {count} conversation{'s' if count != 1 else ''}: {path.name}")

    # --- check ----------------------------------------------------------------------------------
    def check(self) -> None:
        try:
            options = self.options(need_base=False)
        except ValueError as exc:
            self.notice.show_message(str(exc))
            return
        self.notice.hide()
        self.plan = None
        ticket = self._checks.ticket()
        self.plan_label.setText("Checking the dataset and the memory estimate…")
        self.problem_list.hide()
        self._set_state("checking")
        worker = self.check_worker = Worker(plan_training, options, self.budget_bytes)
        worker.signals.returned.connect(self._checks.only_if_current(ticket, self._show_plan))
        worker.signals.errored.connect(self._checks.only_if_current(ticket, self._check_failed))
        worker.signals.finished.connect(self._checks.only_if_current(ticket, self._check_finished))
        worker.start()

    def _check_finished(self) -> None:
        if self.state == "checking":
            self._set_state("idle")

    def _check_failed(self, exc: BaseException) -> None:
        self.plan_label.setText("The check failed.")
        self._show_error(exc)

    def _show_plan(self, plan: TrainPlan) -> None:
        self.plan = plan
        self.problem_list.clear()
        self.problem_list.addItems(problem_lines(plan.problems))
        self.problem_list.setVisible(bool(plan.problems))
        self.plan_label.setText(plan_text(plan))
        self._set_state("idle")
        self.planned.emit(plan)

    # --- training -------------------------------------------------------------------------------
    def start(self, resume: bool = False) -> None:
        if self.state != "idle":
            return
        if resume:
            if self.last_options is None:
                return
            options, plan = replace(self.last_options, resume=True), None
            options = replace(options, iters=max(options.iters, self.iters_spin.value()))
        else:
            if self.plan is None or plan_blocks_start(self.plan):
                return
            options, plan = self.plan.options, self.plan
            self.plot.clear(options.iters)
        self.last_options = options
        self.trained_name = None
        self.notice.hide()
        self.plot.iters = options.iters
        self.progress_bar.setRange(0, options.iters)
        self.progress_label.setText("Starting the trainer…")
        token = CancelToken()  # the worker's token is also train_lora's: cancelling terminates the child
        worker = self.train_worker = Worker(
            train_lora, options, token, token=token, plan=plan, budget_bytes=self.budget_bytes, pool=tuning_pool()
        )
        worker.signals.yielded.connect(self._on_progress)
        worker.signals.returned.connect(self._on_done)
        worker.signals.aborted.connect(self._on_cancelled)
        worker.signals.errored.connect(self._on_failed)
        self._set_state("training")
        worker.start()

    def cancel(self) -> None:
        if self.fetch_worker is not None and self.state == "downloading":
            self.fetch_worker.cancel()
            return
        if self.train_worker is not None and self.state == "training":
            self.train_worker.cancel()
            self.progress_label.setText("Stopping…")
            self._set_state("cancelling")

    def _on_progress(self, p: TrainProgress) -> None:
        if p.stage == "training" and p.train_loss is not None:
            self.plot.add_train(p.iteration, p.train_loss)
        elif p.stage == "validating" and p.val_loss is not None:
            self.plot.add_val(p.iteration, p.val_loss)
        self.progress_bar.setValue(p.iteration)
        if self.state == "training":
            self.progress_label.setText(p.message if p.stage == "starting" else progress_text(p))
        self._last_progress = p

    def _on_done(self, result: TrainResult) -> None:
        self.train_worker = None
        self.trained_name = result.adapter.name
        self.progress_label.setText(done_text(result))
        trained = f"Trained “{result.adapter.name}”."
        self.plan_label.setText(self.plan_label.text().replace("Ready to train.", trained, 1))
        self._set_state("idle")
        self.refresh_adapters()
        self.trainingEnded.emit("done")

    def _on_cancelled(self) -> None:
        self.train_worker = None
        self._set_state("idle")
        self.progress_label.setText(stopped_text(self._resumable()))
        self.refresh_adapters()
        self.trainingEnded.emit("cancelled")

    def _on_failed(self, exc: BaseException) -> None:
        self.train_worker = None
        self._set_state("idle")
        self.progress_label.setText("Training stopped with an error.")
        self.notice.show_message(error_text(exc))
        self.refresh_adapters()
        self.trainingEnded.emit("failed")

    # --- adapters -------------------------------------------------------------------------------
    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh_adapters()

    def refresh_adapters(self) -> None:
        self.adapter_list.refresh()

    def shutdown(self) -> None:
        for worker in (self.train_worker, self.fetch_worker):
            if worker is not None:
                worker.cancel()
