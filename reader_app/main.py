"""``breast-reader`` command: open the workstation, run the headless demo, or reader-study tools.

    breast-reader [STUDY]                     open the GUI (optionally on a study folder)
    breast-reader demo [--screenshot PNG]     bundled demo study, first MG+US case, AI + saliency
    breast-reader import SRC --out STUDY      import a folder of DICOM/images or a manifest CSV
    breast-reader study ...                   reader-study commands (reader_app.study.cli)

Errors are printed as one line ``breast-reader: error: ...`` (exit 2), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from engine.errors import BreastReaderError

if TYPE_CHECKING:
    from engine.cases import Study

PROG = "breast-reader"


def demo_study_dir() -> Path:
    """The bundled demo study (:func:`reader_app.paths.demo_study_dir`; imported late: it loads QtCore)."""
    from reader_app.paths import demo_study_dir as bundled

    return bundled()


def demo_working_copy(src: Path | None = None) -> Path:
    """A per-user copy of the bundled demo study, so reading it never writes into the install folder.

    The copy is refreshed when the bundled ``study.json`` changes (a new program version).
    """
    import shutil

    from reader_app.paths import user_data_dir

    src = src or demo_study_dir()
    if not (src / "study.json").exists():
        raise BreastReaderError(f"demo study not found in {src} (no study.json)")
    dst = user_data_dir() / "demo-study"
    fresh = (dst / "study.json").exists() and (dst / "study.json").read_bytes() == (src / "study.json").read_bytes()
    if not fresh:
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)
    return dst


def _wait(signal: Any, timeout_s: float, predicate: Any = None) -> bool:
    """Run the event loop until ``signal`` fires (and ``predicate()`` holds) or the timeout."""
    from PySide6.QtCore import QEventLoop, QTimer

    if predicate is not None and predicate():
        return True
    loop = QEventLoop()
    fired = {"ok": False}

    def _done(*_a: Any) -> None:
        if predicate is None or predicate():
            fired["ok"] = True
            loop.quit()

    signal.connect(_done)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    try:
        signal.disconnect(_done)
    except (RuntimeError, TypeError):
        pass
    return fired["ok"]


def first_paired_case(study: Study) -> str | None:
    """Id of the first case holding both MG and US images (else the first case)."""
    for c in study.cases:
        if {"MG", "US"} <= set(c.modalities):
            return c.case_id
    return study.cases[0].case_id if study.cases else None


def preload_engine() -> None:
    """Import torch and the inference engine now (on the calling thread).

    The workstation does not call this before its first image: :meth:`MainWindow.start_ai_warmup`
    loads the models in a worker once the first case is on screen. Tests and benchmarks that
    want the model stack loaded before they measure call it.
    """
    from engine import threads

    threads.apply()
    try:
        from engine.inference import load_stack
        from engine import _torchvision_shim

        load_stack()

        _torchvision_shim.ensure()
    except ImportError:
        pass  # no engine/saliency: the AI panel says what is missing


def _exit_now(rc: int) -> NoReturn:
    """Leave right after the event loop: everything the reader did is saved as it happened.

    A model forward pass still running in a pool thread cannot be interrupted, and the
    interpreter's own shutdown with torch loaded (module teardown, OpenMP/intra-op pools) takes
    a second or more; neither may keep the process alive after the window has closed.
    """
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def _when_first_image(win: Any, then: Any) -> None:
    """Call ``then()`` once the first case's images are on screen (or now, if they are)."""
    from PySide6.QtCore import QTimer

    if win.views:
        QTimer.singleShot(0, then)
        return

    def _once(_cid: str) -> None:
        win.case_loaded.disconnect(_once)
        QTimer.singleShot(0, then)  # after the paint of the first image

    win.case_loaded.connect(_once)


def run_demo(screenshot: str | None, study_dir: Path | None = None, timeout_s: float = 300.0) -> int:
    """Open the demo study, score the first paired case with saliency, optionally save a PNG."""
    from PySide6.QtCore import QCoreApplication

    from reader_app.qt_app import ensure_app
    from reader_app.qt_main import MainWindow

    folder = Path(study_dir) if study_dir else demo_working_copy()
    if not (folder / "study.json").exists():
        raise BreastReaderError(f"demo study not found in {folder} (no study.json)")
    if screenshot is None:
        check_display()
    from engine import threads

    threads.apply()
    app = ensure_app()
    # the screenshot demo shows what the AI panel does; interactive reading keeps the setting
    win = MainWindow(ai_display="always") if screenshot else MainWindow()
    win.ai_panel.set_model_state("loading model…")  # start_ai_warmup runs once the first image is up
    if screenshot is None:
        win.close_wait_ms = 0  # interactive: the process exits right after the event loop
    win.resize(1600, 1000)
    win.show()
    if not win.open_study(folder, wait=True):
        raise BreastReaderError(win.last_error)
    study = win.state.study
    cid = first_paired_case(study) if study is not None else None
    if cid is None:
        raise BreastReaderError(f"demo study {folder} has no case")
    loaded = _wait(win.case_loaded, 60, lambda: bool(win.views)) if not win.views else True
    if win.state.current is None or win.state.current.case.case_id != cid:
        win.state.select_case(cid)
        loaded = _wait(win.case_loaded, 60, lambda: bool(win.views) and win.state.current is not None
                       and win.state.current.case.case_id == cid)
    if not loaded:
        raise BreastReaderError("demo case did not load in time")
    win.start_ai_warmup()  # the first image is shown; the AI loads behind it
    worker = win.score_case()
    if worker is not None:
        _wait(win.ai_finished, timeout_s, lambda: bool(getattr(win._ai_worker, "ended", False)))
    for v in win.views:
        v.fit()
    for _ in range(5):
        QCoreApplication.processEvents()
    if screenshot is None:
        _exit_now(app.exec())
    pix = win.grab()
    out = Path(screenshot)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not pix.save(str(out), "PNG"):
        raise BreastReaderError(f"cannot write screenshot {out}")
    print(f"{PROG}: screenshot {out} ({pix.width()}x{pix.height()}); case {cid}; "
          f"AI: {_ai_summary(win)}")
    win.close()
    return 0


def _ai_summary(win: Any) -> str:
    res = win.ai_result
    if res is None:
        return "no result"
    parts = [f"{m} {p:.2f}" for m, p in res.per_modality.items()]
    if res.fused is not None:
        parts.append(f"fused {res.fused:.2f}")
    missing = [f"{m}: {i.error}" for m, i in res.models.items() if i.error]
    return ", ".join(parts + missing) or "no score"


def install_excepthook(win: Any) -> None:
    """Unexpected errors in event handlers: one line to the user, the traceback to a log file."""
    import traceback

    from reader_app.paths import user_data_dir

    def hook(tp: type[BaseException], exc: BaseException, tb: Any) -> None:
        try:
            with (user_data_dir() / "errors.log").open("a", encoding="utf-8") as fh:
                fh.write("".join(traceback.format_exception(tp, exc, tb)) + "\n")
        except OSError:
            pass
        msg = str(exc) if isinstance(exc, BreastReaderError) else f"unexpected error ({tp.__name__}: {exc}); details in errors.log"
        win.show_error(msg)

    sys.excepthook = hook


def check_display() -> None:
    """One clear line instead of Qt's abort when there is no display to open a window on."""
    import os

    plat = os.environ.get("QT_QPA_PLATFORM", "")
    if plat and not plat.startswith(("xcb", "wayland")):
        return  # offscreen, vnc, eglfs...: the user chose a platform
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise BreastReaderError("no display (DISPLAY is not set): run it on a desktop, under 'xvfb-run -a', "
                                "or use 'breast-reader demo --screenshot out.png' with QT_QPA_PLATFORM=offscreen")


def check_study_path(study: str) -> None:
    """A bad study path is one line, before any window opens."""
    from engine.cases import load_study

    p = Path(study)
    if not p.exists():
        raise BreastReaderError(f"{study}: not a folder (no such path)")
    if not p.is_dir():
        raise BreastReaderError(f"{study}: not a folder (give a study folder, or import exams with "
                                f"'breast-reader import {study} --out STUDY')")
    if not (p / "study.json").exists():
        raise BreastReaderError(f"{study}: not a breast-reader study (no study.json); import it first: "
                                f"'breast-reader import {study} --out STUDY', or File > Import in the window")
    load_study(p)  # raises CaseFormatError naming the file


def run_gui(study: str | None) -> int:
    """Open the main window (on ``study`` when given); exits promptly when the window closes."""
    from engine import threads

    threads.apply()
    if study:
        check_study_path(study)
    check_display()
    from reader_app.qt_app import ensure_app
    from reader_app.qt_main import MainWindow

    from reader_app.paths import settings

    app = ensure_app()
    auto = str(settings().value("auto_score", "true")).lower() in ("true", "1")
    mode = str(settings().value("ai_display", "after_rating"))
    win = MainWindow(auto_score=auto, ai_display=mode)
    win.close_wait_ms = 0  # the process exits right after the event loop (_exit_now)
    install_excepthook(win)
    win.show()
    if study:
        win.open_study(study)
    start_engine_preload(win, after_first_image=bool(study))
    _exit_now(app.exec())
    return 0  # not reached


def start_engine_preload(win: Any, after_first_image: bool = True) -> None:
    """Load torch and the models in a worker once the first image is on screen (or at once
    when no study is being opened): start-up to the first image is the images' decode only."""
    if after_first_image:
        win.ai_panel.set_model_state("loading model…")
        _when_first_image(win, win.start_ai_warmup)
    else:
        win.start_ai_warmup()


def run_import_cli(argv: list[str]) -> int:
    """``breast-reader import SRC --out STUDY``: preview, import, one line per problem."""
    from reader_app.importing import preview, run_import

    p = argparse.ArgumentParser(prog=f"{PROG} import", description="Import your own exams into a new study: "
                                "a folder of DICOM files (one case per exam, both breasts), a folder of images "
                                "(one case per sub-folder or file) or a manifest CSV")
    p.add_argument("source", help="folder of DICOM files or images, or a manifest CSV")
    p.add_argument("--out", required=True, help="new study folder")
    p.add_argument("--modality", default="US", choices=("US", "MG", "MR"),
                   help="modality of images whose name/folder gives no hint (default US)")
    p.add_argument("--dry-run", action="store_true", help="only show how the files would be grouped")
    ns = p.parse_args(argv)
    pv = preview(ns.source, ns.modality)
    print(pv.summary())
    for c in pv.cases:
        print(f"  {c.label}: {len(c.images)} image(s), breast {c.breasts}: "
              + ", ".join(f"{i.modality} {i.laterality or '?'} {i.view or ''}".strip() for i in c.images))
    for prob in pv.problems:
        print(f"  problem: {prob}")
    if ns.dry_run:
        return 0
    res = run_import(ns.source, ns.out, default_modality=ns.modality)
    print(f"{PROG}: imported {len(res.study.cases)} case(s) into {res.study.folder}"
          + (f"; {len(res.problems)} file(s) skipped" if res.problems else ""))
    for prob in res.problems:
        print(f"  skipped: {prob}")
    return 0


def _study_parser() -> argparse.ArgumentParser | None:
    try:
        from reader_app.study import cli as mod
    except ImportError:
        return None
    parser = argparse.ArgumentParser(prog=f"{PROG} study", description="Reader-study tools")
    sub = parser.add_subparsers(dest="study_cmd", required=True)
    mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``breast-reader``."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] == "demo":
            p = argparse.ArgumentParser(prog=f"{PROG} demo", description="Open the bundled demo study")
            p.add_argument("--screenshot", metavar="PNG", help="save a PNG of the main window and exit")
            p.add_argument("--study", metavar="FOLDER", help="use this study instead of the bundled demo")
            ns = p.parse_args(args[1:])
            return run_demo(ns.screenshot, Path(ns.study) if ns.study else None)
        if args and args[0] == "import":
            return run_import_cli(args[1:])
        if args and args[0] == "study":
            sp = _study_parser()
            if sp is None:
                raise BreastReaderError("reader-study tools are not installed (reader_app.study.cli)")
            ns = sp.parse_args(args[1:])
            return int(ns.func(ns) or 0)
        p = argparse.ArgumentParser(prog=PROG, description="Breast imaging reading workstation (decision support "
                                    "for research, not a diagnostic device).",
                                    epilog="Subcommands: 'demo [--screenshot PNG]', 'import SRC --out STUDY', 'study ...'")
        p.add_argument("study", nargs="?", help="study folder to open")
        ns = p.parse_args(args)
        return run_gui(ns.study)
    except BreastReaderError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
