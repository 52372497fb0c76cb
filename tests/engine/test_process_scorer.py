"""The model process (engine.inference.process / serve, issue 17): the workstation scores through
a child process so that it never imports torch. Same results as in-process scoring on the real
shipped weights; progress, cancel, errors and crashes as one clear message; the child never
outlives its parent; the frame protocol carries arrays out of band."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from engine.errors import BreastReaderError, Cancelled, ModelNotFoundError
from engine.inference.case import CaseImage, CaseInput, CaseScores
from engine.inference.process import (FD_MIN_BYTES, ModelProcessError, ProcessScorer, fd_passing, receive, send,
                                      side_channel)
from engine.results import LesionAssessment
from engine.io.types import ImageMeta, LoadedImage
from engine.progress import CancelToken

ROOT = Path(__file__).resolve().parents[2]
FAKES = "process_fakes:load"  # tests/engine/process_fakes.py, imported in the child


def _case(n: int = 2, size: int = 64) -> CaseInput:
    rng = np.random.default_rng(0)
    ims = [CaseImage(f"i{k}", LoadedImage(rng.integers(0, 255, (size, size), dtype=np.uint8), ImageMeta(f"i{k}.png", "US")),
                     "US") for k in range(n)]
    return CaseInput("c", ims)


@pytest.fixture
def scorer():
    s = ProcessScorer(FAKES, nice=0)
    yield s
    s.close()


def test_frames_carry_arrays_out_of_band_and_round_trip() -> None:
    big = np.arange(1_000_000, dtype=np.float32).reshape(1000, 1000)
    msg = {"a": big, "b": [big[::2]], "s": "x"}  # the strided view travels in band (not contiguous)
    b = io.BytesIO()
    send(b, msg)
    size = len(b.getvalue())
    assert big.nbytes < size < big.nbytes + big[::2].nbytes + 4096
    b.seek(0)
    got = receive(b)
    assert np.array_equal(got["a"], big) and got["a"].dtype == np.float32 and got["a"].flags.writeable
    assert np.array_equal(got["b"][0], big[::2]) and got["s"] == "x"
    with pytest.raises(EOFError):
        receive(b)


@pytest.mark.skipif(not fd_passing(), reason="no memfd / SCM_RIGHTS on this OS")
def test_big_buffers_travel_as_memory_files_beside_the_frame() -> None:
    """A buffer of FD_MIN_BYTES or more goes as a memory file on the side socket, not through the
    pipe; the receiver gets a writable array equal to the sent one; small ones stay in the frame."""
    big = np.arange(FD_MIN_BYTES // 4 + 7, dtype=np.float32)
    small = np.arange(1000, dtype=np.uint16)
    pair = side_channel()
    assert pair is not None
    a, b = pair
    try:
        pipe = io.BytesIO()
        send(pipe, {"big": big, "small": small}, a)
        assert small.nbytes < len(pipe.getvalue()) < small.nbytes + 4096  # the big one is not in it
        pipe.seek(0)
        got = receive(pipe, b)
        assert np.array_equal(got["big"], big) and got["big"].dtype == np.float32 and got["big"].flags.writeable
        assert np.array_equal(got["small"], small)
        got["big"][0] = -1.0  # copy-on-write: the receiver's edit is its own
        assert big[0] == 0.0
        pipe.seek(0)
        with pytest.raises(pickle.UnpicklingError, match="no side socket"):
            receive(pipe)  # a frame that names a memory file, read without the socket
    finally:
        a.close()
        b.close()


@pytest.mark.skipif(not fd_passing() or not Path("/proc/self/fd").is_dir(), reason="needs memfd and /proc")
def test_memory_files_are_not_kept_open(scorer) -> None:
    """Scoring maps of several MB many times leaves no descriptor behind (each memory file is
    closed once mapped; its memory goes when the array does)."""
    case = _case(n=1, size=1024)  # 1 MiB image in, a 4 MiB float32 map back: both as memory files
    scorer.score_case(case, ("gradcam",))
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        res = scorer.score_case(case, ("gradcam",))
    assert len(os.listdir("/proc/self/fd")) == before
    px = case.images[0].image.pixels.astype(np.float32)
    assert np.array_equal(res.saliency[("i0", "gradcam")], px / px.max())
    assert _buffer_maps() == 1  # the map in hand is the memory file itself, mapped once
    del res
    import gc

    gc.collect()
    assert _buffer_maps() == 0  # unmapped with the last array that used it


def _buffer_maps() -> int:
    return sum("breast-reader-buffer" in line for line in Path("/proc/self/maps").read_text().splitlines())


def test_scores_progress_and_no_torch_in_the_caller(scorer) -> None:
    steps: list[tuple[int, int, str]] = []
    res = scorer.score_case(_case(), ("gradcam",), progress=lambda d, t, m: steps.append((d, t, m)))
    assert isinstance(res, CaseScores) and set(res.per_image) == {"i0", "i1"}
    case = _case()
    for ci in case.images:
        assert res.per_image[ci.image_id] == pytest.approx(float(ci.image.pixels.astype(np.float32).mean() / 255))
        want = ci.image.pixels.astype(np.float32) / ci.image.pixels.max()
        assert np.array_equal(res.saliency[(ci.image_id, "gradcam")], want)
    assert steps and steps[-1][0] == steps[-1][1] and steps[-1][2] == "done"
    assert res.models["US"].name == "fake-us-fast" and scorer.starts == 1
    assert scorer.pid is not None and scorer.pid != os.getpid()


def test_cancel_stops_the_child_and_the_next_request_runs(scorer) -> None:
    scorer.model_choice["US"] = "slow"
    tok = CancelToken()
    seen: list[str] = []

    def progress(d: int, t: int, m: str) -> None:
        seen.append(m)
        tok.cancel()  # as the reader pressing Cancel once scoring has started

    with pytest.raises(Cancelled):
        scorer.score_case(_case(n=3), (), progress=progress, cancel=tok)
    assert seen and seen[-1] != "done"
    scorer.model_choice["US"] = None
    assert set(scorer.score_case(_case(), ()).per_image) == {"i0", "i1"}
    assert scorer.starts == 1  # cancel is not a crash: same child


def test_errors_in_the_child_are_one_clear_line(scorer) -> None:
    scorer.model_choice["US"] = "bug"
    with pytest.raises(BreastReaderError) as ei:
        scorer.score_case(_case(), ())
    assert "Traceback" not in str(ei.value) and "ValueError: broken weights file" in str(ei.value)
    scorer.model_choice["US"] = "missing"
    res = scorer.score_case(_case(), ())  # a missing model is the case's message, as in process
    assert res.models["US"].error == "no model installed" and not res.per_image
    with pytest.raises(ModelNotFoundError):
        scorer.model_info("US")
    assert scorer.starts == 1


def test_a_crash_is_one_message_and_the_next_request_restarts(scorer) -> None:
    scorer.model_choice["US"] = "crash"
    with pytest.raises(ModelProcessError) as ei:
        scorer.score_case(_case(), ())
    msg = str(ei.value)
    assert "model process stopped (exit code 7" in msg and "restarts on the next request" in msg
    assert "\n" not in msg
    scorer.model_choice["US"] = None
    assert set(scorer.score_case(_case(), ()).per_image) == {"i0", "i1"}
    assert scorer.starts == 2
    scorer.model_choice["US"] = "slow"
    import threading

    threading.Timer(0.3, os.kill, (scorer.pid, 9)).start()  # killed mid-request (out of memory, a user)
    with pytest.raises(ModelProcessError, match="signal 9"):
        scorer.score_case(_case(n=8), ())
    scorer.model_choice["US"] = None
    assert scorer.score_case(_case(), ()).per_image and scorer.starts == 3  # found dead: a new one


PARENT = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {here!r})
    from engine.inference.process import ProcessScorer
    s = ProcessScorer("process_fakes:load", nice=0)
    s.model_info("US")  # the child is up
    print(s.pid, flush=True)
    os._exit(0)  # as the workstation leaves after its window closes
""")


def test_the_child_dies_with_its_parent_within_a_second(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-c", PARENT.format(here=str(Path(__file__).parent))], capture_output=True,
                       text=True, timeout=120)
    t_exit = time.perf_counter()
    pid = int(p.stdout.split()[0])
    while time.perf_counter() - t_exit < 1.0:
        if not _alive(pid):
            break
        time.sleep(0.02)
    else:
        os.kill(pid, 9)
        pytest.fail("the model process outlived its parent by more than 1 s")


def _alive(pid: int) -> bool:
    """Running (a zombie left for a non-reaping init has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# --------------------------------------------------------------------------- real weights
def _demo_inputs() -> list[CaseInput]:
    from engine.cases import load_study
    from engine.inference.case import case_input
    from engine.io.reader import read_image

    study = load_study(ROOT / "resources" / "demo")
    out = []
    for cid in ("demo-01", "demo-04"):  # MG + US pair (lesion box on US), US-only
        case = next(c for c in study.cases if c.case_id == cid)
        inp = case_input(case, {ci.image_id: read_image(str(ci.path)) for ci in case.images})
        for ci in inp.images:  # the MG lesion model needs a reader's box: draw it where the dataset's is
            if ci.box is None and case.annotations_for(ci.image_id):
                b = case.annotations_for(ci.image_id)[0].bbox()
                ci.box = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
        out.append(inp)
    return out


def test_same_results_as_in_process_on_the_shipped_weights() -> None:
    """Scores and saliency maps to 1e-6, lesion details equal, on real demo images."""
    from engine.model_catalog import default_weights

    if not (ROOT / "resources" / "demo" / "study.json").exists() or not default_weights("US"):
        pytest.skip("no bundled demo study or no shipped US model")
    from engine.inference.case import CaseScorer

    import torch

    cases = _demo_inputs()
    methods = ("own", "gradcam", "cam")
    # One intra-op thread on both sides: float sums are ordered by the thread split, so maps are
    # bit-identical only at equal thread counts (the model process takes cores - 1, which on a
    # CI host that reports more cores than it grants is not this process's count).
    remote = ProcessScorer(env={"OMP_NUM_THREADS": "1"})
    try:
        got = [remote.score_case(c, methods) for c in cases]
    finally:
        remote.close()
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = CaseScorer()
        want = [local.score_case(c, methods) for c in cases]
    finally:
        torch.set_num_threads(prev)
    n_maps = 0
    for g, w in zip(got, want):
        assert g.per_image.keys() == w.per_image.keys() and g.per_image
        for k in w.per_image:
            assert abs(g.per_image[k] - w.per_image[k]) <= 1e-6
        assert g.per_modality == pytest.approx(w.per_modality, abs=1e-6)
        assert (g.fused is None) == (w.fused is None) and g.fused_source == w.fused_source
        assert g.saliency.keys() == w.saliency.keys()
        for k in w.saliency:
            assert g.saliency[k].dtype == w.saliency[k].dtype and g.saliency[k].shape == w.saliency[k].shape
            scale = max(1.0, float(np.abs(w.saliency[k]).max()))
            np.testing.assert_allclose(g.saliency[k], w.saliency[k], rtol=0, atol=1e-6 * scale)
            n_maps += 1
        assert g.models == w.models and g.errors == w.errors and g.failed == w.failed and g.frames == w.frames
        assert g.lesion.keys() == w.lesion.keys()
        for k, a in w.lesion.items():
            b = g.lesion[k]
            assert isinstance(b, LesionAssessment)
            assert (b.score, b.raw_score, b.ood) == pytest.approx((a.score, a.raw_score, a.ood), abs=1e-6)
            assert (tuple(b.box), b.box_source, tuple(b.region), b.ood_threshold, b.ood_flag) == (
                tuple(a.box), a.box_source, tuple(a.region), a.ood_threshold, a.ood_flag)
    assert n_maps >= 4


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads the child's page faults from /proc")
def test_the_model_process_reuses_its_memory_between_requests() -> None:
    """The model process keeps freed memory for the next request (engine.threads.keep_freed_memory): with
    glibc's defaults each 2048x1664 mammogram request gave its full-size arrays back to the kernel
    and faulted ~10 000 pages in again (25-40 ms of system time), 0 in a long-lived process."""
    from engine.bench.threads import bench_image
    from engine.model_catalog import default_weights

    if not default_weights("MG"):
        pytest.skip("no shipped MG model")
    img, box = bench_image("MG")  # SYNTHETIC 2048x1664 film, the score-cost benchmark's image
    case = CaseInput("bench", [CaseImage("i", img, "MG", box, None)])
    s = ProcessScorer(nice=0)
    try:
        s.warm_up(("MG",))
        for _ in range(2):
            s.score_case(case, ("own",))
        faults = []
        for _ in range(3):
            before = _minor_faults(s.pid)
            res = s.score_case(case, ("own",))
            faults.append(_minor_faults(s.pid) - before)
    finally:
        s.close()
    assert res.saliency[("i", "own")].shape == img.pixels.shape
    assert min(faults) < 2500, faults  # ~100 with the settings, ~10 000 without


def _minor_faults(pid: int | None) -> int:
    assert pid is not None
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[7])  # field 10 (minflt), counted after the ")"
