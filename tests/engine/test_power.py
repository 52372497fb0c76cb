"""Hillis-Obuchowski OR power against RJafroc's documented SsPowerGivenJK values (tests/data/power/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.stats.mrmc import mrmc_analysis
from engine.stats.power import PilotComponents, cases_for_power, or_power, pilot_components
from engine.study.ratings import load_ratings

DATA = Path(__file__).resolve().parents[1] / "data"
REF = json.loads((DATA / "power" / "rjafroc_sspower_vandyke.json").read_text())
VANDYKE = DATA / "mrmc" / "vandyke.csv"


def _pilot() -> PilotComponents:
    t = load_ratings(VANDYKE)
    res = mrmc_analysis(t.truth, t.ratings, cov="jackknife")
    return pilot_components(res.components, 114, res.pairwise[0].estimate)


def test_observed_effect_is_rjafrocs() -> None:
    assert _pilot().effect == pytest.approx(REF["observed_effect"], abs=1e-9)


@pytest.mark.parametrize("case", REF["cases"], ids=lambda c: f"{c['design']}-J{c['J']}-K{c['K']}")
def test_power_matches_rjafroc(case: dict) -> None:  # type: ignore[type-arg]
    pilot = _pilot()
    effect = pilot.effect if case["effect"] is None else case["effect"]
    res = or_power(pilot, case["J"], case["K"], effect, case["design"])
    assert res.power == pytest.approx(case["power"], abs=max(case["tolerance"], 5e-8) * 10)


def test_sample_size_matches_rjafroc() -> None:
    ref = REF["sample_size"][0]
    pilot = _pilot()
    res = cases_for_power(pilot, ref["J"], pilot.effect, ref["target"], "rrrc")
    assert res.cases == ref["K"]
    assert res.power == pytest.approx(REF["sample_size"][1]["power_rounded_3"], abs=5e-4)
    # one case fewer misses the target: the search returns the smallest K
    assert or_power(pilot, 6, ref["K"] - 1, pilot.effect).power < 0.8


def test_power_grows_with_cases_and_readers_and_is_alpha_at_zero_effect() -> None:
    pilot = _pilot()
    p = [or_power(pilot, 5, k, 0.05).power for k in (50, 100, 200, 400)]
    assert p == sorted(p)
    assert or_power(pilot, 10, 100, 0.05).power > or_power(pilot, 5, 100, 0.05).power
    assert or_power(pilot, 5, 100, 0.0).power == pytest.approx(0.05, abs=1e-9)
    with pytest.raises(ValueError, match="not reachable"):
        cases_for_power(pilot, 2, 0.005, 0.99, "rrrc", max_cases=10_000)


def test_cli_power_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mrmc", str(VANDYKE), "--cov", "jackknife", "--power-readers", "10", "--power-cases", "165",
                 "--effect-size", "-0.043800322", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    pw = out["power"]
    assert set(pw) >= {"design", "readers", "cases", "effect_size", "power", "ncp", "df2"}
    assert pw["power"] == pytest.approx(0.80541995, abs=1e-7)
    assert (pw["readers"], pw["cases"], pw["design"]) == (10, 165, "rrrc")
    assert main(["mrmc", str(VANDYKE), "--cov", "jackknife", "--power-target", "0.8", "--power-readers", "6",
                 "--json"]) == 0
    pw = json.loads(capsys.readouterr().out)["power"]
    assert pw["cases_needed"] == 251 and pw["cases"] == 251 and pw["power"] >= 0.8
    assert main(["mrmc", str(VANDYKE), "--cov", "jackknife", "--design", "frrc", "--power-readers", "10",
                 "--power-cases", "131", "--effect-size", "-0.043800322", "--json"]) == 0
    pw = json.loads(capsys.readouterr().out)["power"]
    assert pw["power"] == pytest.approx(0.80091813, abs=1e-7) and pw["df2"] is None
    assert main(["mrmc", str(VANDYKE), "--power-readers", "5"]) == 2
    assert "--power-cases" in capsys.readouterr().err
