"""The first-run welcome: this machine's chip, memory and model budget, and the one model to start with.

The window shows it over the pages until the person answers (download the pick, browse the
catalog, or skip); the answer is saved as ``Settings.welcome_done``. The screen does not probe
the machine itself: the window hands it the Models page's ``hardwareDetected`` answer (or says
the probe failed), and the catalog is ordered for that budget and that machine's speed in a
Worker. The pick shows how fast it would answer here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from macapp.core.hardware import machine_noun
from macapp.core.units import format_bytes, format_params
from macapp.ui.jobs.hub import DISCOVER_CTX, CuratedPicks, load_recommendations
from macapp.ui.widgets.labels import make_label as _label
from macapp.ui.widgets.memory_bar import VERDICT_WORDS, MemoryBar, verdict_color
from macapp.ui.worker import Worker, error_text

if TYPE_CHECKING:
    from macapp.core.hardware import Hardware
    from macapp.core.hardware.bandwidth import DecodeBandwidth
    from macapp.core.models.catalog import Recommendation

CARD_WIDTH = 640
MEASURING = "Measuring memory and speed…"
CHOOSING = "Finding the best model to start with…"
LEAD = (
    "Chat with open-weight language models on {place}. Everything runs here: your prompts and documents never leave it."
)
PROBE_FAILED = (
    f"Orchard could not measure {machine_noun()}'s memory, so it cannot recommend a model. "
    "Browse the catalog instead: every model there shows the memory it needs."
)


class _Fact(QFrame):
    """One tile of the "This Mac" row: a small caption over a value."""

    def __init__(self, caption: str):
        super().__init__()
        self.setObjectName("welcomeFact")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(14, 10, 14, 10)
        lay.setSpacing(2)
        lay.addWidget(_label(caption, "welcomeCaption"))
        self.value = _label("…", "welcomeValue")
        self.value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.value)


class WelcomeScreen(QWidget):
    """A card centred over the pages: welcome, this Mac, the recommended model, and three ways on."""

    downloadRequested = Signal(str, str)  # repo id, file: the pick to queue
    browseRequested = Signal()  # show the Discover page
    skipRequested = Signal()  # go straight to the pages
    recommendationShown = Signal()  # the pick (or why there is none) is on screen

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("welcome")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self.hardware: Hardware | None = None
        self.pick: Recommendation | None = None
        self._latest: object = None  # the signals of the newest recommendation worker

        scroll = QScrollArea()
        scroll.setObjectName("welcomeScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget()
        body.setObjectName("welcomeBody")
        outer = QVBoxLayout(body)
        outer.setContentsMargins(24, 24, 24, 24)
        outer.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self._build_card())
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)
        scroll.setWidget(body)
        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(scroll)
        self._show_measuring()

    # --- construction --------------------------------------------------------------------------
    def _build_card(self) -> QFrame:
        card = QFrame()
        card.setObjectName("welcomeCard")
        card.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        card.setMaximumWidth(CARD_WIDTH)
        card.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        lay = QVBoxLayout(card)
        lay.setContentsMargins(32, 28, 32, 24)
        lay.setSpacing(10)
        lay.addWidget(_label("Welcome to Orchard", "welcomeTitle"))
        self.lead_label = _label(LEAD.format(place=machine_noun()), "welcomeLead", wrap=True)
        lay.addWidget(self.lead_label)
        lay.addSpacing(8)

        self.machine_title = _label(machine_noun(capital=True), "sectionTitle")
        lay.addWidget(self.machine_title)
        facts = QGridLayout()
        facts.setHorizontalSpacing(10)
        self.chip_fact, self.memory_fact, self.budget_fact = _Fact("Chip"), _Fact("Memory"), _Fact("Model budget")
        for i, tile in enumerate((self.chip_fact, self.memory_fact, self.budget_fact)):
            facts.addWidget(tile, 0, i)
            facts.setColumnStretch(i, 2 if i == 0 else 1)
        lay.addLayout(facts)
        self.hardware_note = _label("", "muted", wrap=True)
        lay.addWidget(self.hardware_note)
        lay.addSpacing(8)

        head = QHBoxLayout()
        head.addWidget(_label("Recommended to start with", "sectionTitle"))
        head.addStretch(1)
        lay.addLayout(head)
        self.status_label = _label("", "welcomeStatus", wrap=True)
        self.status_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        status_box = QFrame()
        status_box.setObjectName("welcomePick")
        status_lay = QVBoxLayout(status_box)
        status_lay.setContentsMargins(18, 18, 18, 18)
        status_lay.addWidget(self.status_label)
        self.status_box = status_box
        self.pick_box = self._build_pick()  # the two take turns (a QStackedLayout would squash the wrapped text)
        lay.addWidget(status_box)
        lay.addWidget(self.pick_box)
        self.error_label = _label("", "errorText", wrap=True)
        self.error_label.hide()
        lay.addWidget(self.error_label)
        lay.addSpacing(6)

        buttons = QHBoxLayout()
        buttons.setSpacing(8)
        self.download_button = QPushButton("Download")
        self.download_button.setObjectName("primary")
        self.download_button.clicked.connect(self._download)
        self.browse_button = QPushButton("Browse all models")
        self.browse_button.setToolTip(
            f"The Discover page: the curated catalog for {machine_noun()}, and Hugging Face search"
        )
        self.browse_button.clicked.connect(self.browseRequested)
        self.skip_button = QPushButton("Skip")
        self.skip_button.setObjectName("flat")
        self.skip_button.clicked.connect(self.skipRequested)
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.browse_button)
        buttons.addStretch(1)
        buttons.addWidget(self.skip_button)
        lay.addLayout(buttons)
        lay.addWidget(
            _label(
                "Models download to the Hugging Face cache, shared with other tools. "
                "Model folders and defaults are in Settings.",
                "welcomeFoot",
                wrap=True,
            )
        )
        return card

    def _build_pick(self) -> QFrame:
        box = QFrame()
        box.setObjectName("welcomePick")
        lay = QVBoxLayout(box)
        lay.setContentsMargins(18, 14, 18, 14)
        lay.setSpacing(4)
        top = QHBoxLayout()
        top.setSpacing(10)
        self.name_label = _label("", "welcomeModel")
        top.addWidget(self.name_label)
        badge = _label("Best pick", "bestBadge")
        self.badge = badge
        badge.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        top.addWidget(badge, 0, Qt.AlignmentFlag.AlignVCenter)
        top.addStretch(1)
        lay.addLayout(top)
        self.facts_label = _label("", "muted", wrap=True)
        self.facts_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.facts_label)
        self.speed_label = _label("", "welcomeSpeed", wrap=True)
        lay.addWidget(self.speed_label)
        lay.addSpacing(4)
        memory = QHBoxLayout()
        memory.setSpacing(12)
        self.bar = MemoryBar()
        self.bar.setFixedHeight(24)
        self.bar.setMinimumWidth(120)
        self.estimate_label = _label("", None)
        self.verdict_label = _label("", "welcomeVerdict")
        memory.addWidget(self.bar, 1)
        memory.addWidget(self.estimate_label)
        memory.addWidget(self.verdict_label)
        lay.addLayout(memory)
        self.note_label = _label("", "muted", wrap=True)
        lay.addWidget(self.note_label)
        return box

    # --- states ----------------------------------------------------------------------------------
    def _show_status(self, text: str) -> None:
        self.pick = None
        self.status_label.setText(text)
        self.pick_box.hide()
        self.status_box.show()
        self.download_button.hide()
        self.browse_button.setObjectName("primary")
        self.browse_button.style().polish(self.browse_button)

    def _show_measuring(self) -> None:
        self.hardware_note.setText(MEASURING)
        self._show_status(CHOOSING)

    def apply_hardware(self, hardware: Hardware) -> Worker:
        """This Mac is known: show it and order the catalog for its budget (in a Worker)."""
        self.hardware = hardware
        metal = hardware.gpu == "metal"
        self.lead_label.setText(LEAD.format(place=hardware.place))
        self.machine_title.setText(hardware.place[0].upper() + hardware.place[1:])
        self.chip_fact.value.setText(hardware.chip)
        self.chip_fact.value.setToolTip(f"{hardware.os} · {hardware.cpu_count} cores")
        self.memory_fact.value.setText(format_bytes(hardware.total_bytes))
        self.memory_fact.value.setToolTip(f"{format_bytes(hardware.available_bytes)} available now")
        self.budget_fact.value.setText(format_bytes(hardware.budget_bytes))
        self.budget_fact.value.setToolTip(f"Model budget: {hardware.budget_rule}")
        working_set = hardware.gpu_working_set_bytes
        if metal and working_set and hardware.budget_bytes < working_set:
            self.hardware_note.setText(
                f"Metal lets the GPU use {format_bytes(working_set)} of this Mac's memory, but other apps hold "
                f"some of it now: a model (weights, context and working memory) may use "
                f"{format_bytes(hardware.budget_bytes)}. Quitting apps frees more."
            )
        elif metal:
            self.hardware_note.setText(
                f"Metal lets the GPU use {format_bytes(hardware.budget_bytes)} of this Mac's "
                f"memory: a model (weights, context and working memory) must fit in it."
            )
        else:
            self.hardware_note.setText(
                f"No Metal GPU here: models run on the CPU, within the "
                f"{format_bytes(hardware.budget_bytes)} of memory available now."
            )
        self._show_status(CHOOSING)
        worker = Worker(load_recommendations, hardware)
        self._latest = worker.signals
        worker.signals.returned.connect(self._show_picks)
        worker.signals.errored.connect(self._on_failed)
        return worker.start()

    def hardware_unknown(self) -> None:
        """The probe failed: say so; browsing still works."""
        if self.hardware is not None:
            return
        for tile in (self.chip_fact, self.memory_fact, self.budget_fact):
            tile.value.setText("unknown")
        self.hardware_note.setText("")
        self._show_status(PROBE_FAILED)
        self.recommendationShown.emit()

    def set_has_models(self, has_models: bool) -> None:
        """The library scan found models: the way past this screen says so."""
        self.skip_button.setText("I have models already" if has_models else "Skip")
        self.skip_button.setToolTip(
            "Go to your models" if has_models else "Go to the app; the Discover page recommends models any time"
        )

    def show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))

    def _show_picks(self, curated: CuratedPicks) -> None:
        if self.sender() is not self._latest:
            return
        from macapp.core.models.catalog import best_pick  # off the start-up path (tomllib, estimate)

        pick = best_pick(curated.picks)
        place = self.hardware.place if self.hardware else "this computer"
        if pick is None:
            budget = format_bytes(self.hardware.budget_bytes) if self.hardware else "its"
            self._show_status(
                f"No curated model fits {place}'s {budget} model budget well right now. "
                f"Quit other apps to free memory, or browse the catalog for a smaller model."
            )
            self.recommendationShown.emit()
            return
        self.pick = pick
        entry, file, est = pick.entry, pick.file, pick.estimate
        self.name_label.setText(entry.name)
        self.name_label.setToolTip(f"{entry.repo}\n{file.file}")
        self.facts_label.setText(
            " · ".join(
                (
                    f"{format_params(entry.facts.parameters)} parameters",
                    file.quant,
                    f"{format_bytes(file.approx_bytes)} download",
                    f"licence: {entry.licence}",
                )
            )
        )
        self._show_speed(pick, curated.bandwidth, place)
        self.bar.set_estimate(est)
        self.estimate_label.setText(f"needs about {format_bytes(est.total_bytes)} of {format_bytes(est.budget_bytes)}")
        self.estimate_label.setToolTip(
            f"Estimated for a {DISCOVER_CTX // 1024}k-token chat: weights, KV cache, compute buffers and overhead"
        )
        self.verdict_label.setText(VERDICT_WORDS[est.verdict])
        self.verdict_label.setStyleSheet(f"color: {verdict_color(est.verdict).name()};")
        self.note_label.setText(entry.note)
        self.note_label.setVisible(bool(entry.note))
        self.status_box.hide()
        self.pick_box.show()
        self.download_button.setText(f"Download ({format_bytes(file.approx_bytes)})")
        self.download_button.setToolTip(f"Download {entry.name}: {file.file} from {entry.repo}")
        self.download_button.show()
        self.browse_button.setObjectName("")
        self.browse_button.style().polish(self.browse_button)
        self.recommendationShown.emit()

    def _show_speed(self, pick: Recommendation, bandwidth: DecodeBandwidth, place: str) -> None:
        from macapp.core.models.speed import READABLE_TOKENS_PER_S, format_speed

        self.badge.setToolTip(
            f"The largest curated model that fits {place}'s memory well and answers at a "
            f"readable pace (at least {READABLE_TOKENS_PER_S:.0f} tokens/s)"
        )
        if pick.tokens_per_s is None:
            self.speed_label.hide()
            return
        speed = f"{format_speed(pick.tokens_per_s)} on {place}"
        self.speed_label.setText(
            f"Answers at {speed}"
            if pick.readable
            else f"Answers at {speed}: slower than reading pace, but the fastest curated model that fits here"
        )
        weights = format_bytes(pick.estimate.weights_bytes)
        self.speed_label.setToolTip(
            f"Rough decode speed: each token reads all {weights} of weights ({bandwidth.basis})"
        )
        self.speed_label.show()

    def _on_failed(self, exc: BaseException) -> None:
        if self.sender() is self._latest:
            self._show_status(f"Orchard could not read its model catalog: {error_text(exc)}")
            self.recommendationShown.emit()

    def _download(self) -> None:
        if self.pick is not None:
            self.show_error("")
            self.downloadRequested.emit(self.pick.entry.repo, self.pick.file.file)
