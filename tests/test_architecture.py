"""The package's module graph has no import circles (type-checking imports included), and the loop
depends on the learner contract, not on any algorithm."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "marlkit"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path, modules: set[str]) -> set[str]:
    """marlkit modules imported at module level (also under ``if TYPE_CHECKING``), not inside functions."""
    found: set[str] = set()
    nodes = list(ast.parse(path.read_text()).body)
    while nodes:
        node = nodes.pop()
        if isinstance(node, ast.If):
            nodes += node.body + node.orelse
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("marlkit"):
            for alias in node.names:  # `from marlkit import keys` imports the module marlkit.keys
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("marlkit")}
    return found


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: top_level_imports(path, set(paths)) - {name} for name, path in paths.items()}


def test_no_import_circles():
    edges = graph()
    # A package's __init__ re-exporting its children is not a circle through them.
    edges = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in edges.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles


def test_the_loop_knows_learners_only_through_the_contract():
    edges = graph()
    for module in ("marlkit.experiment", "marlkit.evaluation", "marlkit.loggers", "marlkit.checkpoint"):
        algorithms = {d for d in edges[module] if d.startswith("marlkit.algorithms.")}
        assert not algorithms, f"{module} imports {algorithms}"
    assert len((PACKAGE / "experiment.py").read_text().splitlines()) <= 300
