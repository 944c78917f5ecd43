"""The dependency rules: engine/ is headless and has no import circle; dashboard/ talks to engine.service only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "engine": {"streamlit", "plotly", "pyvis"},
    "dashboard": {"torch", "torch_geometric", "captum"},
}
# The only engine modules the dashboard may import: the door and the errors behind it.
DASHBOARD_DOORS = {"engine.service", "engine.errors"}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module an import statement of ``path`` names (``from a.b import c`` gives ``a.b`` and
    ``a.b.c``, since ``c`` may be a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def imported_roots(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(path)}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def engine_graph() -> dict[str, set[str]]:
    """Module -> the engine modules it imports (module level or not: a function-local import is still an arrow)."""
    files = {module_name(f): f for f in (ROOT / "engine").rglob("*.py")}
    graph = {}
    for name, path in files.items():
        targets = {m for m in imported_modules(path) if m in files and m != name}
        # ``from engine.update import apply`` names the package too; a package's own face is not an arrow back.
        graph[name] = {t for t in targets if not name.startswith(t + ".")}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_never_imports_forbidden_modules(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no python files under {package}/"
    offenders = {str(f.relative_to(ROOT)): sorted(imported_roots(f) & FORBIDDEN[package]) for f in files}
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}


def test_dashboard_imports_only_the_service_door() -> None:
    offenders = {}
    for f in sorted((ROOT / "dashboard").rglob("*.py")):
        engine = {m for m in imported_modules(f) if m.split(".")[0] == "engine"}
        # ``from engine import service`` names ``engine`` and ``engine.service``; the bare package is no door.
        bad = sorted(
            m for m in engine - {"engine"} if not any(m == d or m.startswith(d + ".") for d in DASHBOARD_DOORS)
        )
        if bad or ("engine" in engine and not engine & DASHBOARD_DOORS):
            offenders[str(f.relative_to(ROOT))] = bad
    assert offenders == {}


def test_dashboard_never_reaches_behind_the_door() -> None:
    """``ServedModel.recommender`` hands out the engine object with its tensors: engine-side code only."""
    offenders = []
    for f in sorted((ROOT / "dashboard").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in {"recommender", "_rec", "prep", "idmap"}:
                offenders.append(f"{f.relative_to(ROOT)}:{node.lineno} .{node.attr}")
    assert offenders == []


def test_engine_has_no_import_circle() -> None:
    assert circles(engine_graph()) == []


def test_circle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_scanner_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom torch_geometric.nn import GATConv\nimport plotly.express as px\n")
    assert imported_roots(bad) == {"os", "torch_geometric", "plotly"}
    assert "torch_geometric.nn.GATConv" in imported_modules(bad)
