"""Draw the breast-reader application icon programmatically.

Writes ``resources/icons/breast-reader.svg`` (the master), PNG renderings of it at the
freedesktop hicolor sizes (``resources/icons/png/breast-reader-<N>.png``) and a Windows
``breast-reader.ico``. The drawing is pure geometry, so the icon is reproducible and carries
no third-party artwork licence.

The motif: a dark film-viewer tile with the grey MLO silhouette of a breast (chest wall to the
left, as a left MLO is hung), a bright spot for a lesion, and a pink magnifier ring reading it.

Usage::

    QT_QPA_PLATFORM=offscreen python packaging/make_icon.py [--out resources/icons]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)

SVG = """<?xml version="1.0" encoding="UTF-8"?>
<!-- breast-reader icon, drawn by packaging/make_icon.py (public domain / CC0). -->
<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256" viewBox="0 0 256 256">
  <defs>
    <linearGradient id="tile" x1="0" y1="0" x2="0" y2="1">
      <stop offset="0" stop-color="#27364f"/>
      <stop offset="1" stop-color="#0f1826"/>
    </linearGradient>
    <radialGradient id="tissue" cx="0.30" cy="0.50" r="0.75">
      <stop offset="0" stop-color="#f2f2f2"/>
      <stop offset="0.55" stop-color="#b9bcc2"/>
      <stop offset="1" stop-color="#6d737d"/>
    </radialGradient>
    <radialGradient id="lesion" cx="0.5" cy="0.5" r="0.5">
      <stop offset="0" stop-color="#ffffff"/>
      <stop offset="1" stop-color="#ffffff" stop-opacity="0"/>
    </radialGradient>
  </defs>
  <rect x="8" y="8" width="240" height="240" rx="44" ry="44" fill="url(#tile)"/>
  <!-- MLO silhouette: chest wall on the left edge, nipple pointing right -->
  <path d="M 40 36 C 92 44 150 78 176 124 C 196 160 184 204 140 216 C 104 226 64 222 40 220 Z"
        fill="url(#tissue)"/>
  <!-- pectoral muscle wedge, as seen on an MLO -->
  <path d="M 40 36 C 62 40 82 46 98 54 L 40 128 Z" fill="#8c929c" opacity="0.75"/>
  <circle cx="118" cy="156" r="16" fill="url(#lesion)"/>
  <!-- the reader's magnifier -->
  <circle cx="118" cy="156" r="38" fill="none" stroke="#ff4f8b" stroke-width="14"/>
  <line x1="146" y1="184" x2="204" y2="232" stroke="#ff4f8b" stroke-width="20"
        stroke-linecap="round"/>
</svg>
"""


def render_png(svg_path: Path, size: int, out: Path) -> None:
    """Render ``svg_path`` to a square ``size`` PNG with Qt's SVG renderer."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg_path))
    if not renderer.isValid():
        raise RuntimeError(f"{svg_path}: Qt cannot parse the SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    if not image.save(str(out), "PNG"):
        raise RuntimeError(f"{out}: could not write PNG")


def main(argv: list[str] | None = None) -> int:
    """Write the SVG, PNG sizes and ICO; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--out", type=Path, default=root / "resources" / "icons")
    args = parser.parse_args(argv)

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 (keep alive)

    out: Path = args.out
    (out / "png").mkdir(parents=True, exist_ok=True)
    svg_path = out / "breast-reader.svg"
    svg_path.write_text(SVG, encoding="utf-8")
    pngs = []
    for size in SIZES:
        png = out / "png" / f"breast-reader-{size}.png"
        render_png(svg_path, size, png)
        pngs.append(png)

    from PIL import Image

    big = Image.open(out / "png" / "breast-reader-256.png")
    big.save(out / "breast-reader.ico", sizes=[(s, s) for s in (16, 24, 32, 48, 64, 128, 256)])
    print(f"wrote {svg_path}, {len(pngs)} PNGs and breast-reader.ico under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
