"""Generate THIRD_PARTY_NOTICES.txt for the desktop bundle from installed distributions.

Why: a radiology department installing the bundle must be able to see what it contains and
under which terms. The list is derived from the metadata of the distributions actually
installed in the build environment (name, version, licence, home page), walking the runtime
``Requires-Dist`` closure of ``breast-reader``; when the PyInstaller spec passes the set of
frozen top-level modules, distributions that were not frozen are dropped. The licence texts
shipped in each distribution's ``*.dist-info`` are appended verbatim, plus a few components
that are not Python distributions (CPython, Qt, the PyInstaller bootloader).

Usage::

    python packaging/third_party_notices.py -o build/THIRD_PARTY_NOTICES.txt
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT_DISTRIBUTION = "breast-reader"
# Licence file names, as setuptools/hatch/flit place them in *.dist-info (PEP 639 and older).
_LICENCE_NAME = re.compile(r"(licen[cs]e|copying|notice|authors)", re.IGNORECASE)
# Distributions that are pulled in for building/installing only, never imported by the app.
_BUILD_ONLY = {"pip", "setuptools", "wheel", "pyinstaller", "pyinstaller-hooks-contrib", "altgraph"}

# Components inside the bundle that are not Python distributions.
EXTRA_COMPONENTS: tuple[tuple[str, str, str, str], ...] = (
    (
        "CPython",
        f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}",
        "PSF-2.0",
        "https://docs.python.org/3/license.html",
    ),
    (
        "Qt 6 (shared libraries and plugins shipped inside PySide6-Essentials)",
        "see PySide6-Essentials",
        "LGPL-3.0-only (dynamically linked; the Qt .so/.dll files in the bundle may be replaced "
        "by the user with compatible builds)",
        "https://www.qt.io/licensing/open-source-lgpl-obligations",
    ),
    (
        "PyInstaller bootloader",
        "see build log",
        "GPL-2.0-or-later WITH Bootloader-exception (the exception allows distributing the "
        "frozen application under its own licence)",
        "https://pyinstaller.org/en/stable/license.html",
    ),
)

# Full texts that PySide6/shiboken6 wheels do not carry in their dist-info (LGPL-3.0 needs
# its text, and the text of the GPL-3.0 it builds on, to travel with the libraries). Taken
# from the build machine's common-licenses (Debian/Ubuntu); a URL is written when absent.
EXTRA_TEXTS: tuple[tuple[str, str, str], ...] = (
    (
        "Qt 6 / PySide6 / shiboken6: GNU Lesser General Public License v3",
        "/usr/share/common-licenses/LGPL-3",
        "https://www.gnu.org/licenses/lgpl-3.0.txt",
    ),
    (
        "GNU General Public License v3 (incorporated by the LGPL v3)",
        "/usr/share/common-licenses/GPL-3",
        "https://www.gnu.org/licenses/gpl-3.0.txt",
    ),
)


@dataclass
class Component:
    """One bundled distribution and what its metadata says about licensing."""

    name: str
    version: str
    licence: str
    home: str
    licence_files: list[tuple[str, str]] = field(default_factory=list)  # (relative name, text)


def _licence_of(dist: md.Distribution) -> str:
    """Best short licence string: PEP 639 expression, License field, classifiers, file."""
    meta = dist.metadata
    expr = (meta.get("License-Expression") or "").strip()
    if expr:
        return expr
    text = (meta.get("License") or "").strip()
    if text and text.upper() != "UNKNOWN" and len(text) <= 80 and "\n" not in text:
        return text
    classifiers = [
        c.split("::")[-1].strip()
        for c in meta.get_all("Classifier") or []
        if c.startswith("License ::") and c.count("::") >= 2
    ]
    if classifiers:
        return " / ".join(classifiers)
    if text and text.upper() != "UNKNOWN":
        return text.splitlines()[0].strip() + " (see text below)"
    for _, body in _licence_files(dist)[:1]:
        first = next((ln.strip() for ln in body.splitlines() if ln.strip()), "")
        if first:
            return f"{first} (first line of the licence file below)"
    return "UNKNOWN (no licence metadata; check the project page)"


def _home_of(dist: md.Distribution) -> str:
    meta = dist.metadata
    if meta.get("Home-page"):
        return str(meta["Home-page"])
    for url in meta.get_all("Project-URL") or []:
        label, _, link = url.partition(",")
        if label.strip().lower() in {"homepage", "home", "source", "repository", "source code"}:
            return link.strip()
    urls = meta.get_all("Project-URL") or []
    return urls[0].partition(",")[2].strip() if urls else ""


def _licence_files(dist: md.Distribution) -> list[tuple[str, str]]:
    """Licence texts stored in the distribution's ``*.dist-info`` folder."""
    out = []
    for f in dist.files or []:
        parts = f.parts
        if not parts or not parts[0].endswith(".dist-info"):
            continue
        if not _LICENCE_NAME.search(f.name):
            continue
        try:
            text = Path(str(f.locate())).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        out.append(("/".join(parts[1:]), text))
    return out


def top_level_modules(dist: md.Distribution) -> set[str]:
    """Import names a distribution provides (top_level.txt, else derived from RECORD)."""
    names: set[str] = set()
    top = dist.read_text("top_level.txt")
    if top:
        names.update(n.strip() for n in top.split() if n.strip())
    for f in dist.files or []:
        first = f.parts[0] if f.parts else ""
        if first in {"..", ""} or first.endswith((".dist-info", ".data")) or first == "__pycache__":
            continue
        stem = first.split(".")[0]
        if first.endswith((".py", ".so", ".pyd")) or "." not in first:
            names.add(stem)
    return names


def runtime_closure(root: str = ROOT_DISTRIBUTION) -> list[md.Distribution]:
    """Installed distributions needed at run time by ``root`` (no extras, markers evaluated)."""
    seen: dict[str, md.Distribution] = {}

    def walk(name: str) -> None:
        key = canonicalize_name(name)
        if key in seen or key in _BUILD_ONLY:
            return
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            return
        seen[key] = dist
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            walk(req.name)

    walk(root)
    return sorted(seen.values(), key=lambda d: canonicalize_name(d.metadata["Name"]))


def collect(
    root: str = ROOT_DISTRIBUTION, frozen_modules: Iterable[str] | None = None
) -> list[Component]:
    """Components to list; with ``frozen_modules``, exactly the distributions that were frozen.

    Args:
        root: distribution whose runtime dependency closure is listed.
        frozen_modules: top-level import names present in the bundle (from the PyInstaller
            Analysis); ``None`` lists the runtime closure of ``root``. With it, closure members
            that were not frozen are dropped and installed distributions outside the closure
            that were frozen anyway (imported by a dependency) are added.

    Returns:
        Components sorted by name.
    """
    frozen = set(frozen_modules) if frozen_modules is not None else None
    dists = {canonicalize_name(d.metadata["Name"]): d for d in runtime_closure(root)}
    if frozen is not None:
        # Also whatever else PyInstaller followed imports into (e.g. pygments via torch).
        for dist in md.distributions():
            key = canonicalize_name(dist.metadata["Name"] or "")
            if key and key not in dists and key not in {"pyinstaller", "altgraph"}:
                if top_level_modules(dist) & frozen:
                    dists[key] = dist
    comps = []
    for key in sorted(dists):
        dist = dists[key]
        name = dist.metadata["Name"]
        if frozen is not None and key != canonicalize_name(root):
            if not (top_level_modules(dist) & frozen):
                continue
        comps.append(
            Component(
                name=name,
                version=dist.version,
                licence=_licence_of(dist),
                home=_home_of(dist),
                licence_files=_licence_files(dist),
            )
        )
    return comps


def render(components: list[Component]) -> str:
    """Render the notices file: a summary table, then every licence text."""
    lines = [
        "breast-reader desktop bundle: third-party notices",
        "=" * 49,
        "",
        "Generated by packaging/third_party_notices.py from the metadata of the distributions",
        "installed in the build environment. Licences of the bundled demo DATA (BUSI, mini-MIAS)",
        "are in resources/LICENSES/ next to this file; the demo bundle is for research use only.",
        "",
        "Summary (name, version, licence, home page)",
        "-" * 43,
    ]
    width = max(len(c.name) for c in components) if components else 10
    for c in components:
        lines.append(f"{c.name:<{width}}  {c.version:<14}  {c.licence}  {c.home}".rstrip())
    lines += ["", "Components that are not Python distributions", "-" * 44]
    for name, version, licence, home in EXTRA_COMPONENTS:
        lines.append(f"{name}  {version}  {licence}  {home}")
    for c in components:
        for rel, text in c.licence_files:
            lines += ["", "", "=" * 78, f"{c.name} {c.version}: {rel}", "=" * 78, text.rstrip()]
    for title, path, url in EXTRA_TEXTS:
        src = Path(path)
        body = src.read_text(encoding="utf-8", errors="replace") if src.is_file() else f"See {url}"
        lines += ["", "", "=" * 78, title, "=" * 78, body.rstrip()]
    return "\n".join(lines) + "\n"


def write(out: Path, frozen_modules: Iterable[str] | None = None) -> list[Component]:
    """Write the notices to ``out`` and return the listed components."""
    comps = collect(frozen_modules=frozen_modules)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(comps), encoding="utf-8")
    return comps


def main(argv: list[str] | None = None) -> int:
    """CLI entry: write the notices file; print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, default=Path("THIRD_PARTY_NOTICES.txt"))
    args = parser.parse_args(argv)
    comps = write(args.out)
    for c in comps:
        print(f"{c.name:<34} {c.version:<14} {c.licence}")
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB, {len(comps)} distributions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
