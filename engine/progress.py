"""Progress reporting and cancellation shared by the CLI (tqdm) and the GUI (Qt signals).

Long jobs are plain functions ``run(inputs, *, progress=None, cancel=None)``. They call
``report(progress, done, total, message)`` and ``check(cancel)`` regularly; the CLI passes a
tqdm-backed callback, the GUI a callback that emits a Qt signal from its worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from engine.errors import Cancelled


class ProgressCallback(Protocol):
    """Called with (done, total, message); ``total`` may be 0 when unknown."""

    def __call__(self, done: int, total: int, message: str) -> None: ...


class CancelToken:
    """A thread-safe cancellation flag polled by long jobs."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the job to stop at its next check."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether cancellation was requested."""
        return self._event.is_set()


def check(cancel: CancelToken | None) -> None:
    """Raise :class:`Cancelled` if ``cancel`` was triggered."""
    if cancel is not None and cancel.cancelled:
        raise Cancelled("cancelled by the user")


def report(progress: ProgressCallback | None, done: int, total: int, message: str = "") -> None:
    """Forward a progress update if a callback was given."""
    if progress is not None:
        progress(done, total, message)


@contextmanager
def tqdm_progress(desc: str, disable: bool = False) -> Iterator[ProgressCallback]:
    """A progress callback driving a tqdm bar on stderr (for the CLI)."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, total=0, disable=disable, dynamic_ncols=True, leave=False)

    def _cb(done: int, total: int, message: str) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.n = done
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    try:
        yield _cb
    finally:
        bar.close()


Callback = Callable[[int, int, str], None]
