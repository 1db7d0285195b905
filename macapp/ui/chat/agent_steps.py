"""What an agent did while writing an answer, shown above the answer's bubble.

- ``StepRow``: one tool call, collapsed to a line (tool, arguments, status, duration); a click opens
  its arguments in full and the result it gave (cut at ``SHOWN_RESULT_CHARS``);
- ``ApprovalCard``: a call that writes or executes, waiting for the user: the tool, its arguments
  with paths written plainly, and Allow once / Always for this tool in this chat / Deny;
- ``StepsPanel``: the rows and cards of one answer, live while the agent works, or rebuilt from the
  steps saved in the chat history.
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QBoxLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from macapp.ui.widgets.elided import EllipsisLabel

SHOWN_RESULT_CHARS = 4000  # an expanded row shows this much of a result (the model read up to 8,000)
SHOWN_VALUE_CHARS = 1200  # an argument longer than this (a file's content) is cut on a card
SUMMARY_CHARS = 90
STATUS_WORDS = {
    "ok": "done",
    "error": "failed",
    "invalid": "invalid arguments",
    "refused": "refused",
    "denied": "denied",
    "timeout": "timed out",
    "cancelled": "stopped",
    "running": "running…",
}
GOOD, BAD = "good", "bad"
STATUS_TONE = {
    "ok": GOOD,
    "running": "",
    "error": BAD,
    "invalid": BAD,
    "refused": BAD,
    "denied": BAD,
    "timeout": BAD,
    "cancelled": BAD,
}
EFFECT_WORDS = {"write": "write", "execute": "run a command", "read": "read"}
DECISION_WORDS = {"allow_once": "Allowed once", "always": "Always allowed in this chat", "deny": "Denied"}


def _value_text(value: Any) -> str:
    """An argument as a person reads it: strings as they are (paths unquoted), anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def arguments_summary(arguments: dict[str, Any]) -> str:
    """``notes.txt, "summary"…`` — the arguments on one line, cut to fit a collapsed row."""
    text = ", ".join(" ".join(_value_text(v).split()) for v in arguments.values())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def arguments_text(arguments: dict[str, Any], limit: int = SHOWN_VALUE_CHARS) -> str:
    """Each argument on its own line, ``name: value``; a long value is cut and says how much is left."""
    lines = []
    for name, value in arguments.items():
        text = _value_text(value)
        if len(text) > limit:
            text = text[:limit] + f"… [{len(text) - limit:,} more characters]"
        lines.append(f"{name}: {text}")
    return "\n".join(lines) or "(no arguments)"


def _label(text: str, name: str, *, wrap: bool = False, mono: bool = False) -> QLabel:
    label = QLabel(text)
    label.setObjectName(name)
    label.setWordWrap(wrap)
    label.setTextFormat(Qt.TextFormat.PlainText)
    if mono:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def _set_tone(label: QLabel, tone: str) -> None:
    label.setProperty("tone", tone)
    label.style().unpolish(label)
    label.style().polish(label)


class StepRow(QFrame):
    """One tool call; collapsed to a line until clicked."""

    def __init__(self, index: int, tool: str, arguments: dict[str, Any], parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("toolStep")
        self.index = index
        self.tool = tool
        self.arguments = arguments
        self.status = "running"
        self.result = ""
        box = QVBoxLayout(self)
        box.setContentsMargins(8, 4, 10, 4)
        box.setSpacing(4)
        head = QHBoxLayout()
        head.setSpacing(6)
        self.toggle = QToolButton()
        self.toggle.setObjectName("stepToggle")
        self.toggle.setAutoRaise(True)
        self.toggle.setCheckable(True)
        self.toggle.setCursor(Qt.CursorShape.PointingHandCursor)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)  # style.qss draws the chevron
        self.toggle.setToolTip("Show the arguments and the result")
        self.toggle.toggled.connect(self.set_expanded)
        self.title = _label(tool, "stepTool")
        self.summary = EllipsisLabel(arguments_summary(arguments))  # "…" and a tooltip when narrow, never widens
        self.summary.setObjectName("stepArgs")
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        self.summary.setMinimumWidth(40)
        self.state = _label("", "stepStatus")
        self.duration = _label("", "bubbleStats")
        head.addWidget(self.toggle)
        head.addWidget(self.title)
        head.addWidget(self.summary, 1)
        head.addWidget(self.state)
        head.addWidget(self.duration)
        box.addLayout(head)
        self.details = _label("", "stepDetails", wrap=True, mono=True)
        self.details.hide()
        box.addWidget(self.details)
        self.set_state("running")

    def set_state(self, status: str, approval: str = "", result: str = "", duration_s: float | None = None) -> None:
        """Show how the call went (``running`` while it runs)."""
        self.status, self.result = status, result
        words = STATUS_WORDS.get(status, status)
        if approval and approval not in ("not needed", "pre-approved", "denied"):
            words += f" · {approval}"
        self.state.setText(words)
        _set_tone(self.state, STATUS_TONE.get(status, ""))
        self.duration.setText("" if duration_s is None else _duration(duration_s))
        self._fill_details()

    def _fill_details(self) -> None:
        result = self.result.rstrip("\n")  # a file's last newline is not a blank line at the row's foot
        shown = (
            result
            if len(result) <= SHOWN_RESULT_CHARS
            else (result[:SHOWN_RESULT_CHARS] + f"\n… [{len(result) - SHOWN_RESULT_CHARS:,} more characters]")
        )
        parts = [arguments_text(self.arguments)]
        if shown:
            parts.append(f"Result:\n{shown}")
        self.details.setText("\n\n".join(parts))

    @property
    def expanded(self) -> bool:
        return self.details.isVisible() or self.toggle.isChecked()

    def set_expanded(self, on: bool) -> None:
        if self.toggle.isChecked() != on:
            self.toggle.setChecked(on)
            return
        self.details.setVisible(on)

    def mouseReleaseEvent(self, event) -> None:  # the whole line opens and closes it
        if event.button() == Qt.MouseButton.LeftButton and event.position().y() < self.toggle.geometry().bottom() + 4:
            self.toggle.toggle()
        super().mouseReleaseEvent(event)


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


class ApprovalCard(QFrame):
    """A call waiting for the user: ``decided(decision)`` with one of ``approvals.DECISIONS``."""

    decided = Signal(str)

    def __init__(
        self,
        tool: str,
        effect: str,
        arguments: dict[str, Any],
        description: str = "",
        *,
        call_id: str = "",
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("approvalCard")
        self.tool = tool
        self.call_id = call_id
        self.decision: str | None = None
        box = QVBoxLayout(self)
        box.setContentsMargins(12, 10, 12, 10)
        box.setSpacing(6)
        self.question = _label(f"Allow {tool} to {EFFECT_WORDS.get(effect, effect)}?", "approvalTitle", wrap=True)
        box.addWidget(self.question)
        if description:
            box.addWidget(_label(description, "muted", wrap=True))
        self.arguments = _label(arguments_text(arguments), "approvalArgs", wrap=True, mono=True)
        box.addWidget(self.arguments)
        buttons = QHBoxLayout()
        buttons.setSpacing(6)
        self.allow_button = QPushButton("Allow once")
        self.allow_button.setObjectName("primary")
        self.always_button = QPushButton("Always for this tool in this chat")
        self.deny_button = QPushButton("Deny")
        for button, decision in (
            (self.allow_button, "allow_once"),
            (self.always_button, "always"),
            (self.deny_button, "deny"),
        ):
            button.clicked.connect(lambda _=False, d=decision: self.decide(d))
            buttons.addWidget(button)
        buttons.addStretch(1)
        self._buttons = buttons
        box.addLayout(buttons)
        self.outcome = _label("", "approvalOutcome")
        self.outcome.hide()
        box.addWidget(self.outcome)

    def resizeEvent(self, event) -> None:
        """The three answers side by side when they fit, one under the other when the card is narrow."""
        super().resizeEvent(event)
        buttons = (self.allow_button, self.always_button, self.deny_button)
        need = sum(b.sizeHint().width() for b in buttons) + 2 * self._buttons.spacing()
        room = (
            self.contentsRect().width()
            - self.layout().contentsMargins().left()
            - self.layout().contentsMargins().right()
        )
        wanted = QBoxLayout.Direction.LeftToRight if need <= room else QBoxLayout.Direction.TopToBottom
        if self._buttons.direction() != wanted:
            self._buttons.setDirection(wanted)

    @property
    def pending(self) -> bool:
        return self.decision is None

    def decide(self, decision: str) -> None:
        """The user answered (once: later clicks do nothing)."""
        if self.decision is not None:
            return
        self.decision = decision
        self._close(DECISION_WORDS[decision], BAD if decision == "deny" else GOOD)
        self.decided.emit(decision)

    def stop(self) -> None:
        """The run ended before the user answered."""
        if self.decision is None:
            self.decision = "stopped"
            self._close("Stopped — the run ended before this was answered", BAD)

    def _close(self, text: str, tone: str) -> None:
        for button in (self.allow_button, self.always_button, self.deny_button):
            button.hide()
        self.outcome.setText(text)
        _set_tone(self.outcome, tone)
        self.outcome.show()


class StepsPanel(QWidget):
    """The steps of one answer, in order: rows for calls, cards for calls waiting for approval."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("stepsPanel")
        self._box = QVBoxLayout(self)
        self._box.setContentsMargins(0, 0, 0, 0)
        self._box.setSpacing(4)
        self.rows: dict[int, StepRow] = {}
        self.cards: list[ApprovalCard] = []

    def show_saved(self, steps) -> None:
        """Rows for steps saved in the chat history (``ChatStore.tool_steps``)."""
        for step in steps:
            self.finish_row(
                step.position, step.tool, step.arguments, step.status, step.approval, step.result, step.duration_s
            )

    def add_row(self, index: int, tool: str, arguments: dict[str, Any]) -> StepRow:
        """The row of call ``index`` (made once; a card waiting for it is answered by now)."""
        row = self.rows.get(index)
        if row is None:
            row = self.rows[index] = StepRow(index, tool, arguments)
            self._box.addWidget(row)
        return row

    def finish_row(
        self,
        index: int,
        tool: str,
        arguments: dict[str, Any],
        status: str,
        approval: str,
        result: str,
        duration_s: float,
    ) -> StepRow:
        row = self.add_row(index, tool, arguments)
        row.set_state(status, approval, result, duration_s)
        return row

    def finish_step(self, step) -> StepRow | None:
        """A ``ToolStep`` of the run: an answered card gives way to the call's row; a card the run stopped
        stays, saying so (the step is saved as stopped, and shows as a row when the chat is reopened)."""
        card = next((c for c in self.cards if c.call_id and c.call_id == step.call.id), None)
        if card is not None:
            if card.decision in (None, "stopped"):
                card.stop()
                return None
            self.cards.remove(card)
            self._box.removeWidget(card)
            card.hide()
            card.deleteLater()
        return self.finish_row(
            step.index, step.call.name, step.call.arguments, step.status, step.approval, step.result, step.duration_s
        )

    def add_card(self, card: ApprovalCard) -> ApprovalCard:
        self.cards.append(card)
        self._box.addWidget(card)
        return card

    def pending_cards(self) -> list[ApprovalCard]:
        return [c for c in self.cards if c.pending]

    def stop(self) -> None:
        """The run is over: cards still waiting say so, and so do rows that never finished."""
        for card in self.pending_cards():
            card.stop()
        for row in self.rows.values():
            if row.status == "running":
                row.set_state("cancelled")
