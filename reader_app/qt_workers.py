"""Background work: a QRunnable on QThreadPool with a QObject carrying the signals.

superqt ``_qthreading`` / napari ``thread_worker`` pattern: the job is a plain function
``fn(*args, progress=cb, cancel=token)``; its progress callback emits a Qt signal from the
worker thread, and results/errors come back to the GUI thread through queued signals.
"""

from __future__ import annotations

import os
import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from engine.errors import BreastReaderError, Cancelled
from engine.progress import CancelToken


class WorkerSignals(QObject):
    """started(), progress(done, total, message), result(object), errored(str), finished()."""

    started = Signal()
    progress = Signal(int, int, str)
    result = Signal(object)
    errored = Signal(str)
    cancelled = Signal()
    finished = Signal()


class Worker(QRunnable):
    """Runs ``fn(*args, progress=..., cancel=..., **kwargs)`` on the global thread pool."""

    def __init__(self, fn: Callable[..., Any], *args: Any, name: str = "", **kwargs: Any) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the Python object owns it; avoids double deletion
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.name = name or getattr(fn, "__name__", "job")
        self.token = CancelToken()
        self.signals = WorkerSignals()
        self.ended = False  # set on the GUI thread by the owner's ``finished`` slot

    def cancel(self) -> None:
        """Ask the job to stop at its next ``check(cancel)``."""
        self.token.cancel()

    def run(self) -> None:  # noqa: D102 - QRunnable API, runs in the pool thread
        sig = self.signals
        _lower_thread_priority()
        try:
            sig.started.emit()
            out = self.fn(*self.args, progress=lambda d, t, m="": sig.progress.emit(int(d), int(t), str(m)),
                          cancel=self.token, **self.kwargs)
        except Cancelled:
            sig.cancelled.emit()
        except BreastReaderError as exc:
            sig.errored.emit(str(exc))
        except Exception as exc:  # noqa: BLE001 - shown to the user, with the type for bug reports
            traceback.print_exc()
            sig.errored.emit(f"{type(exc).__name__}: {exc}")
        else:
            sig.result.emit(out)
        finally:
            sig.finished.emit()


BACKGROUND_NICE = 5


def _lower_thread_priority() -> None:
    """Nice this pool thread (Linux: per-thread) so the GUI thread wins the CPU on a busy machine."""
    if not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        cur = os.getpriority(os.PRIO_PROCESS, tid)
        base = os.getpriority(os.PRIO_PROCESS, os.getpid())
        if cur < base + BACKGROUND_NICE:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, base + BACKGROUND_NICE))
    except OSError:
        pass


def start(worker: Worker, pool: QThreadPool | None = None) -> Worker:
    """Queue ``worker`` on ``pool`` (the global pool by default)."""
    (pool or QThreadPool.globalInstance()).start(worker)
    return worker
