"""No import cycles in engine or reader_app, function-level (lazy) imports included.

The layers contracts in pyproject.toml forbid the cycles between the modules they list; this
test covers every module, including ones added later and not yet placed in a layer.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytest.importorskip("grimp", reason="grimp comes with import-linter (the dev extra)")

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "reader_app")
# engine.bench's fuzz bench drives the info/score commands that engine.cli.cmd_bench dispatches
# to: a package-level pair (no module imports itself back), declared "engine.cli : engine.bench".
ALLOWED_PACKAGE_PAIRS = {frozenset({"engine.cli", "engine.bench"})}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


# Built in a child started in the repository root: under pytest, ``reader_app`` can resolve to
# the tests/reader_app folder (a namespace package), which grimp would then scan instead.
_GRAPH = """
import json, grimp
g = grimp.build_graph(*{packages!r})
mods = {{m for m in g.modules if m.split(".")[0] in {packages!r}}}
print(json.dumps({{m: sorted(d for d in g.find_modules_directly_imported_by(m) if d in mods) for m in mods}}))
"""


@pytest.fixture(scope="module")
def module_edges() -> dict[str, set[str]]:
    out = subprocess.run([sys.executable, "-c", _GRAPH.format(packages=PACKAGES)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=True).stdout
    edges = {m: set(deps) for m, deps in json.loads(out).items()}
    assert {"engine.inference.predictor", "reader_app.main", "reader_app.study.cli"} <= edges.keys()
    return edges


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back(module_edges: dict[str, set[str]]) -> None:
    assert _cycles(module_edges) == []


def test_no_subpackage_cycles(module_edges: dict[str, set[str]]) -> None:
    """engine.X / reader_app.X as nodes: e.g. models <-> inference or main <-> qt_main <-> study."""
    def top(m: str) -> str:
        return ".".join(m.split(".")[:2])

    edges: dict[str, set[str]] = {}
    for a, deps in module_edges.items():
        for b in deps:
            if top(a) != top(b) and frozenset({top(a), top(b)}) not in ALLOWED_PACKAGE_PAIRS:
                edges.setdefault(top(a), set()).add(top(b))
                edges.setdefault(top(b), set())
    assert _cycles(edges) == []


def test_every_module_sits_in_a_layer(module_edges: dict[str, set[str]]) -> None:
    """A new module is placed in the layers contracts (pyproject.toml), so its imports are checked."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = {name for c in contracts if c["type"] == "layers" for layer in c["layers"]
              for name in re.split(r"[|:]", layer) if name.strip()}
    layers = {name.strip() for name in layers}
    packages_only = {"engine", "reader_app", "reader_app.study"}  # __init__ files that only re-export
    unplaced = sorted(m for m in module_edges if m not in packages_only
                      and not any(m == name or m.startswith(name + ".") for name in layers))
    assert unplaced == []
