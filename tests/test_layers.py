"""The import graph, read from the source (ast): layers import one way.

Every import counts, those inside functions too: a lazy import hides a cycle from Python, not from
the design. The rules (docs/architecture.md): no cycle; core.preparation imports nothing of the
project; the web services (core.services) are imported by app.py alone, never by the ML library;
nothing under core/ imports Gradio.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = "core.services"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports (absolute names; relative imports resolved), at any depth."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.add(module)
            # `from . import x` and `from core import x` name modules too
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def project_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports."""
    files = [*sorted((ROOT / "core").rglob("*.py")), ROOT / "app.py"]
    names = {module_name(f): f for f in files}
    return {name: {m for m in imports_of(f) if m in names and m != name}
            for name, f in names.items()}


def test_the_graph_is_read_from_the_real_tree():
    graph = project_graph()
    assert {"app", "core.preparation", "core.train", SERVICES} <= set(graph)
    assert "core.predictor" in graph["core.export"] or "core.calibration" in graph["core.export"]
    assert any(m.startswith(SERVICES) for m in graph["app"])


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of `graph`, each as a path that returns to its start."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_there_is_no_import_cycle():
    assert cycles(project_graph()) == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_image_preparation_is_the_bottom_layer():
    assert project_graph()["core.preparation"] == set()


@pytest.mark.parametrize("module", sorted(m for m in project_graph()
                                          if m.startswith("core") and not m.startswith(SERVICES)))
def test_the_ml_library_never_imports_the_web_services(module):
    assert not {m for m in project_graph()[module] if m.startswith(SERVICES)}


def test_nothing_under_core_imports_gradio():
    for path in sorted((ROOT / "core").rglob("*.py")):
        gradio = {m for m in imports_of(path) if m.split(".")[0] in ("gradio", "gradio_client")}
        assert not gradio, f"{path.relative_to(ROOT)} imports {sorted(gradio)}"
