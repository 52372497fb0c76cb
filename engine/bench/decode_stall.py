"""`breast-engine bench decode-stall --json`: how long a compressed mammogram's decode freezes the
event loop, per decoder, side by side in one run.

A "GUI" thread ticks every 5 ms (as the reader's beat timer does) while another thread opens a
real 16-bit mammogram (see :mod:`engine.bench._files`) written as JPEG 2000, JPEG-LS and JPEG
lossless. The longest gap between ticks is the stall the reader would see. Decoders:

* ``pydicom``: pydicom's plugins (python-gdcm / Pillow), the path before issue 17: they hold the GIL;
* ``imagecodecs``: :func:`engine.io.reader.read_image`, which decodes with imagecodecs in a
  worker thread (the GIL is released inside the decoder);
* ``process``: ``read_image`` in a warm ``ProcessPoolExecutor`` (spawn), the array pickled back;
* ``preview``: :func:`engine.io.dicom.decode_preview`, the JPEG 2000 first view.

Also reported: time to the first pixel of each. Timings are of a shared, loaded machine; the
ratios between rows of one run are what to read.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

NAME = "decode-stall"
HELP = "event-loop stall and time to first pixel while a compressed mammogram decodes, per decoder"
BEAT_S = 0.005


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Benchmark options."""
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--syntaxes", default="JPEG2000Lossless,JPEGLSLossless,JPEGLosslessSV1")
    parser.add_argument("--no-process", action="store_true", help="skip the process-pool decoder")


def stall_while(fn: Callable[[], Any], beat_s: float = BEAT_S) -> tuple[float, float, Any]:
    """Run ``fn`` in a thread while this thread beats every ``beat_s``.

    Returns:
        (seconds ``fn`` took, the longest gap between beats in seconds, ``fn``'s result).
    """
    done = threading.Event()
    box: dict[str, Any] = {}

    def work() -> None:
        t0 = time.perf_counter()
        try:
            box["out"] = fn()
        finally:
            box["t"] = time.perf_counter() - t0
            done.set()

    worst, last = 0.0, time.perf_counter()
    th = threading.Thread(target=work, daemon=True)
    th.start()
    while not done.is_set():
        time.sleep(beat_s)
        now = time.perf_counter()
        worst, last = max(worst, now - last), now
    th.join()
    return float(box["t"]), worst, box.get("out")


def _pydicom_decode(path: str) -> np.ndarray:
    import pydicom

    return np.asarray(pydicom.dcmread(path).pixel_array)


def _read(path: str) -> np.ndarray:
    from engine.io.reader import read_image

    return read_image(path).pixels


def _warm() -> int:
    import engine.io.reader  # noqa: F401 - the imports a first decode in the child would pay

    return os.getpid()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Stall and latency per syntax and decoder."""
    from engine.bench._files import real_mammogram, write_mammogram
    from engine.io.dicom import decode_preview, gil_free_available

    repeats = int(getattr(args, "repeats", 3))
    syntaxes = [s.strip() for s in str(getattr(args, "syntaxes", "JPEG2000Lossless")).split(",") if s.strip()]
    pixels, label = real_mammogram()
    idle = [stall_while(lambda: time.sleep(0.5))[1] for _ in range(2)]
    out: dict[str, Any] = {"image": label, "shape": list(pixels.shape), "dtype": str(pixels.dtype),
                           "gil_free_decoders": gil_free_available(), "beat_ms": BEAT_S * 1000,
                           "idle_max_gap_ms": round(1000 * max(idle), 1), "syntaxes": {}}
    pool = None if getattr(args, "no_process", False) else ProcessPoolExecutor(1, mp_context=_spawn())
    try:
        if pool is not None:
            t0 = time.perf_counter()
            pool.submit(_warm).result()  # start + import in the child (its cost reported once)
            out["process_pool_start_s"] = round(time.perf_counter() - t0, 3)
        with tempfile.TemporaryDirectory() as td:
            for syntax in syntaxes:
                path, _ = write_mammogram(Path(td), syntax, pixels)
                p = str(path)
                decoders: dict[str, Callable[[], Any]] = {"pydicom": lambda: _pydicom_decode(p), "imagecodecs": lambda: _read(p)}
                if pool is not None:
                    decoders["process"] = lambda: pool.submit(_read, p).result()
                if syntax == "JPEG2000Lossless":
                    decoders["preview"] = lambda: decode_preview(p)
                rows: dict[str, Any] = {"file_mb": round(os.path.getsize(p) / 2**20, 2)}
                for name, fn in decoders.items():
                    fn()  # warm-up (imports, caches)
                    runs = [stall_while(fn) for _ in range(repeats)]
                    res = runs[-1][2]
                    arr = res.pixels if hasattr(res, "pixels") else res
                    row: dict[str, Any] = {"seconds": round(statistics.median(r[0] for r in runs), 3),
                                           "max_stall_ms": round(1000 * max(r[1] for r in runs), 1),
                                           "shape": list(np.shape(arr))}
                    if name != "preview":
                        row["equals_source"] = bool(np.array_equal(arr, pixels))
                    rows[name] = row
                out["syntaxes"][syntax] = rows
    finally:
        if pool is not None:
            pool.shutdown()
    out["load_avg_1min"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    out["cpu_count"] = os.cpu_count()
    return out


def _spawn() -> Any:
    import multiprocessing

    return multiprocessing.get_context("spawn")
