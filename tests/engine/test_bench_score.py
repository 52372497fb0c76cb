"""`bench score` starts from files (decode timed apart) and says where each file came from."""

from __future__ import annotations

import argparse

import pytest

from engine.bench import score

CASE_KEYS = {"seconds", "cpu_s", "decode_s", "total_s", "source", "file_format", "transfer_syntax", "image_shape",
             "weights", "saliency", "score", "map_shape", "box"}


def _run(mods: str) -> dict:
    return score.run(argparse.Namespace(repeats=1, modalities=mods, device="cpu", threads=1))


def test_bench_score_us_case_decodes_a_file_and_reports_decode_apart() -> None:
    out = _run("US")
    case = out["cases"]["US"]
    assert CASE_KEYS <= set(case) and {"max_case_s", "meets_target", "load_avg_1min"} <= set(out)
    assert case["decode_s"] > 0 and case["total_s"] == pytest.approx(case["decode_s"] + case["seconds"], abs=2e-3)
    assert case["file_format"] == "PNG" and ("BUSI" in case["source"] or "SYNTHETIC" in case["source"])
    assert case["map_shape"] == case["image_shape"][:2]
    # CPU time of the score + saliency call: positive, and a loaded machine is said to be loaded
    assert case["cpu_s"] > 0 and len(out["load_avg_start"]) == 3 and len(out["load_avg_end"]) == 3


def test_bench_score_compare_times_both_models_in_one_run() -> None:
    out = score.run(argparse.Namespace(repeats=1, modalities="US", device="cpu", threads=1,
                                       compare="us_effnet_lite0_busi"))
    case = out["cases"]["US"]
    other = case["compare"]["us_effnet_lite0_busi"]
    assert other["seconds"] > 0 and other["cpu_s"] > 0
    assert other["cpu_ratio_default_over_this"] == pytest.approx(case["cpu_s"] / other["cpu_s"], rel=0.01)


@pytest.mark.slow
def test_bench_score_mg_case_is_a_real_jpeg2000_film() -> None:
    pytest.importorskip("imagecodecs")
    case = _run("MG")["cases"]["MG"]
    assert case["transfer_syntax"] == "1.2.840.10008.1.2.4.90" and case["file_format"] == "DICOM"
    assert max(case["image_shape"]) >= 4000 and case["decode_s"] > 0 and case["box"]
