"""The engine must import and work with Qt unavailable (STYLE.md: engine never imports Qt)."""

from __future__ import annotations

import subprocess
import sys

BLOCK_QT = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('PySide6', 'shiboken6', 'PyQt5', 'PyQt6', 'pyqtgraph', 'reader_app'):
            raise ImportError('blocked for the headless test: ' + name)
        return None
sys.meta_path.insert(0, Block())
import pkgutil, importlib, engine
names = [m.name for m in pkgutil.walk_packages(engine.__path__, 'engine.')]
for n in names:
    importlib.import_module(n)
from engine.cli.main import build_parser
build_parser()
loaded = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'reader_app')]
assert not loaded, loaded
print('OK', len(names))
"""


def test_engine_imports_without_qt() -> None:
    out = subprocess.run([sys.executable, "-c", BLOCK_QT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("OK")
