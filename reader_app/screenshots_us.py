"""Screenshots of the lesion-centred US default in the real window (issue 12).

    xvfb-run -a python -m reader_app.screenshots_us docs/screenshots

On a copy of the bundled demo (its dataset boxes removed from the two ultrasound images shown,
so the reader has drawn none): ``us_lesion_suggestion_busi.png`` (a BUSI image: the finder's
dashed "AI suggestion" box, the attention overlay, the calibrated score with the OOD figure
beside it), ``us_lesion_accepted_busi.png`` (after Enter: the suggestion became the reader's box
and the case was scored again with it) and ``us_lesion_ood_mimbcd.png`` (an image from another
hospital, mimbcd-dev, flagged out of distribution; the score is still shown).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from reader_app.screenshots import _save, _score, _select, _settle

CASES = (("demo-04", "us_1", "us_lesion_suggestion_busi.png"), ("demo-09-mri-p11", "us_1", "us_lesion_ood_mimbcd.png"))


def main(argv: list[str] | None = None) -> int:
    """Write the screenshots into the folder given."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--size", default="1500x900")
    a = p.parse_args(argv)
    from reader_app.main import demo_study_dir
    from reader_app.qt_app import ensure_app
    from reader_app.qt_main import MainWindow

    tmp = Path(tempfile.mkdtemp(prefix="br-us-shots-"))
    shutil.copytree(demo_study_dir(), tmp / "study")
    os.environ["BREAST_READER_DATA"] = str(tmp / "userdata")
    ensure_app()
    a.out.mkdir(parents=True, exist_ok=True)
    w, h = (int(v) for v in a.size.split("x"))
    win = MainWindow(ai_display="always")
    win.resize(w, h)
    win.show()
    if not win.open_study(tmp / "study"):
        print(win.last_error, file=sys.stderr)
        return 2
    for case_id, image_id, name in CASES:
        cs = _select(win, case_id)
        for ann in list(cs.case.annotations_for(image_id)):
            cs.remove_annotation(ann.ann_id)  # the reader has drawn no box: the finder proposes one
        win.state.set_layout("1x1")
        view = next(v for v in win.views if v.slot.image_id == image_id)
        win.set_active(win.views.index(view))
        _score(win)
        _settle(500)
        win.fit_all()
        _settle()
        _save(win, a.out / name)
        if case_id == "demo-04":
            win._on_close_polygon()  # Enter: accept the suggestion, scored again with it
            _score(win)
            _settle(500)
            _save(win, a.out / "us_lesion_accepted_busi.png")
    win.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
