"""UTA7 clinicians' BI-RADS reads (../shared/data/mimbcd-dev/reader-study-uta7): descriptive section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.errors import CaseFormatError
from engine.study.uta7 import describe_uta7, load_uta7

UTA7 = Path(__file__).resolve().parents[3] / "shared" / "data" / "mimbcd-dev" / "reader-study-uta7"
needs_data = pytest.mark.skipif(not UTA7.is_dir(), reason="shared data ../shared/data/mimbcd-dev absent")


@needs_data
def test_counts_match_the_data_readme() -> None:
    reads = load_uta7(UTA7)
    assert len(reads.clinicians) == 45 and reads.real.shape == (45, 3)
    assert sorted({g: reads.groups.count(g) for g in set(reads.groups)}.items()) == [
        ("intern", 12), ("junior", 8), ("middle", 14), ("senior", 11)]
    d = describe_uta7(reads)
    # the README's counts: assistant = real 128/135, current = real 18, physician(assisted) = real 96
    assert d["assistant_agreement_with_reference"]["k"] == 128
    a = d["all_cells"]
    assert a["current"]["exact_agreement_with_reference"]["k"] == 18
    assert a["assisted"]["exact_agreement_with_reference"]["k"] == 96
    assert a["assisted"]["agreement_with_assistant"]["k"] == 97
    assert d["zeros"] == {"current": 16, "assisted": 5}
    ch = a["change"]
    assert ch["exact_agreement_difference"] == pytest.approx((96 - 18) / 135)
    lo, hi = ch["clinician_bootstrap_ci"]
    assert lo < ch["exact_agreement_difference"] < hi
    assert ch["wrong_to_right"] - ch["right_to_wrong"] == 96 - 18
    assert "no ROC/AUC or MRMC" in d["claims"]


@needs_data
def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["uta7", str(UTA7), "--json", "--figure", str(tmp_path / "u.png")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["clinicians"] == 45 and (tmp_path / "u.png").stat().st_size > 5000
    assert main(["uta7", str(UTA7)]) == 0
    assert "DESCRIPTIVE ONLY" in capsys.readouterr().out


def test_wrong_folder_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CaseFormatError, match="reader-study-uta7 folder"):
        load_uta7(tmp_path)
