"""Write a benchmark's results into its topic's page, ``docs/benchmarks/<topic>.md`` (the topic is the
folder of the script, ``experiments/benchmarks/<topic>/``), between markers named after the benchmark,
and keep the index ``docs/benchmarks.md`` listing every page's sections."""

from __future__ import annotations

import json
import platform
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INDEX = ROOT / "docs" / "benchmarks.md"
PAGES = ROOT / "docs" / "benchmarks"
TOPICS = {
    "speed": "Speed: collection, updates, replay, models, planners, installs and the GPU check",
    "learning": "Learning: each family against its tasks and references' published numbers, ablations",
    "peers": "Peers side by side: BenchMARL, Stable-Baselines3, HARL and EPyMARL",
    "games": "Games: self-play and cross-play",
    "scale": "Scale: many agents, many env copies, env worker processes",
}


def topic_page() -> Path:
    """The page of the running script's topic (its folder under experiments/benchmarks/)."""
    topic = Path(sys.argv[0]).resolve().parent.name
    if topic not in TOPICS:
        raise SystemExit(f"benchmark scripts live in experiments/benchmarks/<topic>/; topics: {', '.join(TOPICS)}")
    return PAGES / f"{topic}.md"


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
    doc: Path | None = None,
) -> None:
    """Replace (or append) the section ``name`` of ``doc`` (default: the script's topic page) with ``body``
    plus the command line and raw JSON. ``command`` and ``where``: the command and machine that produced
    the numbers, where they are not this process's own."""
    doc = doc if doc is not None else topic_page()
    script = Path(sys.argv[0]).resolve().relative_to(ROOT)
    command = command or " ".join(["python", str(script), *sys.argv[1:]])
    section = (
        f"<!-- BEGIN {name} -->\n## {title}\n\n"
        f"Command: `{command}` ({date.today().isoformat()}, {where or machine()})\n\n{body.strip()}\n\n"
        f"<details><summary>raw JSON</summary>\n\n```json\n{json.dumps(results, indent=1)}\n```\n</details>\n"
        f"<!-- END {name} -->"
    )
    heading = TOPICS.get(doc.stem, doc.stem.replace("_", " ").capitalize()) if doc.parent == PAGES else doc.stem
    fresh = f"# {heading}\n\nEvery number here was written by the command shown with it.\n"
    text = doc.read_text() if doc.exists() else fresh
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    if begin in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    if doc.parent == PAGES:
        write_index()


def write_index() -> None:
    """docs/benchmarks.md: every topic page with its section titles, in page order."""
    lines = [
        "# Benchmarks",
        "",
        "One page per topic; every number on them was written by the command shown with it. Scripts live in",
        "`experiments/benchmarks/<topic>/` and write their sections into `docs/benchmarks/<topic>.md`.",
    ]
    for topic, about in TOPICS.items():
        page = PAGES / f"{topic}.md"
        if not page.exists():
            continue
        lines += ["", f"## [{about}](benchmarks/{topic}.md)", ""]
        lines += [f"- {line[3:]}" for line in page.read_text().splitlines() if line.startswith("## ")]
    INDEX.write_text("\n".join(lines) + "\n")
