"""GUI performance benchmarks (issue 17): start-up, open-to-first-view, event-loop stalls, GUI
scoring cost against ``bench score``, the worklist of a 5 000-case study.

    QT_QPA_PLATFORM=offscreen python -m reader_app.bench_perf all --json benchmarks/results/gui-perf.json
    python -m reader_app.bench_perf startup score-cost --json benchmarks/results/gui-startup.json
    python -m reader_app.bench_perf startup|open|open-views|worklist|score-cost [...] [--json OUT]
    python -m reader_app.bench_perf open-views --before ../old-checkout --json benchmarks/results/gui-open-views.json

* ``startup``: ``breast-reader demo`` in a fresh process: launch -> first image painted (wall
  and the GUI process's CPU time), AI ready, the first case scored (asked for at the first
  paint), the longest event-loop stall from the first paint to 20 s after launch, the exit
  after the window closes and the model process gone; models in the model process (the
  default) vs in the GUI process (``BREAST_READER_AI=inprocess``), rounds interleaved.
* ``open``: every demo case with the shipped models: open -> first view, the longest stall
  while opening it and while scoring it (score + saliency), and the scoring time.
* ``open-views``: every demo case opened without AI, the longest stall until its views are
  shown; with ``--before CHECKOUT`` the same in another checkout (the previous code), fresh
  processes alternating, so both are measured under the same load.
* ``score-cost``: the GUI's scoring paths (in process, and the model process at nice 0 and at
  its nice, direct and through AIService in a pool worker) against the ``bench score`` call
  (Predictor.analyse) on the same image and weights, interleaved; transfer sizes, identity of
  the results and the number of network forward passes.
* ``worklist``: a generated 5 000-case study (SYNTHETIC 64x64 images): read in a worker (the
  longest stall meanwhile) and typing a search at 60 ms a key (the longest stall).

A heartbeat QTimer every 5 ms measures stalls: the longest gap between two beats. The machine
is shared: the idle heartbeat's longest gap over the same time is reported beside each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BEAT_MS = 5


class Heartbeat:
    """Beats of a 5 ms QTimer on the GUI thread; ``worst_ms`` is the longest gap (a stall).

    The one stall monitor: the benchmarks and the responsiveness tests use it alike.
    """

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.beats: list[float] = []
        self.timer = QTimer()
        self.timer.timeout.connect(lambda: self.beats.append(time.perf_counter()))

    def __enter__(self) -> Heartbeat:
        self.beats = [time.perf_counter()]
        self.timer.start(BEAT_MS)
        return self

    def __exit__(self, *_a: Any) -> None:
        self.timer.stop()
        self.beats.append(time.perf_counter())

    @property
    def worst_ms(self) -> float:
        b = self.beats
        return round(1000 * max((b[i + 1] - b[i] for i in range(len(b) - 1)), default=0.0), 1)

    @property
    def duration_ms(self) -> int:
        """From entering to leaving the block."""
        return int(1000 * (self.beats[-1] - self.beats[0])) if self.beats else 0

    def gaps(self) -> list[tuple[float, float]]:
        """(start, end) of every gap between two beats (perf_counter seconds)."""
        b = self.beats
        return [(b[i], b[i + 1]) for i in range(len(b) - 1)]


def _pump_until(pred: Any, timeout_s: float) -> bool:
    from PySide6.QtWidgets import QApplication

    end = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > end:
            return False
        QApplication.processEvents()
        time.sleep(0.001)
    return True


def idle_stall_ms(duration_s: float) -> float:
    """The longest heartbeat gap of the idle event loop over ``duration_s`` (machine noise)."""
    with Heartbeat() as hb:
        _pump_until(lambda: False, duration_s)
    return hb.worst_ms


# ------------------------------------------------------------------------------------ start-up
_STARTUP_CHILD = r"""
import sys, time, json, os, resource
T0 = float(sys.argv[1]); WINDOW_S = float(sys.argv[2])
import reader_app.main as m
import reader_app.qt_main as qm
from PySide6.QtCore import QTimer
out = {}
Orig = qm.MainWindow
def cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime
class W(Orig):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.case_loaded.connect(self._first)
        self.ai_ready.connect(self._ready)
        self.ai_finished.connect(self._scored)
        self._beats = []
        self._hb = QTimer(self); self._hb.timeout.connect(self._beat)
    def _beat(self):
        t = time.perf_counter()
        self._beats.append(t)
        if time.time() - T0 > WINDOW_S and "scored_s" in out or time.time() - T0 > 300:
            self._end()
    def _first(self, _cid):
        if "first_image_s" not in out:
            out["torch_imported_before_first_image"] = "torch" in sys.modules
            out["ai_panel_at_first_image"] = self.ai_panel.model_state.text()
            QTimer.singleShot(0, self._painted)
    def _painted(self):
        out["first_image_s"] = time.time() - T0
        out["cpu_s_to_first_image"] = cpu()
        self._beats = [time.perf_counter()]; self._beat0 = self._beats[0]; self._hb.start(5)
        self.ai_display = "always"  # as a reader asking for the AI at once: it queues behind the load
        self.score_case()
    def _ready(self):
        out.setdefault("ai_ready_s", time.time() - T0)
    def _scored(self, _cid):
        if "scored_s" not in out:
            out["scored_s"] = time.time() - T0
            out["scored"] = self.ai_result is not None and bool(self.ai_result.per_image)
    def _end(self):
        if "closed_at" in out or getattr(self, "_idle", None) is not None:
            return
        self._hb.stop()
        # the same process, idle, as long: the loaded machine's own scheduling noise
        self._stall_beats = self._beats + [time.perf_counter()]
        self._idle = [time.perf_counter()]
        self._ihb = QTimer(self); self._ihb.timeout.connect(lambda: self._idle.append(time.perf_counter()))
        self._ihb.start(5)
        QTimer.singleShot(3000, self._report)
    def _report(self):
        self._ihb.stop()
        g = [self._idle[i + 1] - self._idle[i] for i in range(len(self._idle) - 1)]
        out["idle_loop_longest_gap_ms"] = round(1000 * max(g, default=0), 1)
        self._beats = self._stall_beats[:-1]
        b = self._stall_beats
        gaps = [b[i + 1] - b[i] for i in range(len(b) - 1)]
        out["window_s"] = round(b[-1] - self._beat0 + out["first_image_s"], 3)
        out["longest_stall_ms"] = round(1000 * max(gaps, default=0), 1)
        if gaps:  # when (s after launch) the longest stall began: beside ai_ready_s / scored_s
            i = max(range(len(gaps)), key=gaps.__getitem__)
            out["longest_stall_at_s"] = round(b[i] - self._beat0 + out["first_image_s"], 3)
        out["stalls_over_100ms"] = sum(g > 0.1 for g in gaps)
        out["torch_in_gui_process"] = "torch" in sys.modules
        sc = getattr(self.ai, "scorer", None)
        out["model_process_pid"] = getattr(sc, "pid", None)
        out["cpu_s_gui_process"] = cpu()
        out["closed_at"] = time.time()
        print("RESULT " + json.dumps(out), flush=True)
        self.close()
qm.MainWindow = W
sys.exit(m.main(["demo"]))
"""


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie left for a non-reaping init has ended


def bench_startup(rounds: int = 3, window_s: float = 20.0) -> dict[str, Any]:
    """``breast-reader demo`` in fresh processes: the model process (ours) and the models in the
    GUI process (``BREAST_READER_AI=inprocess``, the previous design), rounds interleaved.

    Each run: launch -> first image painted (wall and the GUI process's CPU time), AI ready,
    first case scored, the longest event-loop stall from the first paint to ``window_s`` after
    launch (and at least until scored), the exit after the window closes and whether the model
    process was gone 1 s later.
    """
    base = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    base.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed program runs from cached bytecode
    base.setdefault("BREAST_READER_DATA", tempfile.mkdtemp(prefix="br-bench-ud-"))
    variants = {"process": {}, "inprocess": {"BREAST_READER_AI": "inprocess"}}
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    subprocess.run([sys.executable, "-c", "import reader_app.qt_main, engine.io.dicom"], env=base,
                   capture_output=True, timeout=300)  # bytecode written, files cached: not a cold disk
    for _ in range(rounds):
        for variant, extra in variants.items():
            env = dict(base, **extra)
            load = os.getloadavg()[0]
            t0 = time.time()
            p = subprocess.run([sys.executable, "-c", _STARTUP_CHILD, str(t0), str(window_s)], capture_output=True,
                               text=True, env=env, timeout=600)
            end = time.time()
            line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                runs[variant].append({"error": (p.stderr.strip().splitlines() or ["no output"])[-1]})
                continue
            r = json.loads(line[7:])
            r["exit_after_close_s"] = round(end - r.pop("closed_at"), 3)
            pid = r.get("model_process_pid")
            t_gone = time.time()
            while _alive(pid) and time.time() - t_gone < 1.0:
                time.sleep(0.01)
            r["model_process_gone_1s_after_exit"] = not _alive(pid) if pid else None
            r["load_avg_1min"] = round(load, 2)
            r = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
            runs[variant].append(r)

    def med(variant: str, key: str) -> float | None:
        vals = [r[key] for r in runs[variant] if isinstance(r.get(key), (int, float))]
        return round(statistics.median(vals), 3) if vals else None

    def worst(variant: str, key: str) -> float | None:
        vals = [r[key] for r in runs[variant] if isinstance(r.get(key), (int, float))]
        return max(vals) if vals else None

    return {
        "what": f"breast-reader demo in a fresh process (offscreen, cached bytecode): launch -> first image "
                f"painted, the GUI process's CPU time to it, AI ready, first case scored, longest event-loop "
                f"stall (5 ms heartbeat) from the first paint to {window_s:.0f} s after launch (and until scored); "
                "models in a model process vs in the GUI process, interleaved",
        "first_image_s_median": med("process", "first_image_s"),
        "first_image_s_max": worst("process", "first_image_s"),
        "cpu_s_to_first_image_median": med("process", "cpu_s_to_first_image"),
        "longest_stall_ms_median": med("process", "longest_stall_ms"),
        "longest_stall_ms_max": worst("process", "longest_stall_ms"),
        "longest_stall_ms_median_inprocess": med("inprocess", "longest_stall_ms"),
        "idle_loop_longest_gap_ms_median": med("process", "idle_loop_longest_gap_ms"),
        "ai_ready_s_median": med("process", "ai_ready_s"),
        "scored_s_median": med("process", "scored_s"),
        "scored_s_median_inprocess": med("inprocess", "scored_s"),
        "first_image_s_median_inprocess": med("inprocess", "first_image_s"),
        "exit_after_close_s_max": worst("process", "exit_after_close_s"),
        "model_process_gone_after_exit": all(r.get("model_process_gone_1s_after_exit") for r in runs["process"]),
        "torch_in_gui_process": any(r.get("torch_in_gui_process") for r in runs["process"]),
        "target_first_image_s": 3.0, "target_stall_ms": 100, "target_exit_s": 1.0,
        "runs": runs,
    }


# ------------------------------------------------------------------------------ open + score
def _demo_window() -> Any:
    from reader_app.main import demo_working_copy, preload_engine
    from reader_app.qt_app import ensure_app
    from reader_app.qt_main import MainWindow

    ensure_app()
    preload_engine()
    win = MainWindow(ai_display="always")
    win.resize(1600, 1000)
    win.show()
    if not win.open_study(demo_working_copy(), wait=True):
        raise SystemExit(f"cannot open the demo: {win.last_error}")
    _pump_until(lambda: bool(win.views), 60)
    return win


def bench_open() -> dict[str, Any]:
    """Each demo case: open -> first view and scoring, with the longest stall of each."""
    win = _demo_window()
    win.ai.warm_up(("US", "MG", "MR"))  # the models are loaded before the timed part
    cases: dict[str, Any] = {}
    for cid in [c.case_id for c in win.state.study.cases]:
        win.state.select_case(None)
        _pump_until(lambda: not win.views, 5)
        with Heartbeat() as hb_open:
            t0 = time.perf_counter()
            win.state.select_case(cid)
            ok = _pump_until(lambda: bool(win.views) and win.state.current is not None, 60)
            _pump_until(lambda: False, 0.02)  # the paint
            t_open = time.perf_counter() - t0
        row: dict[str, Any] = {"open_to_first_view_s": round(t_open, 3), "longest_stall_opening_ms": hb_open.worst_ms,
                               "views": len(win.views), "loaded": ok}
        with Heartbeat() as hb_score:
            t0 = time.perf_counter()
            w = win.score_case()
            if w is not None:
                _pump_until(lambda: bool(getattr(win._ai_worker, "ended", False)), 300)
            row["scoring_s"] = round(time.perf_counter() - t0, 3)
        row["longest_stall_scoring_ms"] = hb_score.worst_ms
        res = win.ai_result
        row["scores"] = {m: round(p, 4) for m, p in (res.per_modality.items() if res else [])}
        cases[cid] = row
    idle = idle_stall_ms(2.0)
    win.close()
    worst_open = max(r["longest_stall_opening_ms"] for r in cases.values())
    worst_score = max(r["longest_stall_scoring_ms"] for r in cases.values())
    return {"what": "every demo case, shipped models, ai_display=always: open -> first view, scoring "
                    "(score + saliency), longest event-loop stall of each (5 ms heartbeat)",
            "longest_stall_opening_ms": worst_open, "longest_stall_scoring_ms": worst_score,
            "idle_loop_longest_gap_ms": idle, "target_stall_ms": 100, "cases": cases}


_OPEN_VIEWS_CHILD = r"""
import json, os, sys, tempfile, time
sys.path.insert(0, os.getcwd())  # this checkout's reader_app / engine, not an installed copy
os.environ["BREAST_READER_DATA"] = tempfile.mkdtemp(prefix="br-bench-ov-")
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
import reader_app, engine
from reader_app.main import demo_working_copy
from reader_app.qt_app import ensure_app
from reader_app.qt_main import MainWindow

ensure_app()
win = MainWindow(ai_display="after_rating")  # no AI: only the opening is timed
win.resize(1600, 1000)
win.show()

def pump(pred, timeout_s):
    end = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > end:
            return False
        QApplication.processEvents()
        time.sleep(0.001)
    return True

beats = []
hb = QTimer(); hb.timeout.connect(lambda: beats.append(time.perf_counter()))
loaded = []
win.case_loaded.connect(lambda cid: loaded.append(cid))
assert win.open_study(demo_working_copy(), wait=True), win.last_error
pump(lambda: bool(loaded), 60)
ids = [c.case_id for c in win.state.study.cases]
out = {"reader_app": os.path.dirname(reader_app.__file__), "cases": {}}
for rnd in range(int(sys.argv[1])):
    for cid in ids:
        win.state.select_case(None)
        pump(lambda: not win.views, 5)
        pump(lambda: False, 0.05)
        loaded.clear()
        beats[:] = [time.perf_counter()]
        hb.start(5)
        t0 = time.perf_counter()
        win.state.select_case(cid)
        ok = pump(lambda: cid in loaded, 60)
        t_open = time.perf_counter() - t0
        pump(lambda: False, 0.1)  # the paints after the last view
        hb.stop()
        beats.append(time.perf_counter())
        worst = max(beats[i + 1] - beats[i] for i in range(len(beats) - 1))
        out["cases"].setdefault(cid, []).append({"views": len(win.views), "loaded": ok,
                                                 "open_to_loaded_s": round(t_open, 3),
                                                 "longest_stall_ms": round(1000 * worst, 1)})
beats[:] = [time.perf_counter()]; hb.start(5); pump(lambda: False, 2.0); hb.stop(); beats.append(time.perf_counter())
out["idle_loop_longest_gap_ms"] = round(1000 * max(beats[i + 1] - beats[i] for i in range(len(beats) - 1)), 1)
print("RESULT " + json.dumps(out), flush=True)
win.close()
os._exit(0)
"""


def bench_open_views(before: Path | None = None, rounds: int = 2) -> dict[str, Any]:
    """Every demo case opened (no AI): the longest event-loop stall until all its views are
    shown, in this checkout and, with ``before``, in another checkout of the code (the previous
    version), in fresh processes, alternating, on the same machine at the same time."""
    here = Path(__file__).resolve().parents[1]
    trees = {"after": here, **({"before": before.resolve()} if before else {})}
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in trees}
    for _ in range(rounds):
        for name, root in trees.items():
            p = subprocess.run([sys.executable, "-c", _OPEN_VIEWS_CHILD, "1"], cwd=root, capture_output=True,
                               text=True, env=dict(env, PYTHONPATH=str(root)), timeout=900)
            line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
            runs[name].append(json.loads(line[7:]) if line else
                              {"error": (p.stderr.strip().splitlines() or ["no output"])[-1]})

    def summary(name: str) -> dict[str, Any]:
        per: dict[str, list[dict[str, Any]]] = {}
        for r in runs[name]:
            for cid, rows in r.get("cases", {}).items():
                per.setdefault(cid, []).extend(rows)
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=trees[name], capture_output=True,
                             text=True).stdout.strip()
        cases = {cid: {"views": rows[0]["views"],
                       "longest_stall_ms_median": round(statistics.median(r["longest_stall_ms"] for r in rows), 1),
                       "longest_stall_ms_max": max(r["longest_stall_ms"] for r in rows),
                       "open_to_loaded_s_median": round(statistics.median(r["open_to_loaded_s"] for r in rows), 3)}
                 for cid, rows in per.items()}
        worst = max((c["longest_stall_ms_max"] for c in cases.values()), default=None)
        multi = [c["longest_stall_ms_median"] for c in cases.values() if c["views"] >= 4]
        return {"tree": str(trees[name]), "git": rev, "cases": cases, "longest_stall_ms_max": worst,
                "longest_stall_ms_median_4_5_views": round(statistics.median(multi), 1) if multi else None,
                "idle_loop_longest_gap_ms": [r.get("idle_loop_longest_gap_ms") for r in runs[name]],
                "errors": [r["error"] for r in runs[name] if "error" in r]}

    return {"what": "every demo case opened without AI (select -> case_loaded + 0.1 s of paints): the longest "
                    "gap of a 5 ms heartbeat, per checkout, fresh processes alternating",
            "rounds": rounds, "target_stall_ms": 100, **{name: summary(name) for name in trees}}


def bench_score_cost(repeats: int = 8, block: int = 3) -> dict[str, Any]:
    """GUI scoring paths vs ``bench score``'s call on the same image and weights, side by side.

    ``bench score`` is Predictor.analyse in this process (1 intra-op thread, as ``bench score``
    and the model process use). The GUI's paths: CaseScorer.score_case in process; the model
    process (ProcessScorer: the image to the child, scores and the full-size map back) at nice 0
    and at the workstation's nice; the same through AIService in a pool worker with the event
    loop running (its longest stall).

    Each round runs every path as a block of ``block`` calls in a row, blocks alternating, so
    machine drift falls on all paths alike. ``bench score`` times calls in a row; a path's
    steady figure is the median of its calls after the first of each block, the same
    conditions. The first call of a block, right after another path ran (in the model
    process's case: other memory filled the caches), is reported apart as ``after_switch``.
    """
    import torch

    from engine import threads
    from engine.bench.threads import bench_image as _image
    from engine.inference import load_predictor
    from engine.inference.case import CaseImage, CaseInput, CaseScorer
    from engine.inference.process import CHILD_NICE, ProcessScorer, fd_passing, frame_size
    from reader_app.ai import AIService
    from reader_app.qt_app import ensure_app
    from reader_app.qt_workers import Worker, start

    torch.set_num_threads(1)
    threads.keep_freed_memory()  # the memory policy breast-engine (bench score) and the model process run with
    ensure_app()
    out: dict[str, Any] = {"what": "same weights and image, in alternating blocks of calls: bench score's "
                                   "Predictor.analyse vs the GUI's CaseScorer.score_case in process, and the model "
                                   "process (ProcessScorer, the workstation's default) at nice 0 and at its nice, "
                                   "direct and through AIService in a pool worker with the event loop running; "
                                   "score + saliency; steady = calls after the first of each block (as bench score "
                                   "times them), after_switch = the first call of a block",
                           "repeats": repeats, "block": block, "torch_threads": 1, "model_process_nice": CHILD_NICE,
                           "buffers_as_memory_files": fd_passing()}
    remote0 = ProcessScorer(nice=0)
    remote = ProcessScorer()
    try:
        for modality in ("US", "MG"):
            pred = load_predictor(modality)
            method = pred.saliency_methods()[0]
            img, box = _image(modality)
            scorer = CaseScorer(lambda _m, _n: pred)  # (a loader typed Callable[[str, str | None], Any])
            case = CaseInput("bench", [CaseImage("i", img, modality, box, None)])
            calls = {"n": 0}
            hook = pred.model.register_forward_pre_hook(lambda *_a: calls.__setitem__("n", calls["n"] + 1))
            for r in (remote0, remote):
                r.warm_up((modality,))
                r.score_case(case, (method,))
            pred.analyse(img, method, box)
            ref = scorer.score_case(case, (method,))
            svc = AIService(scorer=remote)
            got: Any = None

            def via_worker() -> None:
                svc._cache.clear()
                w = Worker(lambda progress=None, cancel=None: svc.scorer.score_case(case, (method,), cancel=cancel))
                done: list[float] = []
                w.signals.finished.connect(lambda d=done: d.append(time.perf_counter()))
                with Heartbeat() as hb:
                    start(w)
                    _pump_until(lambda d=done: bool(d), 120)
                stalls.append(hb.worst_ms)

            def proc(r: ProcessScorer) -> Any:
                def call() -> None:
                    nonlocal got
                    got = r.score_case(case, (method,))
                return call

            paths = {"bench": lambda: pred.analyse(img, method, box), "gui": lambda: scorer.score_case(case, (method,)),
                     "proc0": proc(remote0), "proc": proc(remote), "worker": via_worker}
            steady: dict[str, list[float]] = {k: [] for k in paths}
            first: dict[str, list[float]] = {k: [] for k in paths}
            stalls: list[float] = []
            forwards: dict[str, int] = {}
            for _ in range(repeats):
                for key, fn in paths.items():
                    for i in range(block):
                        calls["n"] = 0
                        t0 = time.perf_counter()
                        fn()
                        (first if i == 0 else steady)[key].append(time.perf_counter() - t0)
                        forwards[key] = calls["n"]
            hook.remove()
            same = (abs(got.per_image["i"] - ref.per_image["i"]) <= 1e-6
                    and all(bool((got.saliency[k] == ref.saliency[k]).all()) for k in ref.saliency))
            m = {k: statistics.median(v) for k, v in steady.items()}
            f = {k: statistics.median(v) for k, v in first.items()}
            b = m["bench"]
            sal = ref.saliency[("i", method)]
            names = {"gui": "gui_in_process", "proc0": "gui_model_process_nice0", "proc": "gui_model_process",
                     "worker": "gui_model_process_worker_with_event_loop"}
            row: dict[str, Any] = {"weights": pred.name, "image_shape": list(img.pixels.shape),
                                   "map_shape": list(sal.shape), "bench_score_s": round(b, 4)}
            for k, name in names.items():
                row[f"{name}_s"] = round(m[k], 4)
            for k, name in names.items():
                row[f"{name}_over_bench"] = round(m[k] / b, 3)
            row["after_switch_over_bench"] = {names.get(k, k): round(f[k] / f["bench"], 3) for k in paths if k != "bench"}
            row.update({"longest_stall_while_scoring_in_model_process_ms": max(stalls),
                        "request_bytes": frame_size({"case": case}), "reply_bytes": frame_size({"value": ref}),
                        "model_process_result_identical": same,
                        "forward_calls_bench": forwards["bench"], "forward_calls_gui": forwards["gui"]})
            out[modality] = row
    finally:
        remote0.close()
        remote.close()
    out["idle_loop_longest_gap_ms"] = idle_stall_ms(2.0)
    out["target_ratio"] = 1.10
    out["meets_target"] = all(out[m]["gui_model_process_nice0_over_bench"] <= 1.10 for m in ("US", "MG"))
    out["meets_target_at_workstation_nice"] = all(out[m]["gui_model_process_over_bench"] <= 1.10 for m in ("US", "MG"))
    return out


# ------------------------------------------------------------------------------------ worklist
def make_large_study(root: Path, n: int = 5000) -> Path:
    """A study of ``n`` SYNTHETIC one-image US cases (64x64 PNG each), for worklist timing."""
    import cv2
    import numpy as np

    from engine.cases import create_study

    create_study(root, f"{n}-case worklist benchmark (SYNTHETIC)", synthetic_note="SYNTHETIC benchmark images")
    px = (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)
    for i in range(n):
        d = root / "cases" / f"case-{i:05d}"
        d.mkdir(parents=True)
        cv2.imwrite(str(d / "us.png"), px)
        (d / "case.json").write_text(json.dumps({
            "case_id": d.name, "description": f"synthetic benchmark case {i} {'BUSI' if i % 3 else 'MIAS'}",
            "synthetic": True,
            "images": [{"image_id": "us", "path": "us.png", "modality": "US", "synthetic": True}]}))
    return root


def bench_worklist(n: int = 5000, text: str = "case-0421", key_ms: int = 60) -> dict[str, Any]:
    """Open a 5 000-case study and type a search; the longest stall of each."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from reader_app.qt_app import ensure_app
    from reader_app.qt_main import MainWindow

    ensure_app()
    with tempfile.TemporaryDirectory() as td:
        t0 = time.perf_counter()
        root = make_large_study(Path(td) / "big", n)
        t_make = time.perf_counter() - t0
        os.environ.setdefault("BREAST_READER_DATA", str(Path(td) / "ud"))
        win = MainWindow()
        win.resize(1600, 1000)
        win.show()
        with Heartbeat() as hb_open:
            t0 = time.perf_counter()
            win.open_study(root)
            _pump_until(lambda: bool(win.views), 120)
            t_open = time.perf_counter() - t0
        box = win.worklist.search
        box.setFocus()
        with Heartbeat() as hb_type:
            t0 = time.perf_counter()
            for ch in text:
                QTest.keyClicks(box, ch)  # one character (keyClick's char overload is not in the stub)
                _pump_until(lambda: False, key_ms / 1000)
            _pump_until(lambda: False, 0.3)  # the debounced filter
            t_type = time.perf_counter() - t0
        shown = win.worklist.row_count()
        with Heartbeat() as hb_clear:
            QTest.keyClick(box, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
            QTest.keyClick(box, Qt.Key.Key_Backspace)
            _pump_until(lambda: False, 0.3)
        all_rows = win.worklist.row_count()
        idle = idle_stall_ms(1.0)
        win.close()
    return {"what": f"{n}-case SYNTHETIC study: read in a worker, then '{text}' typed in the worklist search "
                    f"at {key_ms} ms a key (5 ms heartbeat)",
            "cases": n, "study_written_s": round(t_make, 2), "open_to_first_view_s": round(t_open, 3),
            "longest_stall_opening_ms": hb_open.worst_ms, "typing_s": round(t_type, 3),
            "longest_stall_typing_ms": hb_type.worst_ms, "longest_stall_clearing_ms": hb_clear.worst_ms,
            "rows_after_search": shown, "rows_after_clear": all_rows, "idle_loop_longest_gap_ms": idle,
            "target_stall_ms": 100}


BENCHES = {"startup": bench_startup, "open": bench_open, "open-views": bench_open_views, "score-cost": bench_score_cost,
           "worklist": bench_worklist}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bench", nargs="+", choices=[*BENCHES, "all"], help="one or more, run in this order")
    p.add_argument("--json", type=Path, default=None, help="write the JSON here too")
    p.add_argument("--before", type=Path, default=None,
                   help="open-views: also time this checkout of the previous code, side by side")
    p.add_argument("--rounds", type=int, default=2, help="open-views: rounds per checkout")
    a = p.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from engine import threads

    threads.apply()
    names = list(BENCHES) if "all" in a.bench else list(dict.fromkeys(a.bench))
    out: dict[str, Any] = {"bench": "gui_perf", "load_avg_1min_start": round(os.getloadavg()[0], 2),
                           "cpu_count": os.cpu_count(), "thread_policy": threads.POLICY}
    for name in names:
        out[name] = bench_open_views(a.before, a.rounds) if name == "open-views" else BENCHES[name]()
    out["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    text = json.dumps(out, indent=1)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
