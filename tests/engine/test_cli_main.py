"""`breast-engine` dispatcher: every subcommand's help renders; errors become one line."""

from __future__ import annotations

import pytest

from engine.cli.main import build_parser, main


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


def test_contract_commands_exist() -> None:
    assert {"info", "score", "models", "bench", "train", "evaluate", "mrmc"} <= set(_subcommands())


@pytest.mark.parametrize("command", ["", *_subcommands()])
def test_help_renders(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"] if command else ["--help"])
    assert exc.value.code == 0
    assert "usage: breast-engine" in capsys.readouterr().out


def test_bench_lists_benchmarks_without_importing_them(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    for name in ("io", "patch-map", "score", "train", "mrmc"):
        assert name in out


def test_breast_reader_error_is_one_line(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    code = main(["train", "--config", str(missing)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and "nope.toml" in err[0] and "Traceback" not in err[0]


def test_info_does_not_import_torch(tmp_path) -> None:
    """`breast-engine info` starts without torch/scipy: only the chosen subcommand is imported."""
    import subprocess
    import sys

    from PIL import Image

    png = tmp_path / "a.png"
    Image.new("L", (8, 6)).save(png)
    code = (
        "import sys; from engine.cli.main import main; rc = main(['info', sys.argv[1], '--json']); "
        "heavy = [m for m in ('torch', 'scipy') if m in sys.modules]; print('HEAVY', heavy); sys.exit(rc)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(png)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert '"shape": [6, 8]' in out.stdout
    assert "HEAVY []" in out.stdout
