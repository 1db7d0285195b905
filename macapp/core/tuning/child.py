"""The parent's side of the training child: its JSON lines as ``TrainProgress``, stopping it, its failures.

The child (runner.py) writes one JSON object per line on stdout. A thread reads them into a queue so
the generator can check the cancel token every 50 ms; stopping is SIGTERM, then SIGKILL after a grace
period. A child that dies is turned into one ``UserError``: an ``error`` event it sent (out of memory,
unusable model or data), death by a signal (SIGKILL: most likely the system ran out of memory), or
its exit code with the last lines of its log.
"""

from __future__ import annotations

import json
import logging
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from macapp.core.errors import Cancelled, UserError
from macapp.core.progress import CancelToken, Progress

log = logging.getLogger(__name__)
_STOP_GRACE_S = 3.0


@dataclass(frozen=True)
class TrainProgress(Progress):
    """One report from the run: ``done``/``total`` are iterations; losses are None until reported."""

    iteration: int = 0
    iters: int = 0
    train_loss: float | None = None
    val_loss: float | None = None
    tokens_per_second: float | None = None
    peak_memory_bytes: int | None = None
    learning_rate: float | None = None
    trained_tokens: int | None = None
    eta_seconds: float | None = None
    checkpoint: str | None = None


class ChildStream:
    """Turns the child's JSON lines into ``TrainProgress`` (with ETA) and remembers the outcome."""

    def __init__(self, child: subprocess.Popen, start: int, iters: int, started: float):
        self.child, self.start, self.iters, self.started = child, start, iters, started
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self.error: dict[str, Any] | None = None
        self.done = False
        self.train_loss: float | None = None
        self.val_loss: float | None = None
        self.peak_memory: int | None = None
        self.rates: list[float] = []
        self.clock: tuple[float, int] | None = None  # (time, iteration) of the first report, for the ETA
        threading.Thread(target=self._read, name="train-child-stdout", daemon=True).start()

    def _read(self) -> None:
        stdout = self.child.stdout
        assert stdout is not None, "the child is started with stdout=PIPE"
        try:
            for line in stdout:
                self.lines.put(line)
        except (OSError, ValueError):
            pass
        finally:
            self.lines.put(None)
            stdout.close()  # here, once the child is gone (closing it elsewhere races this read)

    @property
    def mean_tokens_per_second(self) -> float | None:
        steady = self.rates[1:] or self.rates  # the first report includes compiling the step
        return round(sum(steady) / len(steady), 1) if steady else None

    def _eta(self, iteration: int) -> float | None:
        now = time.monotonic()
        if self.clock is None:
            self.clock = (now, iteration)
            return None
        t0, it0 = self.clock
        if iteration <= it0:
            return None
        return round((now - t0) / (iteration - it0) * (self.iters - iteration), 1)

    def follow(self, cancel: CancelToken) -> Generator[TrainProgress, None, None]:
        while True:
            try:
                line = self.lines.get(timeout=0.05)
            except queue.Empty:
                if cancel.cancelled:
                    stop_child(self.child)
                    raise Cancelled() from None
                continue
            if line is None:
                self.child.wait()
                return
            try:
                event = json.loads(line)
            except ValueError:
                log.debug("training child wrote a non-JSON line: %r", line[:200])
                continue
            progress = self._progress(event)
            if progress is not None:
                yield progress
            if cancel.cancelled:
                stop_child(self.child)
                raise Cancelled()

    def _progress(self, event: dict[str, Any]) -> TrainProgress | None:
        kind = event.get("event")
        it = int(event.get("iteration", 0))
        common: dict[str, Any] = {
            "done": it,
            "total": self.iters,
            "iteration": it,
            "iters": self.iters,
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "peak_memory_bytes": self.peak_memory,
        }
        if kind == "start":
            return TrainProgress(
                stage="starting",
                message=f"training {event.get('trainable_parameters', 0):,} "
                f"LoRA parameters on {event.get('train_examples')} examples",
                **common,
            )
        if kind == "train":
            self.train_loss = event["train_loss"]
            self.peak_memory = event.get("peak_memory_bytes")
            self.rates.append(event["tokens_per_second"])
            common.update(train_loss=self.train_loss, peak_memory_bytes=self.peak_memory)
            return TrainProgress(
                stage="training",
                tokens_per_second=event["tokens_per_second"],
                learning_rate=event.get("learning_rate"),
                trained_tokens=event.get("trained_tokens"),
                eta_seconds=self._eta(it),
                message=f"iteration {it}/{self.iters}",
                **common,
            )
        if kind == "val":
            self.val_loss = event["val_loss"]
            common["val_loss"] = self.val_loss
            return TrainProgress(stage="validating", message=f"validation loss {self.val_loss:.3f}", **common)
        if kind == "checkpoint":
            return TrainProgress(stage="checkpoint", checkpoint=event["path"], message="checkpoint saved", **common)
        if kind == "done":
            self.done = True
            self.peak_memory = max(self.peak_memory or 0, event.get("peak_memory_bytes") or 0) or None
            return None
        if kind == "error":
            self.error = event
        return None


def stop_child(child: subprocess.Popen) -> None:
    """Terminate the child now (SIGTERM, then SIGKILL after a grace period) and reap it."""
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _log_tail(log_path: Path, lines: int = 3) -> str:
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:] if line.strip())


def failure_error(error: dict[str, Any] | None, returncode: int | None, log_path: Path) -> UserError:
    details = f"details in {log_path}"
    if error is not None:
        kind, message = error.get("kind"), error.get("message", "")
        if kind == "oom":
            return UserError(
                f"Training ran out of memory ({message})",
                hint="lower the batch size or max sequence length, or turn on gradient checkpointing",
            )
        if kind in ("model", "data"):
            return UserError(message[:1:].upper() + message[1:], hint=details)
        return UserError(f"Training failed: {message}", hint=details)
    if returncode is not None and returncode < 0:
        sig = -returncode
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig == signal.SIGKILL:
            return UserError(
                f"The training process was killed ({name}), most likely because memory ran out",
                hint="lower the batch size or max sequence length, or turn on gradient checkpointing",
            )
        return UserError(f"The training process crashed ({name})", hint=details)
    tail = _log_tail(log_path)
    return UserError(
        f"The training process stopped unexpectedly (exit code {returncode})" + (f": {tail}" if tail else ""),
        hint=details,
    )
