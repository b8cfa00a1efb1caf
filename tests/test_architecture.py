"""The package's module graph has no import circles (type-checking imports included), and the loop
depends on the learner contract, not on any algorithm."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "marlkit"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path, modules: set[str], inside_functions: bool = False) -> set[str]:
    """marlkit modules imported at module level (also under ``if TYPE_CHECKING``); with
    ``inside_functions``, also those imported inside functions and methods (a circle hidden by a late
    import is still a circle)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    nodes = list(ast.walk(tree)) if inside_functions else list(tree.body)
    while nodes:
        node = nodes.pop()
        if isinstance(node, ast.If) and not inside_functions:
            nodes += node.body + node.orelse
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("marlkit"):
            for alias in node.names:  # `from marlkit import keys` imports the module marlkit.keys
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("marlkit")}
    return found


def graph(inside_functions: bool = False) -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: top_level_imports(path, set(paths), inside_functions) - {name} for name, path in paths.items()}


def circles(edges: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan): every import circle."""
    # A package's __init__ re-exporting its children is not a circle through them.
    edges = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in edges.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in sorted(edges.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = {stack.pop()}
            while node not in component:
                component.add(stack.pop())
            if len(component) > 1:
                found.append(component)

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def test_no_import_circles_at_module_level():
    assert not circles(graph()), circles(graph())


def test_no_import_circles_through_imports_inside_functions():
    found = circles(graph(inside_functions=True))
    assert not found, found


# marlkit modules imported inside functions: only those that import an optional simulator package at
# their top (pettingzoo, gymnasium), so that `import marlkit` and VMAS-only installs work without it.
LAZY = {"marlkit.adapters.pettingzoo", "marlkit.adapters.tuple_agents"}


def test_function_level_imports_only_load_optional_simulators():
    everywhere, top = graph(inside_functions=True), graph()
    late = {m: everywhere[m] - top[m] for m in everywhere if everywhere[m] - top[m]}
    assert all(deps <= LAZY for deps in late.values()), late


def test_no_module_outside_the_algorithms_knows_the_teams_learner():
    """Teams plugs in through the learner contract and its spec's hooks, like a user's composite learner."""
    for module, deps in graph(inside_functions=True).items():
        if not module.startswith("marlkit.algorithms"):
            assert "marlkit.algorithms.teams" not in deps, module
    for path in PACKAGE.rglob("*.py"):
        if "algorithms" not in path.relative_to(PACKAGE).parts:
            text = path.read_text()
            assert "TeamsConfig" not in text and "Teams)" not in text and '== "teams"' not in text, path


def test_the_loop_knows_learners_only_through_the_contract():
    edges = graph()
    for module in (
        "marlkit.training.experiment",
        "marlkit.training.evaluation",
        "marlkit.training.loggers",
        "marlkit.core.checkpoint",
    ):
        algorithms = {d for d in edges[module] if d.startswith("marlkit.algorithms.")}
        assert not algorithms, f"{module} imports {algorithms}"
    assert len((PACKAGE / "training" / "experiment.py").read_text().splitlines()) <= 300


BENCHMARKS = PACKAGE.parent / "experiments" / "benchmarks"
HELPERS = {p.stem for p in BENCHMARKS.glob("_*.py")}


def test_benchmark_scripts_find_their_shared_helpers():
    """A script in a benchmark subfolder that imports a helper of experiments/benchmarks/ (``_report``,
    ``_learning``, or a sibling preset module) must put that folder on sys.path first, at module level:
    run as ``python experiments/benchmarks/learning/x.py`` only the script's own folder is on the path."""
    broken = []
    for script in sorted(BENCHMARKS.glob("*/*.py")):
        tree = ast.parse(script.read_text())
        helper_lines = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in HELPERS
        ]
        path_lines = [
            node.lineno
            for node in tree.body
            if isinstance(node, ast.Expr)
            and "sys.path.insert" in ast.unparse(node)
            and "parents[1]" in ast.unparse(node)
        ]
        if helper_lines and (not path_lines or min(path_lines) > min(helper_lines)):
            broken.append(script.relative_to(BENCHMARKS).as_posix())
    assert not broken, (
        f"these scripts import a benchmark helper without putting experiments/benchmarks on sys.path: {broken}"
    )
