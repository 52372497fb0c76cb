"""`breast-engine bench fuzz --json`: seeded mutation fuzzing of every image reader and the scorer.

Seeds: small valid files of every format breast-reader opens (DICOM MG/US/MR, MONOCHROME1,
16-bit, RGB, multi-frame colour ultrasound, RLE / JPEG / JPEG-LS / JPEG 2000 from pydicom's
bundled test files, PNG 8/16-bit, JPEG, TIFF single and multi-page, PGM) plus hostile ones
built on purpose (decompression bombs, a 2 000-page TIFF, absurd rescale and window values,
a DICOM one column narrower than its data). Mutants (seeded, reproducible): bit flips, byte
overwrites, truncation, chunk duplication/zeroing and targeted DICOM/PNG header edits.

Every mutant goes through ``info`` (:func:`engine.cli.cmd_info.describe`, then strict JSON) and,
with ``--score``, through ``score`` (:func:`engine.cli.cmd_score.score_rows`) in a worker
process. Outcomes: ``ok`` (a finite record / a finite score in [0, 1]), ``refused`` (one clean
error line), and the failures ``traceback`` (an uncaught exception), ``nonfinite`` (NaN/inf in a
score or the JSON), ``hang`` (over ``--timeout`` seconds; the worker is killed), ``memory``
(worker peak RSS over ``--max-rss-mb``) and ``crash`` (the worker died). The contract: 0 failures.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import resource
import select
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

NAME = "fuzz"
HELP = "seeded mutation fuzzing of the image readers and the scorer (0 tracebacks/hangs/non-finite/>2 GB)"
FAILURES = ("traceback", "nonfinite", "hang", "memory", "crash")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Benchmark options."""
    parser.add_argument("--mutants", type=int, default=1000, help="mutants per run (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score", action="store_true", help="also score every mutant with the default models")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per mutant before it counts as a hang")
    parser.add_argument("--max-rss-mb", type=float, default=2048.0, help="peak RSS per mutant that counts as a blow-up")
    parser.add_argument("--keep", metavar="DIR", help="keep the corpus in DIR (default: a temp folder)")


# --------------------------------------------------------------------------- seeds


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_zeros(width: int, height: int, colour: int = 0, depth: int = 8) -> bytes:
    """A valid PNG of ``width x height`` zero pixels: a few hundred kB that decode huge."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    row = b"\x00" * (1 + width * channels * depth // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def _pydicom_file(name: str) -> Path | None:
    import pydicom.data

    p = Path(pydicom.data.__file__).parent / "test_files" / name
    return p if p.is_file() else None  # never get_testdata_file(): it downloads


def _dicom_bytes(tmp: Path, pixels: np.ndarray, tamper: Callable[[Any], None] | None = None, **kw: Any) -> bytes:
    import pydicom

    from engine.io.writer import write_dicom

    p = tmp / "_writing.dcm"
    n = len(list(tmp.glob("*")))  # fixed UIDs: the corpus is byte-identical run after run
    kw = {"study_uid": "1.2.826.0.1.3680043.9.7777.1", "series_uid": f"1.2.826.0.1.3680043.9.7777.2.{n}",
          "sop_uid": f"1.2.826.0.1.3680043.9.7777.3.{n}", **kw}
    write_dicom(p, pixels, **kw)
    if tamper is not None:
        ds = pydicom.dcmread(p)
        tamper(ds)
        ds.save_as(p, enforce_file_format=False)
    data = p.read_bytes()
    p.unlink()
    return data


def _set(**values: Any) -> Callable[[Any], None]:
    def f(ds: Any) -> None:
        for k, v in values.items():
            setattr(ds, k, v)

    return f


def _narrow(ds: Any) -> None:
    ds.Columns = int(ds.Columns) - 1  # data one column wider than the header says


def build_seeds(folder: Path) -> dict[str, Path]:
    """Write the seed corpus (valid and hostile files) into ``folder``; returns name -> path."""
    import cv2
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    r, c = np.mgrid[0:48, 0:64]
    grey8 = ((r * 5 + c * 3) % 256).astype(np.uint8)
    grey16 = (r * 60 + c * 17 + 5).astype(np.uint16)
    rgb = np.stack([grey8, 255 - grey8, np.full_like(grey8, 60)], axis=-1)
    seeds: dict[str, bytes] = {}
    seeds["mg16_mono1.dcm"] = _dicom_bytes(folder, grey16, modality="MG", laterality="L", view="CC",
                                           photometric="MONOCHROME1", bits_stored=12, window=(2000.0, 3000.0))
    seeds["mg16.dcm"] = _dicom_bytes(folder, grey16, modality="MG", laterality="R", view="MLO", rescale=(2.0, -10.0))
    seeds["us_rgb.dcm"] = _dicom_bytes(folder, rgb, modality="US", photometric="RGB")
    seeds["us_grey.dcm"] = _dicom_bytes(folder, grey8, modality="US")
    seeds["mr16.dcm"] = _dicom_bytes(folder, grey16.astype(np.int16), modality="MR")
    seeds["us_multiframe.dcm"] = _dicom_bytes(folder, np.stack([grey8] * 4), modality="US")
    # hostile but well-formed values: the reader must refuse them or stay finite
    seeds["rescale_1e38.dcm"] = _dicom_bytes(folder, grey16, tamper=_set(RescaleSlope="1e38", RescaleIntercept="1e38"),
                                             modality="MG", laterality="L")
    seeds["rescale_nan.dcm"] = _dicom_bytes(folder, grey16, tamper=_set(RescaleSlope="NaN"), modality="MG", laterality="L")
    seeds["window_nan.dcm"] = _dicom_bytes(folder, grey16, tamper=_set(WindowCenter="NaN", WindowWidth="100"),
                                           modality="MG", laterality="L")
    seeds["window_inf.dcm"] = _dicom_bytes(folder, grey16, tamper=_set(WindowCenter="1e300", WindowWidth="inf"),
                                           modality="MG", laterality="L")
    seeds["spacing_nan.dcm"] = _dicom_bytes(folder, grey16, tamper=_set(PixelSpacing=["NaN", "inf"]),
                                            modality="MG", laterality="L")
    seeds["narrow.dcm"] = _dicom_bytes(folder, grey16, tamper=_narrow, modality="MG", laterality="L")
    seeds["frames_huge.dcm"] = _dicom_bytes(folder, grey8, tamper=_set(NumberOfFrames="100000"), modality="US")
    seeds["laterality_bad.dcm"] = _dicom_bytes(folder, grey16, tamper=_set(ImageLaterality="X\\Y"), modality="MG")
    for name in ("examples_ybr_color.dcm", "SC_rgb_rle.dcm", "SC_rgb_rle_2frame.dcm", "MR_small_RLE.dcm",
                 "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_jpeg_dcmtk.dcm", "JPEG2000.dcm", "MR_small.dcm",
                 "examples_palette.dcm", "examples_rgb_color.dcm", "CT_small.dcm", "examples_overlay.dcm"):
        p = _pydicom_file(name)
        if p is not None:
            seeds["pydicom_" + name] = p.read_bytes()
    seeds["grey8.png"] = cv2.imencode(".png", grey8)[1].tobytes()
    seeds["grey16.png"] = cv2.imencode(".png", grey16)[1].tobytes()
    seeds["rgb.png"] = cv2.imencode(".png", rgb[..., ::-1])[1].tobytes()
    seeds["grey.jpg"] = cv2.imencode(".jpg", grey8)[1].tobytes()
    seeds["rgb.jpg"] = cv2.imencode(".jpg", rgb[..., ::-1])[1].tobytes()
    seeds["grey.pgm"] = b"P5\n64 48\n255\n" + grey8.tobytes()
    seeds["grey16.pgm"] = b"P5\n64 48\n65535\n" + grey16.astype(">u2").tobytes()
    tiffs: tuple[tuple[str, np.ndarray, dict[str, Any]], ...] = (
                          ("grey16.tif", grey16, {}), ("rgb.tif", rgb, {"photometric": "rgb"}),
                          ("pages3.tif", np.stack([grey8] * 3), {"photometric": "minisblack"}),
                          ("deflate.tif", grey16, {"compression": "zlib"}))
    for name, arr, kw in tiffs:
        buf = io.BytesIO()
        tifffile.imwrite(buf, arr, **kw)
        seeds[name] = buf.getvalue()
    # decompression bombs: valid files, small on disk, huge when decoded
    seeds["bomb_png_rgba16.png"] = _png_zeros(6000, 6000, colour=6, depth=16)
    seeds["bomb_png_grey.png"] = _png_zeros(17000, 17000)
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tw:  # one-pixel pages: every page costs a decode and a score
        for _ in range(2000):  # over the 1024-page bound (main scored 20 000 such pages for > 600 s)
            tw.write(np.zeros((1, 1), np.uint8), contiguous=False)
    seeds["pages2000.tif"] = buf.getvalue()
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((16000, 16000), np.uint16), compression="zlib", tile=(512, 512))
    seeds["bomb_tiff.tif"] = buf.getvalue()
    out: dict[str, Path] = {}
    for name, data in seeds.items():
        p = folder / name
        p.write_bytes(data)
        out[name] = p
    return out


# --------------------------------------------------------------------------- mutators


def _dicom_field_mutant(data: bytes, rng: random.Random) -> bytes:
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    edits: list[tuple[str, Any]] = [
        ("Rows", rng.choice([0, 1, 2, 65535, int(ds.get("Rows") or 2) + 1, int(ds.get("Rows") or 2) - 1])),
        ("Columns", rng.choice([0, 1, 65535, int(ds.get("Columns") or 2) + 1, int(ds.get("Columns") or 2) - 1])),
        ("NumberOfFrames", rng.choice(["0", "-1", "abc", "2", "99999", "1e9"])),
        ("BitsAllocated", rng.choice([0, 1, 7, 12, 32, 64])),
        ("BitsStored", rng.choice([0, 1, 17, 33])),
        ("SamplesPerPixel", rng.choice([0, 2, 3, 4])),
        ("PixelRepresentation", rng.choice([0, 1, 2])),
        ("PhotometricInterpretation", rng.choice(["RGB", "MONOCHROME1", "YBR_FULL_422", "PALETTE COLOR", "XYZ"])),
        ("RescaleSlope", rng.choice(["1e38", "-1e38", "NaN", "inf", "0", "1e-300", "abc"])),
        ("RescaleIntercept", rng.choice(["1e38", "-inf", "NaN", "1e308"])),
        ("WindowCenter", rng.choice(["NaN", "inf", "-1e300", "abc", "1e38"])),
        ("WindowWidth", rng.choice(["0", "-5", "NaN", "inf", "1e-300"])),
        ("PixelSpacing", rng.choice([["NaN", "1"], ["0", "0"], ["inf", "inf"], ["-1", "1"]])),
        ("ImageLaterality", rng.choice(["X", "", "LR", "B"])),
        ("PlanarConfiguration", rng.choice([0, 1, 7])),
    ]
    for _ in range(rng.randint(1, 3)):
        key, value = rng.choice(edits)
        try:
            setattr(ds, key, value)
        except Exception:  # noqa: BLE001 - pydicom refuses some values on assignment: skip that edit
            continue
    out = io.BytesIO()
    try:
        ds.save_as(out, enforce_file_format=False)
    except Exception:  # noqa: BLE001 - an unsavable edit: fall back to a byte mutant
        return _byte_mutant(data, rng)
    return out.getvalue()


def _png_ihdr_mutant(data: bytes, rng: random.Random) -> bytes:
    if len(data) < 33 or data[12:16] != b"IHDR":
        return _byte_mutant(data, rng)
    w, h, depth, colour = struct.unpack(">IIBB", data[16:26])
    w = rng.choice([w + 1, w - 1, 0, 1, 40000, 2**31 - 1, w * 8])
    h = rng.choice([h + 1, h - 1, 0, 40000, h * 8])
    ihdr = struct.pack(">IIBB", max(0, w), max(0, h), depth, colour) + data[26:29]
    return data[:8] + _png_chunk(b"IHDR", ihdr) + data[33:]


def _byte_mutant(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    if not b:
        return bytes(b)
    kind = rng.choice(["flip", "overwrite", "truncate", "duplicate", "zero", "header"])
    if kind == "flip":
        for _ in range(rng.randint(1, 32)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "overwrite":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] = rng.choice([0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)])
    elif kind == "truncate":
        return bytes(b[: rng.randrange(len(b))])
    elif kind == "duplicate":
        i = rng.randrange(len(b))
        n = rng.randint(1, min(4096, len(b) - i))
        b[i:i] = b[i : i + n] * rng.randint(1, 4)
    elif kind == "zero":
        i = rng.randrange(len(b))
        n = rng.randint(1, min(1024, len(b) - i))
        b[i : i + n] = bytes(n)
    else:  # the first KiB: headers, where the interesting fields are
        for _ in range(rng.randint(1, 16)):
            i = rng.randrange(min(len(b), 1024))
            b[i] = rng.randrange(256)
    return bytes(b)


def make_mutants(seeds: dict[str, Path], folder: Path, n: int, seed: int) -> list[tuple[str, Path]]:
    """``n`` reproducible mutants of the seeds (plus every seed itself) written into ``folder``."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = sorted(seeds)
    out: list[tuple[str, Path]] = [(f"seed:{k}", seeds[k]) for k in names]
    small = [k for k in names if seeds[k].stat().st_size < 2_000_000]
    for i in range(n):
        name = rng.choice(small)
        data = seeds[name].read_bytes()
        ext = Path(name).suffix
        roll = rng.random()
        if ext == ".dcm" and roll < 0.35:
            kind, mutated = "dicom-field", _dicom_field_mutant(data, rng)
        elif ext == ".png" and roll < 0.2:
            kind, mutated = "png-ihdr", _png_ihdr_mutant(data, rng)
        else:
            kind, mutated = "bytes", _byte_mutant(data, rng)
        p = folder / f"m{i:05d}{ext}"
        p.write_bytes(mutated)
        out.append((f"{kind}:{name}#{i}", p))
    return out


# --------------------------------------------------------------------------- worker


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _check_one(path: str, score: bool) -> dict[str, Any]:
    import warnings

    from engine.cli.cmd_info import describe

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = describe(path)
        try:
            json.dumps(rec, allow_nan=False)
        except ValueError:
            return {"outcome": "nonfinite", "detail": "info JSON holds NaN/Infinity"}
        if rec.get("error_kind") == "internal":
            return {"outcome": "traceback", "detail": str(rec["error"])}
        outcome = "refused" if "error" in rec else "ok"
        detail = str(rec.get("error", ""))[:200]
        if score:
            from engine.cli.cmd_score import score_rows

            results, errors = score_rows([{"path": path, "modality": "US"}], modality="US", model=None)
            if errors and "internal error" in errors[0]:
                return {"outcome": "traceback", "detail": errors[0][-200:]}
            if errors:
                return {"outcome": "refused" if outcome == "refused" else "ok", "detail": detail,
                        "score": "refused", "score_detail": errors[0][-200:]}
            value = float(results[0]["score"])
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                return {"outcome": "nonfinite", "detail": f"score {value}"}
            return {"outcome": outcome, "detail": detail, "score": value}
    return {"outcome": outcome, "detail": detail}


def worker_main(score: bool) -> None:
    """Read paths from stdin, one per line; answer one JSON line each."""
    import traceback

    if score:  # load the models once, outside any mutant's time and memory
        from engine.inference import load_predictor

        load_predictor("US")
    print(json.dumps({"ready": True, "rss_mb": _peak_rss_mb()}), flush=True)
    for line in sys.stdin:
        path = line.rstrip("\n")
        t0 = time.perf_counter()
        try:
            res = _check_one(path, score)
        except MemoryError:
            res = {"outcome": "memory", "detail": "MemoryError"}
        except Exception as exc:  # noqa: BLE001 - the point: any uncaught exception is a finding
            tb = traceback.extract_tb(exc.__traceback__)
            where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
            res = {"outcome": "traceback", "detail": f"{type(exc).__name__}: {str(exc)[:200]} at {where}"}
        res["s"] = round(time.perf_counter() - t0, 4)
        res["rss_mb"] = round(_peak_rss_mb(), 1)
        print(json.dumps(res), flush=True)


class _Worker:
    def __init__(self, score: bool) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "QT_QPA_PLATFORM": "offscreen"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine.bench.fuzz", "--worker"] + (["--score"] if score else []),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
            preexec_fn=_limit_memory,
        )
        ready = self.read(600.0)
        if ready is None or not ready.get("ready"):
            raise RuntimeError("fuzz worker did not start")
        self.base_rss = float(ready["rss_mb"])

    def read(self, timeout: float) -> dict[str, Any] | None:
        assert self.proc.stdout is not None
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else {"outcome": "crash", "detail": f"worker exited {self.proc.poll()}"}

    def ask(self, path: Path, timeout: float) -> dict[str, Any] | None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(str(path) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return {"outcome": "crash", "detail": "worker pipe closed"}
        return self.read(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _limit_memory() -> None:
    """Cap the worker's address space so a blow-up fails as MemoryError instead of swapping
    the machine (the RSS figure is what the contract checks)."""
    cap = int(os.environ.get("BREAST_FUZZ_AS_BYTES", str(6 * 2**30)))
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def run_fuzz(n: int = 300, seed: int = 0, *, score: bool = False, timeout: float = 60.0,
             max_rss_mb: float = 2048.0, folder: Path | None = None) -> dict[str, Any]:
    """Build seeds and mutants, run them all, return the summary (see module docstring)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="breast-fuzz-") as tmpd:
        base = folder or Path(tmpd)
        import warnings

        with warnings.catch_warnings():  # pydicom warns about every odd value a mutant gets
            warnings.simplefilter("ignore")
            seeds = build_seeds(base / "seeds")
            mutants = make_mutants(seeds, base / "mutants", n, seed)
        counts: Counter[str] = Counter()
        score_counts: Counter[str] = Counter()
        findings: list[dict[str, Any]] = []
        slowest = (0.0, "")
        peak = 0.0
        per_seed: dict[str, dict[str, Any]] = {}
        worker = _Worker(score)
        for label, path in mutants:
            res = worker.ask(path, timeout)
            if res is None:
                res = {"outcome": "hang", "detail": f"no answer within {timeout:g} s"}
                worker.kill()
                worker = _Worker(score)
            elif res["outcome"] == "crash" or worker.proc.poll() is not None:
                worker.kill()
                worker = _Worker(score)
            else:
                rss = float(res.get("rss_mb", 0.0))
                peak = max(peak, rss)
                if rss > max_rss_mb:
                    res = {**res, "outcome": "memory", "detail": f"peak RSS {rss:.0f} MB > {max_rss_mb:.0f} MB"}
                if rss > 0.5 * max_rss_mb:  # a fresh worker: each mutant's peak is its own
                    worker.kill()
                    worker = _Worker(score)
                if float(res.get("s", 0.0)) > slowest[0]:
                    slowest = (float(res["s"]), label)
            counts[res["outcome"]] += 1
            if label.startswith("seed:"):
                per_seed[label[5:]] = res
            if "score" in res:
                score_counts["refused" if res["score"] == "refused" else "scored"] += 1
            if res["outcome"] in FAILURES:
                findings.append({"mutant": label, **res})
        worker.kill()
        batch = _batch_check(seeds, per_seed, timeout * len(seeds)) if score else None
    return {
        "benchmark": NAME,
        "seed": seed,
        "mutants": n,
        "inputs": len(mutants),
        "seeds": len(seeds),
        "score": score,
        "outcomes": dict(sorted(counts.items())),
        "score_outcomes": dict(sorted(score_counts.items())),
        "tracebacks": counts["traceback"],
        "hangs": counts["hang"],
        "nonfinite": counts["nonfinite"],
        "over_memory": counts["memory"],
        "crashes": counts["crash"],
        "peak_rss_mb": round(peak, 1),
        "max_rss_mb": max_rss_mb,
        "timeout_s": timeout,
        "slowest_s": round(slowest[0], 3),
        "slowest": slowest[1],
        "findings": findings[:50],
        "seconds": round(time.perf_counter() - t0, 1),
        "batch": batch,
        "passed": not any(counts[k] for k in FAILURES) and (batch is None or bool(batch["passed"])),
    }


BATCH_FIRST = "pydicom_examples_ybr_color.dcm"


def _batch_check(seeds: dict[str, Path], alone: dict[str, dict[str, Any]], timeout: float) -> dict[str, Any]:
    """Every seed in ONE ``breast-engine score --modality US`` batch, the bundled colour
    multi-frame DICOM first: each seed scored alone must be scored in the batch too (one file
    never costs the others), with no traceback and a CSV row per input."""
    import csv

    names = sorted(seeds, key=lambda k: (k != BATCH_FIRST, k))
    with tempfile.TemporaryDirectory(prefix="breast-fuzz-batch-") as tmpd:
        out = Path(tmpd) / "scores.csv"
        cmd = [sys.executable, "-m", "engine.cli.main", "score", "--modality", "US",
               *[str(seeds[k]) for k in names], "--out", str(out)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "QT_QPA_PLATFORM": "offscreen"}
        t0 = time.perf_counter()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                               preexec_fn=_limit_memory)
        except subprocess.TimeoutExpired:
            return {"files": len(names), "passed": False, "detail": f"no answer within {timeout:g} s"}
        rows = list(csv.DictReader(out.open(newline="", encoding="utf-8"))) if out.is_file() else []
        in_batch = {Path(r["path"]).name for r in rows if r.get("score")}
    by_file = {seeds[k].name: k for k in names}
    scored = sorted(by_file[f] for f in in_batch if f in by_file)
    expected = sorted(k for k in names if isinstance(alone.get(k, {}).get("score"), float))
    return {
        "files": len(names),
        "first": names[0],
        "exit_code": p.returncode,
        "csv_rows": len(rows),
        "scored": len(scored),
        "scored_alone": len(expected),
        "lost": sorted(set(expected) - set(scored)),
        "first_scored": names[0] in scored,
        "traceback": "Traceback" in p.stderr,
        "seconds": round(time.perf_counter() - t0, 1),
        "passed": (len(rows) == len(names) and not set(expected) - set(scored) and "Traceback" not in p.stderr
                   and p.returncode in (0, 1)),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The full fuzz run (``breast-engine bench fuzz --json``)."""
    keep = Path(args.keep) if getattr(args, "keep", None) else None
    return run_fuzz(int(args.mutants), int(args.seed), score=bool(args.score), timeout=float(args.timeout),
                    max_rss_mb=float(args.max_rss_mb), folder=keep)


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker_main(score="--score" in sys.argv)
    else:
        ap = argparse.ArgumentParser(description=HELP)
        add_arguments(ap)
        print(json.dumps(run(ap.parse_args()), indent=2))
