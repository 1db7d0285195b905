"""Start the GUI: ``run_gui(argv)`` is what ``macapp gui`` and ``python -m macapp`` call.

Start-up stays light: only Qt and the small core modules load before the first paint; the
library scan and the hardware probe run in a worker afterwards, and heavy back ends
(llama_cpp, mlx, chromadb, huggingface_hub) load only when a feature needs them.

For the start-up benchmark, ``--exit-after-paint`` (or ``MACAPP_EXIT_AFTER_PAINT=1``) prints
``first_paint_s=<seconds>`` when the main window first paints, then quits. The seconds count
from ``MACAPP_T0`` (a ``time.time()`` the caller sets just before starting the process), else
from the process start as Linux reports it, else from when this module was imported.

Logs go to ``orchard.log`` (rotating) in ``paths.logs_dir()`` (``~/Library/Logs/Orchard`` on macOS),
set up just after the first paint so it costs the start-up nothing.
"""

from __future__ import annotations

import logging
import os
import sys
import time

_IMPORTED_AT = time.time()
EXIT_FLAG = "--exit-after-paint"
LOG_NAME = "orchard.log"
LOG_MAX_BYTES = 2 * 1024 * 1024
LOG_BACKUPS = 3  # orchard.log.1 .. .3
log = logging.getLogger(__name__)


def start_file_log() -> logging.Handler | None:
    """Send INFO and above from every logger to the rotating ``orchard.log``; returns its handler.

    Handlers already on the root logger (the CLI's stderr one) keep the level they showed before,
    so the terminal stays as quiet as it was. Uncaught exceptions are logged there too.
    """
    from logging.handlers import RotatingFileHandler

    from macapp.core import paths

    root = logging.getLogger()
    try:
        handler = RotatingFileHandler(
            paths.logs_dir() / LOG_NAME, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
    except OSError as exc:
        log.warning("no log file: %s", exc)
        return None
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    for existing in root.handlers:
        if existing.level == logging.NOTSET:
            existing.setLevel(root.getEffectiveLevel())
    root.addHandler(handler)
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
    previous_hook = sys.excepthook

    def log_uncaught(kind, value, tb) -> None:
        logging.getLogger("macapp").critical("uncaught exception", exc_info=(kind, value, tb))
        previous_hook(kind, value, tb)

    sys.excepthook = log_uncaught
    import macapp

    log.info("Orchard %s started (Python %s, %s)", macapp.__version__, sys.version.split()[0], sys.platform)
    return handler


def process_start_time() -> tuple[float, str]:
    """(time.time() of the process start, where that came from)."""
    t0 = os.environ.get("MACAPP_T0")
    if t0:
        try:
            return float(t0), "MACAPP_T0"
        except ValueError:
            pass
    try:  # Linux: the process age from /proc, to the clock tick
        with open("/proc/self/stat", encoding="ascii") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        return time.time() - (uptime - start_ticks / os.sysconf("SC_CLK_TCK")), "/proc"
    except (OSError, ValueError, IndexError):
        return _IMPORTED_AT, "import of macapp.ui.app"


def file_open_events(app):
    """Collect macOS "open these files" events (``QFileOpenEvent``: a PDF or GGUF dropped on the
    Dock icon, "Open With Orchard"); ``deliver_to(callback)`` hands over the ones that came before
    and sends later ones straight on."""
    from PySide6.QtCore import QEvent, QObject

    class Events(QObject):
        def __init__(self) -> None:
            super().__init__(app)
            self.pending: list[str] = []
            self.callback = None
            app.installEventFilter(self)

        def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.FileOpen and event.file():
                if self.callback is None:
                    self.pending.append(event.file())
                else:
                    self.callback([event.file()])
                return True
            return False

        def deliver_to(self, callback) -> None:
            self.callback = callback
            if self.pending:
                files, self.pending = self.pending, []
                callback(files)

    return Events()  # defined here: this module stays importable without Qt (process_start_time)


def set_window_icon(app) -> None:
    """Orchard's icon for the window and the Dock/taskbar (resources/icon.svg, drawn by Qt)."""
    from PySide6.QtGui import QIcon

    from macapp.core.paths import app_root

    icon_path = app_root() / "resources" / "icon.svg"
    if icon_path.is_file():
        app.setWindowIcon(QIcon(str(icon_path)))


def run_gui(argv: list[str]) -> int:
    """Open Orchard's window and run the event loop; returns the exit code.

    Args:
        argv: the arguments after ``macapp gui``: Qt's own options (``-platform offscreen``...)
            and the hidden ``--exit-after-paint``; no program name.
    """
    exit_after_paint = EXIT_FLAG in argv or os.environ.get("MACAPP_EXIT_AFTER_PAINT") == "1"
    qt_args = [a for a in argv if a != EXIT_FLAG]

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from macapp import APP_NAME, __version__
    from macapp.ui.main_window import MainWindow
    from macapp.ui.theme import apply_theme
    from macapp.ui.worker import shutdown_workers

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else APP_NAME, *qt_args])
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setOrganizationName(APP_NAME)
    apply_theme(app)

    def after_first_paint() -> None:
        if exit_after_paint:
            t0, source = process_start_time()
            print(f"first_paint_s={time.time() - t0:.4f} t0_source={source}", flush=True)
            QTimer.singleShot(0, app.quit)
        else:
            QTimer.singleShot(0, start_file_log)

    opened = file_open_events(app)  # files dropped on the Dock icon, possibly before the window exists
    window = MainWindow(on_first_paint=after_first_paint)
    set_window_icon(app)
    window.show()
    QTimer.singleShot(0, lambda: opened.deliver_to(window.open_files))
    code = app.exec()
    window.close()  # saves the geometry if the loop ended without a close (quit, exit-after-paint)
    if not shutdown_workers():
        log.warning("background work still running at exit")
    return code
