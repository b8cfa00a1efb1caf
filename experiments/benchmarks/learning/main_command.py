"""The README's main command, run as a new user runs it; its time and results go into the README and docs.

The command is read from README.md (after ``<!-- main-command -->``) and run in a fresh clone of this
repository's HEAD under a temporary directory: with ``--fresh-venv`` (the default) the whole line,
virtualenv and ``pip install -e ".[all]"`` included, else only its ``marlkit ...`` part with this environment's
marlkit. The install and the run are timed separately. The report's tables and significance sentences
go into docs/benchmarks.md, and the README's time claim (between ``<!-- main-command-time -->`` markers)
is rewritten from the measurement.

    python experiments/benchmarks/learning/main_command.py                  # fresh venv; updates README and docs
    python experiments/benchmarks/learning/main_command.py --no-fresh-venv  # this environment's marlkit
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _report import machine, write_section

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
TIME_BEGIN, TIME_END = "<!-- main-command-time -->", "<!-- /main-command-time -->"
VERDICT_BEGIN, VERDICT_END = "<!-- main-command-verdict -->", "<!-- /main-command-verdict -->"
VERDICTS = ("Inconclusive at", "Different at", "Nothing claimed", "One algorithm")


def main_command() -> str:
    return README.read_text().split("<!-- main-command -->")[1].split("```bash\n")[1].split("\n")[0]


def timed(command: str, cwd: Path) -> float:
    start = time.perf_counter()
    # The command's own output goes to stderr: stdout carries this script's JSON only.
    subprocess.run(["bash", "-c", f"set -e; {command}"], cwd=cwd, check=True, stdout=sys.stderr)
    return time.perf_counter() - start


def report_summary(report: Path) -> str:
    """The report's per-task sections up to their figures: heading, table and significance sentence."""
    keep, on = [], False
    for line in report.read_text().splitlines():
        if line.startswith("## "):
            on = not line.startswith("## Aggregate")
        if on and not line.startswith("!["):
            keep.append(line.replace("## ", "### ", 1) if line.startswith("## ") else line)
    return "\n".join(keep).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-fresh-venv", dest="fresh", action="store_false", help="use this environment")
    args = parser.parse_args()
    command = main_command()
    setup, _, run = command.rpartition("&& marlkit ")
    if not run:
        sys.exit(f"main_command: no 'marlkit' step in the README's main command: {command!r}")
    with tempfile.TemporaryDirectory(prefix="marlkit-main-") as tmp:
        clone = Path(tmp) / "marlkit"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        install_s = timed(setup.strip(), clone) if args.fresh else 0.0
        activate = ". .venv/bin/activate && " if args.fresh else ""
        run_s = timed(f"{activate}marlkit {run}", clone)
        reports = sorted(clone.glob("runs/**/report.md"))
        if not reports:
            sys.exit("main_command: the command wrote no report.md under runs/")
        summary = report_summary(reports[0])
        verdicts = [line for line in summary.splitlines() if line.startswith(VERDICTS)]
    results = {
        "command": command,
        "fresh_venv": args.fresh,
        "install_s": round(install_s, 1),
        "run_s": round(run_s, 1),
        "total_s": round(install_s + run_s, 1),
        "date": date.today().isoformat(),
        "machine": machine(),
    }
    print(json.dumps(results))
    where = f"a fresh venv: install {install_s:.0f} s + run " if args.fresh else "this environment: run "
    claim = (
        f"{TIME_BEGIN}{(install_s + run_s) / 60:.1f} minutes measured on {results['date']} ({machine()}; "
        f"{where}{run_s:.0f} s; `experiments/benchmarks/learning/main_command.py`){TIME_END}"
    )
    text = README.read_text()
    for begin, end, new in (
        (TIME_BEGIN, TIME_END, claim),
        (VERDICT_BEGIN, VERDICT_END, f"{VERDICT_BEGIN}{' '.join(verdicts)}{VERDICT_END}"),
    ):
        if begin not in text:
            sys.exit(f"main_command: README.md has no {begin} ... {end} span to update")
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _, new=new: new, text, flags=re.S)
    README.write_text(text)
    body = (
        f"`{command}`, run in a fresh clone as a new user would ({where}{run_s:.0f} s, "
        f"{(install_s + run_s) / 60:.1f} minutes in all). The report's per-task tables:\n\n{summary}"
    )
    write_section("main_command", "The README's main command", body, results)


if __name__ == "__main__":
    main()
