"""Write a benchmark's results into docs/benchmarks.md, between markers named after the benchmark."""

from __future__ import annotations

import json
import platform
import sys
from datetime import date
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"


def machine() -> str:
    import os

    import torch

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}"


def write_section(
    name: str,
    title: str,
    body: str,
    results: object,
    command: str | None = None,
    where: str | None = None,
    doc: Path = DOC,
) -> None:
    """Replace (or append) the section ``name`` of ``doc`` (default docs/benchmarks.md) with ``body`` plus
    the command line and raw JSON. ``command`` and ``where``: the command and machine that produced the
    numbers, where they are not this process's own."""
    script = Path(sys.argv[0]).resolve().relative_to(DOC.parents[1])
    command = command or " ".join(["python", str(script), *sys.argv[1:]])
    section = (
        f"<!-- BEGIN {name} -->\n## {title}\n\n"
        f"Command: `{command}` ({date.today().isoformat()}, {where or machine()})\n\n{body.strip()}\n\n"
        f"<details><summary>raw JSON</summary>\n\n```json\n{json.dumps(results, indent=1)}\n```\n</details>\n"
        f"<!-- END {name} -->"
    )
    title = doc.stem.replace("_", " ").capitalize()
    fresh = f"# {title}\n\nEvery number here was written by the command shown with it.\n"
    text = doc.read_text() if doc.exists() else fresh
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    if begin in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
