"""The package's module graph, from the code: layers (each module one level above everything it imports),
whether any import circle exists, and the imports made inside functions.

    python experiments/module_graph.py            # print it
    python experiments/module_graph.py --docs     # and write it into docs/architecture.md

It reads imports the way ``tests/test_architecture.py`` does (type-checking imports and imports inside
functions included), with the same functions.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_architecture import PACKAGE, circles, graph, module_name  # noqa: E402

DOC = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- BEGIN module-graph -->", "<!-- END module-graph -->"


def levels(edges: dict[str, set[str]]) -> dict[str, int]:
    """Level 0: imports no marlkit module; level k: imports only modules below k (needs no circle)."""
    edges = {m: {d for d in deps if d in edges and not d.startswith(m + ".")} for m, deps in edges.items()}
    level: dict[str, int] = {}

    def of(m: str) -> int:
        if m not in level:
            level[m] = 1 + max((of(d) for d in edges[m]), default=-1)
        return level[m]

    for m in edges:
        of(m)
    return level


def late_imports() -> list[tuple[str, int, str]]:
    """Every import statement inside a function: (module, line, what it imports)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        top = {id(n) for n in tree.body}
        top |= {id(n) for stmt in tree.body if isinstance(stmt, ast.If) for n in stmt.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in top:
                what = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                found.append((module_name(path), node.lineno, str(what)))
    return found


def render() -> str:
    edges = graph(inside_functions=True)
    level = levels(edges)
    lines = [f"Circles (strongly connected components of more than one module): {circles(edges) or 'none'}.", ""]
    lines += ["| level | modules (each imports only modules of lower levels) |", "|---|---|"]
    for k in range(max(level.values()) + 1):
        names = sorted(m.removeprefix("marlkit.") or "marlkit" for m, v in level.items() if v == k)
        lines.append(f"| {k} | {', '.join(names)} |")
    late = late_imports()
    own = [x for x in late if x[2].startswith("marlkit")]
    lines += [
        "",
        f"Imports inside functions: {len(late)}, of them {len(own)} of marlkit modules "
        f"({', '.join(sorted({f'{m} -> {w}' for m, _, w in own}))}: they need PettingZoo and Gymnasium, an extra); "
        "the others load third-party packages where they are used (simulators and other extras, and "
        "TensorBoard's writer when enabled): "
        f"{', '.join(sorted({w.split('.')[0] for _, _, w in late if not w.startswith('marlkit')}))}.",
    ]
    sizes = sorted(((len(p.read_text().splitlines()), str(p.relative_to(ROOT))) for p in PACKAGE.rglob("*.py")),
                   reverse=True)  # fmt: skip
    lines += ["", "Largest files (lines): " + ", ".join(f"`{p}` {n}" for n, p in sizes[:12]) + "."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", action="store_true")
    args = parser.parse_args()
    text = render()
    print(text)
    if args.docs:
        doc = DOC.read_text()
        block = f"{BEGIN}\nFrom `python experiments/module_graph.py --docs`:\n\n{text}\n{END}"
        if BEGIN in doc:
            head, rest = doc.split(BEGIN, 1)
            doc = head + block + rest.split(END, 1)[1]
        else:
            anchor = "## Composite learners"
            doc = doc.replace(anchor, f"### The module graph\n\n{block}\n\n{anchor}", 1)
        DOC.write_text(doc)


if __name__ == "__main__":
    main()
